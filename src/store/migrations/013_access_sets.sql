-- The patient sets of care-team rights (src/access/filter.ts), stored once instead of sent with
-- every query: a member of 1,000 teams made each query carry a 37 kB array, which the server
-- serialised and PostgreSQL parsed again (half of a filtered search's cost). A set is named by a
-- hash of its sorted members, so equal sets are shared; `used` is refreshed whenever a server
-- process computes rights that use it, and sets unused for a week are dropped (store/access-sets.ts).
CREATE TABLE IF NOT EXISTS access_sets (
  set_id text NOT NULL,
  patient text NOT NULL,
  PRIMARY KEY (set_id, patient)
);
CREATE TABLE IF NOT EXISTS access_set_use (
  set_id text PRIMARY KEY,
  used timestamptz NOT NULL
);
