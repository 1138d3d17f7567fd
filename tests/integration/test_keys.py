# SPDX-License-Identifier: ISC
"""Admin keys end to end: hookd keys create/list/revoke against a running hookd."""

import time

import hookd_harness as hh


def status_with(h, key):
    return h.get("/metrics", auth=key).status


def test_create_list_and_revoke(hookd):
    alice = hookd.create_key("alice")
    bob = hookd.create_key("bob")
    assert alice.startswith("hk_") and alice != bob

    # hookd learns of new keys through NOTIFY hookd_config; allow it the same 2 s as revocation
    hh.wait_until(lambda: status_with(hookd, alice) == 200, 2, message="alice's key accepted")
    hh.wait_until(lambda: status_with(hookd, bob) == 200, 2, message="bob's key accepted")

    listing = hookd.cli("keys", "list").stdout
    names = {line.split()[0] for line in listing.splitlines() if line.strip()}
    assert {"alice", "bob"} <= names, listing
    assert alice not in listing and bob not in listing, "keys list must not show the keys"

    hookd.cli("keys", "revoke", "alice")
    revoked_at = time.monotonic()
    hh.wait_until(lambda: status_with(hookd, alice) == 401, 2,
                  message="a revoked key refused with 401")
    assert time.monotonic() - revoked_at <= 2
    r = hookd.get("/metrics", auth=alice)
    assert r.status == 401 and r.body["error"] == "unauthorized", r.body
    assert status_with(hookd, bob) == 200


def test_revoking_an_unknown_key_fails(hookd):
    p = hookd.cli("keys", "revoke", "nobody-by-this-name", check=False)
    assert p.returncode != 0, p


def test_a_live_name_cannot_be_taken_twice(hookd):
    hookd.create_key("carol")
    p = hookd.cli("keys", "create", "carol", check=False)
    assert p.returncode != 0, p
    assert p.stdout.strip() == "", "no key may be printed when creation failed"


def test_keys_are_stored_hashed(hookd):
    key = hookd.create_key("dave")
    rows = hookd.sql("SELECT key_hash, prefix FROM hookd.api_keys WHERE name = %s", "dave")
    assert len(rows) == 1
    key_hash, prefix = rows[0]
    assert key not in key_hash and key_hash != key
    assert key.startswith(prefix)
