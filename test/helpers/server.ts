// Starts the real server for one test file, on the database the run targets (TEST_DB):
// a copy of the migrated PGlite template, or a fresh database on the PostgreSQL server.
// Listens on a loopback port so tests can use real HTTP clients as well as inject().
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { openDb, type Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { freePort } from '../../scripts/lib/postgres.ts';
import { serverCommand } from '../../scripts/lib/server-command.ts';

export const dbKind = process.env.TEST_DB === 'postgres' ? 'postgres' : 'pglite';

export interface TestServer {
  url: string; // the FHIR base, http://127.0.0.1:port/fhir
  server: FastifyInstance;
  db: Db;
  config: Config;
  /** Database settings for a separate server process on the same data (DATA_DIR / DATABASE_URL). */
  env: Record<string, string>;
  close(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * A fresh, migrated, empty database; returns its settings and a cleanup. On PostgreSQL it also
 * has a DATA_DIR of its own, for what a server keeps beside the database (the OpenID provider's
 * keys): never the repository's ./data, which test files running side by side would share.
 */
export async function freshDatabase(): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'fhir-test-'));
  const removeDir = async () => rmSync(dir, { recursive: true, force: true });
  if (dbKind === 'postgres') {
    const admin = process.env.TEST_DATABASE_URL;
    if (!admin) throw new Error('TEST_DB=postgres needs TEST_DATABASE_URL');
    const name = `t_${randomUUID().replace(/-/g, '')}`;
    const client = new pg.Client(admin);
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
    await client.end();
    const url = new URL(admin);
    url.pathname = `/${name}`;
    return {
      env: { DATABASE_URL: url.toString(), DATA_DIR: dir },
      cleanup: async () => {
        const c = new pg.Client(admin);
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
        await c.end();
        await removeDir();
      },
    };
  }
  const template = process.env.TEST_PGLITE_TEMPLATE;
  if (template) cpSync(template, dir, { recursive: true });
  return { env: { DATA_DIR: dir }, cleanup: removeDir };
}

export async function startServer(t: Teardown, overrides: Record<string, string> = {}): Promise<TestServer> {
  const fresh = await freshDatabase();
  // Mandatory profiles (FR Core, ANS) are off unless a test asks for them: tests of other
  // capabilities use minimal resources; test/validation.test.ts tests enforcement. So is the
  // storing of the packages' resources at first start (test/packages.test.ts tests it): tests
  // of other capabilities start from an empty database, and in a second rather than ten. So is the
  // audit trail (AUDIT=on by default, test/audit.test.ts and test/audit-store.test.ts test it): an event
  // committed per request is work the tests of other capabilities do not need.
  const config = loadConfig({ ...fresh.env, LOAD_FIXTURES: 'false', LOG_LEVEL: 'silent', REQUIRED_PROFILES: 'none', STORE_PACKAGE_RESOURCES: 'false', AUDIT: 'off', ...overrides });
  const db = await openDb(config);
  await migrate(db);
  const { server } = await buildApp(db, config, false);
  await server.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.server.address() as { port: number }).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.close();
    await db.close();
    await fresh.cleanup();
  };
  t.teardown(close);
  return { url: `http://127.0.0.1:${port}/fhir`, server, db, config, env: fresh.env, close };
}

/** An HTTP answer as tests read it: status, headers, the text and its JSON (undefined when not JSON). */
export type Answer = { status: number; headers: Headers; body: any; text: string };

export async function answerOf(res: { status: number; headers: unknown; text(): Promise<string> }): Promise<Answer> {
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers as Headers, body: parsed, text };
}

/** fetch() with FHIR JSON defaults; returns status, headers and the parsed body. */
export async function http(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { accept: 'application/fhir+json', ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/fhir+json';
  }
  return answerOf(await fetch(url, init));
}

/** The server as its own process, started as `npm start` does, on the given database settings; resolves when ready. */
export async function startServerProcess(env: Record<string, string>, extra: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const port = await freePort();
  const { command, args, cwd } = serverCommand(); // exactly what `npm start` runs
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOAD_FIXTURES: 'false', REQUIRED_PROFILES: 'none', STORE_PACKAGE_RESOURCES: 'false', AUDIT: 'off', ...extra },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}/fhir`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) return { child, url, exited };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`server exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not become ready: ${stderr}`);
}
