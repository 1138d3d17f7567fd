// SPDX-License-Identifier: ISC
// Signs a webhook the way the providers' own npm packages do, for hookd's inbound verifiers:
// reads {"provider", "secret", "body", "timestamp"?, "id"?} as JSON on stdin and prints the
// headers to send, as JSON. Providers: stripe (the stripe package's
// webhooks.generateTestHeaderString), standardwebhooks (Webhook.sign), github
// (@octokit/webhooks-methods sign). NODE_PATH names the node_modules folder.
"use strict";

const path = require("path");
const { pathToFileURL } = require("url");

// @octokit/webhooks-methods is an ES module: import it by its file under NODE_PATH.
async function octokit() {
	const dir = path.join(process.env.NODE_PATH, "@octokit", "webhooks-methods");
	const pkg = require(path.join(dir, "package.json"));
	return import(pathToFileURL(path.join(dir, pkg.exports["."].node.import)).href);
}

async function sign(req) {
	const ts = req.timestamp ?? Math.floor(Date.now() / 1000);
	switch (req.provider) {
	case "stripe": {
		const stripe = require("stripe")("sk_test_hookd");
		return { "Stripe-Signature": stripe.webhooks.generateTestHeaderString({
			payload: req.body, secret: req.secret, timestamp: ts }) };
	}
	case "standardwebhooks": {
		const { Webhook } = require("standardwebhooks");
		const id = req.id ?? "msg_" + Date.now();
		return { "webhook-id": id, "webhook-timestamp": String(ts),
			"webhook-signature": new Webhook(req.secret).sign(id, new Date(ts * 1000), req.body) };
	}
	case "github": {
		const { sign } = await octokit();
		return { "X-Hub-Signature-256": await sign(req.secret, req.body) };
	}
	default:
		throw new Error("unknown provider " + req.provider);
	}
}

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", async () => {
	try {
		process.stdout.write(JSON.stringify(await sign(JSON.parse(input))));
	} catch (e) {
		process.stderr.write(String(e && e.stack || e) + "\n");
		process.exit(1);
	}
});
