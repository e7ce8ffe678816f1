// REINDEX_SHARE: the pause a reindex runner takes after each batch (src/fhir/reindex-jobs.ts),
// and how the setting is read (src/config.ts).
import t from 'tap';
import { defaultReindexShare, pauseAfterBatch } from '../../src/fhir/reindex-jobs.ts';
import { loadConfig } from '../../src/config.ts';
import type { Db } from '../../src/store/db.ts';

t.equal(pauseAfterBatch(800, 1), 0, 'all of the time: no pause');
t.equal(pauseAfterBatch(800, 0.5), 800, 'half: as long as the batch took');
t.equal(pauseAfterBatch(800, 0.25), 2400, 'a quarter: three times as long');
t.equal(pauseAfterBatch(5000, 0.1), 10_000, 'never more than 10 s (the job heartbeat goes stale at 30 s)');
t.equal(pauseAfterBatch(0, 0.5), 0);

t.equal(defaultReindexShare({ kind: 'pglite' } as Db), 0.5, 'embedded: half, requests wait for its one connection');
t.equal(defaultReindexShare({ kind: 'postgres' } as Db), 1, 'PostgreSQL: no pause');

t.equal(loadConfig({}).reindexShare, undefined, 'unset: the database decides');
t.equal(loadConfig({ REINDEX_SHARE: '0.25' }).reindexShare, 0.25);
t.equal(loadConfig({ REINDEX_SHARE: '1' }).reindexShare, 1);
for (const bad of ['0', '-0.5', '1.5', 'half']) {
  t.throws(() => loadConfig({ REINDEX_SHARE: bad }), /REINDEX_SHARE must be a number greater than 0 and at most 1/, `refused: ${bad}`);
}
