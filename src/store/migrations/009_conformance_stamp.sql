-- A counter bumped in the same transaction as every write of a StructureDefinition, ValueSet or
-- CodeSystem (conformance/stored.ts). Each server process caches what it derives from the stored
-- ones (the catalog's overlay, terminology lookups) and reads this one row to know whether a
-- write, by itself or by another process on the same database, made its caches stale.
CREATE TABLE IF NOT EXISTS conformance_stamp (
  id smallint PRIMARY KEY CHECK (id = 1),
  n bigint NOT NULL
);
INSERT INTO conformance_stamp (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
