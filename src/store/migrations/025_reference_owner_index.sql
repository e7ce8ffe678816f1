-- References by their owner: (resource_type, rid, code) with their targets, in place of
-- sp_reference_rid (rid) and sp_reference_source (resource_type, code, rid). With both of those,
-- a lookup by the owner's type, rid and code (a `_has` link from the resources it found to their
-- targets, an `_include` from a page, an EXISTS by rid) had two indexes of equal estimated cost,
-- and PostgreSQL's pick between them changed with its statistics: after a restart of the 1M
-- database it took sp_reference_rid, whose heap rows of one type lie among all the others, and
-- Patient?_has:CareTeam:patient:participant=… fell from 513 back to 190-320 requests/s. One
-- index leaves no pick; its entries of one type are together (the care teams' 350,000 references
-- in about 30 MB at 1M), read index-only. What looked rows up by rid alone now names the type.
CREATE INDEX IF NOT EXISTS sp_reference_owner ON sp_reference (resource_type, rid, code) INCLUDE (target_type, target_id);
DROP INDEX IF EXISTS sp_reference_source;
DROP INDEX IF EXISTS sp_reference_rid;

-- As in 003, but a resource's references are found by its type and rid (sp_reference_owner).
CREATE OR REPLACE FUNCTION fhir_clear_index(p_rid bigint, p_mask smallint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_mask & 1 <> 0 THEN DELETE FROM sp_string WHERE rid = p_rid; END IF;
  IF p_mask & 2 <> 0 THEN DELETE FROM sp_token WHERE rid = p_rid; END IF;
  IF p_mask & 4 <> 0 THEN DELETE FROM sp_date WHERE rid = p_rid; END IF;
  IF p_mask & 8 <> 0 THEN DELETE FROM sp_number WHERE rid = p_rid; END IF;
  IF p_mask & 16 <> 0 THEN DELETE FROM sp_quantity WHERE rid = p_rid; END IF;
  IF p_mask & 32 <> 0 THEN
    DELETE FROM sp_reference WHERE resource_type = (SELECT r.resource_type FROM resources r WHERE r.rid = p_rid) AND rid = p_rid;
  END IF;
  IF p_mask & 64 <> 0 THEN DELETE FROM sp_uri WHERE rid = p_rid; END IF;
  IF p_mask & 128 <> 0 THEN DELETE FROM sp_composite WHERE rid = p_rid; END IF;
  IF p_mask & 256 <> 0 THEN DELETE FROM sp_text WHERE rid = p_rid; END IF;
END
$$;

-- As in 016, the author references found by the row's type and rid.
CREATE OR REPLACE FUNCTION fhir_label_hides(p_rid bigint, systems text[], labels text[], authors text[])
RETURNS boolean LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
  RETURN EXISTS (
      SELECT 1 FROM sp_token l
      WHERE l.rid = p_rid AND l.code IN ('_security', 'security-label') AND l.system = ANY(systems) AND l.value = ANY(labels))
    AND NOT EXISTS (
      SELECT 1 FROM sp_reference a
      WHERE a.resource_type = (SELECT r.resource_type FROM resources r WHERE r.rid = p_rid) AND a.rid = p_rid
        AND a.code = 'author' AND a.target_type || '/' || a.target_id = ANY(authors));
END
$$;
