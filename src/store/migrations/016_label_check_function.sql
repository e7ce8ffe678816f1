-- The visibility-label check of the access filter (src/access/filter.ts) as a function: written
-- inline, its two subqueries were planned with every filtered query (0.2-0.4 ms of planning, half
-- of what the filter added to a search on PostgreSQL), though they run only for the rare rows whose
-- index_mask has the labelled bit (512). A PL/pgSQL body keeps them out of the query's plan: they
-- are planned once per connection and run only when the bit is set (the caller tests it first).
-- hidden: the row carries one of `labels` (in one of `systems`) in meta.security or securityLabel,
-- and none of `authors` (Practitioner/x, PractitionerRole/y) is its author.
CREATE OR REPLACE FUNCTION fhir_label_hides(p_rid bigint, systems text[], labels text[], authors text[])
RETURNS boolean LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
  RETURN EXISTS (
      SELECT 1 FROM sp_token l
      WHERE l.rid = p_rid AND l.code IN ('_security', 'security-label') AND l.system = ANY(systems) AND l.value = ANY(labels))
    AND NOT EXISTS (
      SELECT 1 FROM sp_reference a
      WHERE a.rid = p_rid AND a.code = 'author' AND a.target_type || '/' || a.target_id = ANY(authors));
END
$$;
