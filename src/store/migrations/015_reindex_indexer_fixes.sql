-- The indexer now indexes primitive values that carry extensions (a `"_family": {...}` beside the
-- value was skipped) and codes stored without a system for :in / :not-in. Rows written before
-- miss those entries: a database that holds resources gets one reindex job over every type
-- (src/fhir/reindex-jobs.ts runs it in the background, at the next start; its progress is at
-- $reindex-status/indexer-fixes-2026-11). An empty database needs none.
INSERT INTO reindex_jobs (id, types, reason, catchup)
SELECT 'indexer-fixes-2026-11', NULL, 'indexer fixes: primitive values with extensions, codes without a system', false
WHERE EXISTS (SELECT 1 FROM resources WHERE NOT deleted)
ON CONFLICT (id) DO NOTHING;
