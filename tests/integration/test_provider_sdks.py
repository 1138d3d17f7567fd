# SPDX-License-Identifier: ISC
"""Inbound verification against the providers' own signing code: webhooks signed by the
stripe npm package (webhooks.generateTestHeaderString), the standardwebhooks package
(Webhook.sign) and @octokit/webhooks-methods (GitHub's sign) are accepted by hookd's
presets and stored byte for byte; a changed body, a wrong secret and a stale timestamp are
refused with the documented status and nothing is stored."""

import json
import os
import subprocess
import time

import pytest

import hookd_harness as hh
from test_ingest import assert_error, count_events, make_source

SIGNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "provider-sign.js")

# What each provider's source looks like in hookd, and a secret in the provider's format.
PROVIDERS = {
    "stripe": ("stripe", "whsec_" + "5f4dcc3b5aa765d61d8327deb882cf99"),
    "standardwebhooks": ("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    "github": ("github", "It's a Secret to Everybody"),
}
STALE = {"stripe", "standardwebhooks"}  # the schemes that sign a timestamp


def sdk_headers(node_modules, provider, secret, body, timestamp=None):
    req = {"provider": provider, "secret": secret, "body": body.decode()}
    if timestamp is not None:
        req["timestamp"] = timestamp
    p = subprocess.run(["node", SIGNER], input=json.dumps(req), capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, NODE_PATH=node_modules))
    assert p.returncode == 0, p.stderr
    headers = json.loads(p.stdout)
    headers["Content-Type"] = "application/json"
    return headers


@pytest.fixture(scope="module")
def receiver(module_hookd):
    for provider, (verifier, secret) in PROVIDERS.items():
        make_source(module_hookd, slug=f"sdk-{provider}", verifier=verifier, secret=secret)
    return module_hookd


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_signed_by_the_providers_package_is_accepted_and_stored(receiver, node_modules,
                                                                provider):
    h = receiver
    secret = PROVIDERS[provider][1]
    # Non-ASCII, escaped slashes and spacing: verification is over the raw bytes.
    body = ('{"id": "evt_%s", "type": "invoice.paid", "note": "caf\u00e9 \\/ 10 %%",'
            ' "n": 1.50}' % provider).encode()
    r = h.post(f"/in/sdk-{provider}", body=body,
               headers=sdk_headers(node_modules, provider, secret, body))
    assert r.status == 202, r
    assert r.body["status"] == "accepted"
    raw, = h.sql("SELECT raw_body FROM hookd.events WHERE id = %s", r.body["id"])[0]
    assert bytes(raw) == body

    before = count_events(h, f"sdk-{provider}")
    tampered = body.replace(b"1.50", b"9.50")
    r = h.post(f"/in/sdk-{provider}", body=tampered,
               headers=sdk_headers(node_modules, provider, secret, body))
    assert_error(r, 401, "invalid_signature")
    other = "whsec_" + "0" * 32 if provider != "github" else "another secret"
    r = h.post(f"/in/sdk-{provider}", body=body,
               headers=sdk_headers(node_modules, provider, other, body))
    assert_error(r, 401, "invalid_signature")
    if provider in STALE:
        r = h.post(f"/in/sdk-{provider}", body=body,
                   headers=sdk_headers(node_modules, provider, secret, body,
                                       timestamp=int(time.time()) - 3600))
        assert_error(r, 401, "stale_timestamp")
    assert count_events(h, f"sdk-{provider}") == before
