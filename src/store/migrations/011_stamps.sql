-- Named change counters, one row each, read by every server process to know whether what it
-- derived from stored data is stale (src/store/stamps.ts):
--   conformance  bumped with every write of a StructureDefinition, ValueSet or CodeSystem
--                (the catalog's stored overlay, terminology lookups); was conformance_stamp (009)
--   access       bumped with every write of the resources care-team rights are computed from
--                (CareTeam, PractitionerRole, Organization, Consent, RelatedPerson): the rights
--                each process keeps per caller (src/access/cache.ts)
CREATE TABLE IF NOT EXISTS stamps (
  name text PRIMARY KEY,
  n bigint NOT NULL
);
INSERT INTO stamps (name, n) SELECT 'conformance', n FROM conformance_stamp WHERE id = 1 ON CONFLICT (name) DO NOTHING;
INSERT INTO stamps (name, n) VALUES ('conformance', 0), ('access', 0) ON CONFLICT (name) DO NOTHING;
DROP TABLE conformance_stamp;
