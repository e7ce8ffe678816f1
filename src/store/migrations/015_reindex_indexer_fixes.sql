-- The indexer now indexes primitive values that carry extensions (a `"_family": {...}` beside the
-- value was skipped). Rows written before miss those entries: a database that holds resources
-- gets one reindex job over the types it holds (src/fhir/reindex-jobs.ts runs it in the
-- background from the next start; its progress is at $reindex-status/indexer-fixes-2026-11).
-- AuditEvents are left out: the server writes them, never with extensions on primitives, and
-- they are most of the rows of a long-running database. An empty database needs no job.
INSERT INTO reindex_jobs (id, types, reason, catchup)
SELECT 'indexer-fixes-2026-11', array_agg(t.resource_type ORDER BY t.resource_type), 'indexer fix: primitive values with extensions', false
FROM (SELECT DISTINCT resource_type FROM resources WHERE NOT deleted AND resource_type <> 'AuditEvent') AS t
HAVING count(*) > 0
ON CONFLICT (id) DO NOTHING;
