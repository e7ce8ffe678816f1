-- The audit trail gets a store of its own (src/store/audit.ts). Written as ordinary resources, an
-- AuditEvent cost a current row, a history row and about 20 index rows: some 50 index entries and
-- 0.55-0.71 ms of PostgreSQL CPU per audited request, more than the request itself. Here an event
-- is one append-only row and three index entries: its id (reads), its time (date searches, sort,
-- paging), and a GIN entry per search term that picks few events out of many (references,
-- identifiers). The other search terms (action, outcome, codes, names) are kept in the row,
-- unindexed: they narrow the rows an indexed term or a time range has found.
--
-- Terms are 'code=value' texts (src/audit/terms.ts builds them, src/audit/search.ts searches them):
-- references as 'agent=Practitioner/123'; tokens as 'action=R' (any system) and 'type=system|rest'
-- (or 'action=|R' without a system); strings as 'agent-name=<as written>' and
-- 'agent-name~<normalised>'. compartments holds the patients ('Patient/123') the access filter
-- reads, as resources.compartments does.
CREATE TABLE audit_events (
  id           text        PRIMARY KEY,
  seq          bigserial   NOT NULL,   -- insertion order: the tie-breaker of equal times, and the growth the embedded database's ANALYZE watches
  recorded     timestamptz NOT NULL,   -- AuditEvent.recorded, also its meta.lastUpdated
  content      text        NOT NULL,
  compartments text[]      NOT NULL DEFAULT '{}',
  refs         text[]      NOT NULL DEFAULT '{}',
  codes        text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_recorded ON audit_events (recorded, seq);
CREATE INDEX audit_events_refs ON audit_events USING gin (refs);

DO $$
BEGIN
  ALTER TABLE audit_events ALTER COLUMN content SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  NULL;
END
$$;

-- The events stored as resources move here, their terms taken from their index rows (as
-- src/audit/terms.ts would build them from the JSON), in the order they were written.
INSERT INTO audit_events (id, recorded, content, compartments, refs, codes)
SELECT r.id, r.last_updated, r.content, r.compartments,
  ARRAY(
    SELECT DISTINCT t FROM (
      SELECT s.code || '=' || coalesce(s.target_type || '/' || s.target_id, s.url) AS t
        FROM sp_reference s WHERE s.resource_type = 'AuditEvent' AND s.rid = r.rid AND s.code IN ('patient', 'agent', 'entity')
      UNION ALL
      SELECT s.code || '=' || v.t FROM sp_token s,
        LATERAL (VALUES (s.value), (coalesce(s.system, '') || '|' || s.value)) AS v(t)
        WHERE s.resource_type = 'AuditEvent' AND s.rid = r.rid AND s.code IN ('agent:identifier', 'entity:identifier', 'altid') AND s.value IS NOT NULL
    ) x WHERE t IS NOT NULL ORDER BY t
  ),
  ARRAY(
    SELECT DISTINCT t FROM (
      SELECT s.code || '=' || v.t AS t FROM sp_token s,
        LATERAL (VALUES (s.value), (coalesce(s.system, '') || '|' || s.value)) AS v(t)
        WHERE s.resource_type = 'AuditEvent' AND s.rid = r.rid AND s.code NOT IN ('agent:identifier', 'entity:identifier', 'altid') AND s.value IS NOT NULL
      UNION ALL
      SELECT s.code || '=' || s.value FROM sp_string s WHERE s.resource_type = 'AuditEvent' AND s.rid = r.rid
      UNION ALL
      SELECT s.code || '~' || s.norm FROM sp_string s WHERE s.resource_type = 'AuditEvent' AND s.rid = r.rid
    ) x WHERE t IS NOT NULL ORDER BY t
  )
FROM resources r
WHERE r.resource_type = 'AuditEvent' AND NOT r.deleted AND r.content IS NOT NULL
ORDER BY r.rid;

DELETE FROM sp_string WHERE resource_type = 'AuditEvent';
DELETE FROM sp_token WHERE resource_type = 'AuditEvent';
DELETE FROM sp_date WHERE resource_type = 'AuditEvent';
DELETE FROM sp_reference WHERE resource_type = 'AuditEvent';
DELETE FROM sp_uri WHERE resource_type = 'AuditEvent';
DELETE FROM sp_number WHERE resource_type = 'AuditEvent';
DELETE FROM sp_quantity WHERE resource_type = 'AuditEvent';
DELETE FROM sp_composite WHERE resource_type = 'AuditEvent';
DELETE FROM sp_text WHERE rid IN (SELECT rid FROM resources WHERE resource_type = 'AuditEvent');
DELETE FROM resource_history WHERE resource_type = 'AuditEvent';
DELETE FROM resources WHERE resource_type = 'AuditEvent';

-- Every event is written here from now on: the set-wise resource insert of migration 010 goes.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname = 'fhir_insert_audit_events' LOOP
    EXECUTE 'DROP FUNCTION ' || f;
  END LOOP;
END
$$;
