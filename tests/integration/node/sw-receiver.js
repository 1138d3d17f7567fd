// SPDX-License-Identifier: ISC
// A webhook receiver written the way hookd's users write them, for the delivery tests:
// the `standardwebhooks` package's Webhook.verify, and seed 003's and seed 004's Express
// examples (hex HMAC-SHA256 of JSON.stringify(req.body), keyed with the secret string).
//
//   node sw-receiver.js            prints "listening on PORT" once it listens on 127.0.0.1
//   POST /_secrets {"name": "whsec_..."}   secrets by name (merged)
//   POST /r/NAME?check=standard,omnisales,fluxbase
//        verifies with NAME's secret; 200 when every check passes, else 401
//   GET /_results                          every delivery seen: {path, webhook_id, ok, checks}
//
// NODE_PATH must name a node_modules holding standardwebhooks: the node_modules fixture
// (conftest.py) installs the exact versions of package-lock.json beside this file.
'use strict';

const crypto = require('crypto');
const http = require('http');
const { Webhook } = require('standardwebhooks');

const secrets = {};
const results = [];

function send(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function hexHmac(secret, text) {
  return crypto.createHmac('sha256', secret).update(text).digest('hex');
}

// Seed 003 (OmniSales): the "Express.js middleware" of its guide.
function verifyOmnisales(req, body, secret) {
  const signature = req.headers['x-webhook-signature'];
  const timestamp = parseInt(req.headers['x-webhook-timestamp'], 10);
  const payload = JSON.stringify(body);
  const currentTime = Math.floor(Date.now() / 1000);
  if (Math.abs(currentTime - timestamp) > 300) {
    throw new Error('Request too old');
  }
  const expectedSignature = hexHmac(secret, payload);
  if (!signature || signature.length !== expectedSignature.length ||
      !crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature))) {
    throw new Error('Invalid signature');
  }
  if (req.headers['x-webhook-id'] !== body.id) {
    throw new Error('X-Webhook-ID is not the event id');
  }
}

// Seed 004 (Fluxbase): its "Example: Express.js Handler".
function verifyFluxbase(req, body, secret) {
  const signature = req.headers['x-fluxbase-signature'];
  const payload = JSON.stringify(body);
  const expectedSignature = hexHmac(secret, payload);
  if (signature !== expectedSignature) {
    throw new Error('Invalid signature');
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://receiver');
    if (url.pathname === '/_secrets' && req.method === 'POST') {
      Object.assign(secrets, JSON.parse(raw));
      return send(res, 200, { ok: true });
    }
    if (url.pathname === '/_results') {
      return send(res, 200, results);
    }
    const name = url.pathname.split('/')[2] || '';
    const secret = secrets[name];
    const wanted = (url.searchParams.get('check') || 'standard').split(',');
    const checks = {};
    let ok = secret !== undefined;
    let body;
    try {
      body = JSON.parse(raw); // what express.json() does
    } catch (e) {
      ok = false;
      checks.json = String(e.message);
    }
    for (const w of wanted) {
      try {
        if (secret === undefined) {
          throw new Error(`no secret named ${name}`);
        } else if (w === 'standard') {
          new Webhook(secret).verify(raw, req.headers);
        } else if (w === 'omnisales') {
          verifyOmnisales(req, body, secret);
        } else if (w === 'fluxbase') {
          verifyFluxbase(req, body, secret);
        } else {
          throw new Error(`unknown check ${w}`);
        }
        checks[w] = true;
      } catch (e) {
        checks[w] = String(e.message || e);
        ok = false;
      }
    }
    results.push({ path: req.url, webhook_id: req.headers['webhook-id'] || null, ok, checks });
    send(res, ok ? 200 : 401, ok ? { received: true } : { error: 'Invalid signature', checks });
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
