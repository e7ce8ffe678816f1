-- Date windows (date=ge2027-01-04&date=lt2027-01-11, or date=2027-01-04): sp_date_range
-- (resource_type, code, low, high) bounds a window's start from above only, so a week of
-- appointments scanned every earlier appointment's entry (170,000 at 1M). Most dates span a
-- day or less (instants, dateTimes, days, appointments), and such a value touches the window
-- [A, B] only when its start lies in [A - 1 day, B]: bounded on both sides. `short` marks those
-- rows (computed by PostgreSQL, so no writer can get it wrong; CASE because infinite bounds
-- cannot be subtracted); the search (sql.ts, windowArms) reads short rows from the first index
-- below and the rest (long or open periods, a few percent) from the second.
-- vacuum-after: sp_date
ALTER TABLE sp_date ADD COLUMN short boolean NOT NULL
  GENERATED ALWAYS AS (CASE WHEN isfinite(low) AND isfinite(high) THEN high - low <= interval '1 day' ELSE false END) STORED;
CREATE INDEX sp_date_short ON sp_date (resource_type, code, low) INCLUDE (high, rid) WHERE short;
CREATE INDEX sp_date_long ON sp_date (resource_type, code, low, high) INCLUDE (rid) WHERE NOT short;
ANALYZE sp_date;
