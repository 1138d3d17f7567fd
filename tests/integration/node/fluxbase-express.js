// SPDX-License-Identifier: ISC
// Seed 004's "Example: Express.js Handler", run for real against hookd's change deliveries.
//
// The route handler below is the seed's, word for word (express.json(), JSON.stringify of
// the parsed body, a hex HMAC-SHA256 keyed with FLUXBASE_WEBHOOK_SECRET compared with
// X-Fluxbase-Signature, 401 'Invalid signature' or 200 'OK'). What is added, for the tests:
//   - the handleInsert/handleUpdate/handleDelete functions the seed leaves to the reader,
//     which record what they were given;
//   - a middleware that records every answer (status, event, table, webhook id);
//   - GET /_received, the records;
//   - listening on a free loopback port (printed as "listening on PORT") instead of 3000.
//
// NODE_PATH must name a node_modules holding express: the node_modules fixture
// (conftest.py) installs the exact versions of package-lock.json beside this file.
'use strict';

const express = require('express');
const crypto = require('crypto');

const app = express();
app.use(express.json());

// Webhook secret from Fluxbase dashboard
const WEBHOOK_SECRET = process.env.FLUXBASE_WEBHOOK_SECRET;

// --- recording (not in the seed) ----------------------------------------------------------
const received = [];
const handled = [];

function handleInsert(table, record) {
  handled.push({ op: 'INSERT', table, record, old_record: null });
}

function handleUpdate(table, record, oldRecord) {
  handled.push({ op: 'UPDATE', table, record, old_record: oldRecord });
}

function handleDelete(table, record) {
  handled.push({ op: 'DELETE', table, record, old_record: null });
}

app.use((req, res, next) => {
  res.on('finish', () => {
    received.push({
      path: req.path,
      status: res.statusCode,
      event: req.body ? req.body.event : null,
      table: req.body ? req.body.table : null,
      webhook_id: req.body ? req.body.webhook_id : null,
      message_id: req.headers['webhook-id'] || null,
    });
  });
  next();
});

app.get('/_received', (req, res) => {
  res.json({ received, handled });
});
// ---------------------------------------------------------------------------------------------

app.post('/webhooks/fluxbase', (req, res) => {
  // Verify webhook signature
  const signature = req.headers['x-fluxbase-signature'];
  const payload = JSON.stringify(req.body);

  if (WEBHOOK_SECRET) {
    const expectedSignature = crypto
      .createHmac('sha256', WEBHOOK_SECRET)
      .update(payload)
      .digest('hex');

    if (signature !== expectedSignature) {
      return res.status(401).send('Invalid signature');
    }
  }

  // Process the webhook event
  const { event, table, record } = req.body;

  console.log(`Received ${event} event for ${table}`);
  console.log('Record:', record);

  // Handle the event
  switch (event) {
    case 'INSERT':
      handleInsert(table, record);
      break;
    case 'UPDATE':
      handleUpdate(table, record, req.body.old_record);
      break;
    case 'DELETE':
      handleDelete(table, record);
      break;
  }

  // Acknowledge receipt
  res.status(200).send('OK');
});

const server = app.listen(0, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
