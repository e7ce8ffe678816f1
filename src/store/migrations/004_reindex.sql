-- Reindexing (src/fhir/reindex-jobs.ts): rewriting the search index rows of stored resources
-- when the search parameters change (a SearchParameter resource is created or edited, or an
-- index table gains columns), as background jobs whose state survives restarts.

-- Rewrites the index rows of one resource from its current content, WITHOUT a new version:
-- versionId, lastUpdated and history stay as they are. p_version is the version the caller
-- indexed; if the resource changed (or was deleted) since, the write that changed it indexed
-- it already, and nothing is done (false). The row lock orders this with concurrent writers.
-- Every index table is cleared, not only those index_mask names: a reindex also repairs.
CREATE FUNCTION fhir_reindex_resource(
  p_rid bigint, p_version integer, p_type text, p_compartments text[], p_mask smallint, p_index fhir_index
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM resources WHERE rid = p_rid AND version_id = p_version AND NOT deleted FOR UPDATE;
  IF NOT FOUND THEN RETURN false; END IF;
  PERFORM fhir_clear_index(p_rid, 32767::smallint);
  UPDATE resources SET compartments = p_compartments, index_mask = p_mask WHERE rid = p_rid;
  PERFORM fhir_write_index(p_rid, p_type, p_index);
  RETURN true;
END
$$;

-- One reindex job: the resources of `types` (NULL: every type), walked by rid in batches, each
-- batch one transaction that also advances next_rid, so a job interrupted anywhere resumes
-- where it stopped (a batch redone is harmless: reindexing is idempotent). Phase 'main' walks
-- every resource; phase 'catchup' (jobs started by a definition change) then walks again those
-- written around the change (writes that were in flight, or made by a process that had not yet
-- seen the new definitions, when the main phase passed them).
CREATE TABLE reindex_jobs (
  id           text        PRIMARY KEY,
  status       text        NOT NULL DEFAULT 'queued', -- queued | running | completed | failed | cancelled
  types        text[],
  reason       text        NOT NULL,
  phase        text        NOT NULL DEFAULT 'main',   -- main | catchup
  catchup      boolean     NOT NULL DEFAULT true,     -- false: no catch-up phase (a $reindex that follows no definition change)
  next_rid     bigint      NOT NULL DEFAULT 0,        -- resources with a larger rid are still to do in this phase
  total        bigint,                                -- resources to reindex, counted when the job starts
  reindexed    bigint      NOT NULL DEFAULT 0,        -- main phase
  caught_up    bigint      NOT NULL DEFAULT 0,        -- catch-up phase
  skipped      bigint      NOT NULL DEFAULT 0,        -- changed or deleted concurrently: their own write indexed them
  failed       bigint      NOT NULL DEFAULT 0,        -- content the indexer could not read
  error        text,
  owner        text,                                  -- the server process running it
  heartbeat    timestamptz,                           -- a running job whose heartbeat stops is taken over
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz
);
CREATE INDEX reindex_jobs_pending ON reindex_jobs (created_at) WHERE status IN ('queued', 'running');
