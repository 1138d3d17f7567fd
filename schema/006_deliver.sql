-- SPDX-License-Identifier: ISC
-- Delivery worker: room on hookd.deliveries pages for the lease update, and an index for
-- stats over a recent window of attempts.

-- A lease changes only lease_until and leased_by, which no index covers: with room on the
-- page Postgres updates the row in place (a HOT update, no new index entries). Half-full
-- pages leave room for a whole page of leases (a lease batch takes neighbouring rows);
-- measured with contrib/bench/deliver: Postgres CPU per delivery 71 us at the default
-- fillfactor, 49 us at 50. Pages filled before this keep their layout until rewritten.
ALTER TABLE hookd.deliveries SET (fillfactor = 50);

-- GET /api/v1/stats reads the attempts of a recent window across every subscription;
-- attempts are appended in time order, so a BRIN index finds the window for almost no
-- upkeep on the write path (per subscription, attempts_subscription serves).
CREATE INDEX attempts_started ON hookd.attempts USING brin (started_at);
