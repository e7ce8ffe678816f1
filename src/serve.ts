// The server process (started by main.ts): open the database (PostgreSQL with DATABASE_URL, else the
// embedded PGlite in DATA_DIR), migrate, seed an empty database, serve, and shut down
// gracefully on SIGTERM/SIGINT (in-flight requests finish first).
import { mkdirSync } from 'node:fs';
import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';
import { limitsOf } from './fhir/context.ts';
import { openDb } from './store/db.ts';
import { startAutoAnalyze } from './store/analyze.ts';
import { migrate } from './store/migrate.ts';
import { isEmpty, loadFixtures } from './store/seed.ts';

const config = loadConfig();
const scheme = config.tlsCert ? 'https' : 'http';
if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
const db = await openDb(config);
await migrate(db);
const { server, state } = await buildApp(db, config);
if (config.loadFixtures && (await isEmpty(db))) {
  const n = await loadFixtures(db, limitsOf(config), config.baseUrl ?? `${scheme}://${config.host}:${config.port}/fhir`);
  server.log.info({ resources: n }, 'empty database: demo fixtures loaded');
}
await server.listen({ host: config.host, port: config.port });
server.log.info({ database: db.kind, fhir: `${scheme}://${config.host}:${config.port}/fhir` }, 'FHIR server ready');
// PostgreSQL's autovacuum keeps the planner's statistics; the embedded database has none.
const analyze = db.kind === 'pglite' && config.analyzeCheckMs > 0 ? startAutoAnalyze(db, config.analyzeCheckMs, (msg, detail) => server.log.info(detail, msg)) : undefined;
void analyze?.check().catch((err) => server.log.error({ err }, 'ANALYZE failed'));

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  state.shuttingDown = true;
  server.log.info({ signal }, 'shutting down: finishing in-flight requests');
  await server.close();
  await analyze?.stop();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
