// The bare limits the FHIR server is compared with: a minimal fastify app, started as its
// own process by scripts/bench-rest.ts on the same database (same DATA_DIR / DATABASE_URL,
// same Db abstraction and pool size), with three routes:
//   GET  /fixed    a fixed patient-sized JSON body (HTTP stack + fastify, no database)
//   GET  /pg/:id   SELECT content FROM resources WHERE resource_type = 'Patient' AND id = $1
//   POST /pg       one INSERT of the body text into the scratch table bench_bare
// Settings come from the same environment variables as the server (src/config.ts).
// Ready when GET /readyz answers 200; stops on SIGTERM/SIGINT after closing the database.
import Fastify from 'fastify';
import { mkdirSync } from 'node:fs';
import { loadConfig } from '../../../src/config.ts';
import { openDb } from '../../../src/store/db.ts';
import { makePatient, seeded } from './patients.ts';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

const config = loadConfig();
if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
const db = await openDb(config);
await db.exec('CREATE TABLE IF NOT EXISTS bench_bare (id bigserial primary key, content text)');

// A stored-looking patient (id and meta like the server writes), serialised once.
const fixed = JSON.stringify({
  ...makePatient(seeded(42)),
  id: '6f1c1c4e-9a55-4a53-8d1c-1f0e7c2b9a10',
  meta: { versionId: '1', lastUpdated: new Date().toISOString() },
});

const app = Fastify({ logger: { level: config.logLevel }, bodyLimit: config.bodyLimit });
app.removeAllContentTypeParsers();
// The body stays text: the bare insert stores what was sent, without parsing it.
app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

app.get('/healthz', async () => ({ status: 'ok', database: db.kind }));
// Answers once the database has worked through what was queued before (used between steps).
app.get('/readyz', async () => {
  await db.query('SELECT 1');
  return { status: 'ready', database: db.kind };
});

app.get('/fixed', async (_request, reply) => reply.type(FHIR_JSON).send(fixed));

app.get<{ Params: { id: string } }>('/pg/:id', async (request, reply) => {
  const r = await db.query<{ content: string }>("SELECT content FROM resources WHERE resource_type = 'Patient' AND id = $1", [request.params.id]);
  if (r.rows.length === 0) return reply.code(404).type(FHIR_JSON).send('{"resourceType":"OperationOutcome"}');
  return reply.type(FHIR_JSON).send(r.rows[0].content);
});

app.post('/pg', async (request, reply) => {
  const r = await db.query<{ id: string }>('INSERT INTO bench_bare (content) VALUES ($1) RETURNING id', [request.body as string]);
  return reply.code(201).type(FHIR_JSON).send(`{"id":"${r.rows[0].id}"}`);
});

await app.listen({ host: config.host, port: config.port });

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await app.close();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
