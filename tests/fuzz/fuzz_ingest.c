/* SPDX-License-Identifier: ISC */
/* libFuzzer target: the receive path's pure part, body -> JSON -> signature -> keys. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hookd/json.h"
#include "hookd/json_check.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

/*
 * The input is split at the first NUL: the bytes before it are a Standard Webhooks
 * signature header value, the rest is the body. Both reach the same code a request to
 * POST /in/{slug} does, with a fixed secret, so the fuzzer explores header parsing, the
 * HMAC path, strict JSON parsing (json-c, and json_check held to agree with it), JSON
 * paths and JSON.stringify-compatible output.
 */
static const char *sig_header;

static const char *
header_cb(void *ctx, const char *name)
{
	if (strcasecmp(name, "webhook-signature") == 0)
		return sig_header;
	if (strcasecmp(name, "webhook-id") == 0)
		return "msg_fuzz";
	if (strcasecmp(name, "webhook-timestamp") == 0)
		return "1614265330";
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct verifier *v;
	static const char *secrets[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
	const uint8_t *nul = memchr(data, 0, size);
	struct verify_input in = {0};
	struct json_object *o;
	struct source_key k;
	char err[200], why[200], *header, *text, *value;
	int checked;
	size_t hlen = nul ? (size_t)(nul - data) : 0;

	if (v == NULL) {
		struct json_object *cfg = json_object_new_string("standard");

		if (sodium_init() < 0)
			abort();
		v = verifier_compile(cfg, err, sizeof(err));
		json_object_put(cfg);
		if (v == NULL)
			abort();
	}
	header = malloc(hlen + 1);
	memcpy(header, data, hlen);
	header[hlen] = '\0';
	sig_header = header;
	if (nul != NULL) {
		data = nul + 1;
		size -= hlen + 1;
	}
	in.method = "POST";
	in.url = "http://localhost/in/fuzz";
	in.content_type = "application/json";
	in.body = data;
	in.body_len = size;
	in.header = header_cb;
	in.now = 1614265330;
	in.tolerance = 300;
	(void)verify_check(v, &in, secrets, 1, why, sizeof(why));
	checked = json_check((const char *)data, size, why, sizeof(why)) == 0;
	o = json_parse((const char *)data, size, err, sizeof(err));
	/* What json_check takes json-c takes, and they read the same top-level strings. */
	if (checked && o == NULL)
		abort();
	if (checked && json_object_is_type(o, json_type_object)) {
		static const char *const names[] = {"type", "event", "event_type"};
		char *got[3];

		json_top_strings((const char *)data, size, names, 3, got);
		for (int i = 0; i < 3; i++) {
			const char *want = json_get_str(o, names[i]);

			if ((want == NULL) != (got[i] == NULL) ||
			    (want != NULL && strcmp(want, got[i]) != 0))
				abort();
			free(got[i]);
		}
	}
	if (o != NULL) {
		text = json_compact(o, NULL);
		free(text);
		if (source_key_parse("json:$.data.object.id", &k, err, sizeof(err)) == 0) {
			value = source_key_value(&k, header_cb, NULL, o);
			free(value);
			source_key_clear(&k);
		}
		json_object_put(o);
	}
	free(header);
	return 0;
}
