// Starts a throwaway PostgreSQL server for tests and benchmarks: initdb into a temporary
// folder, listen on a free loopback port, trust authentication. Works as root by running
// the server as the `postgres` system user (PostgreSQL refuses to run as root).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** Runs fn on a client of its own, connected to url and closed afterwards. */
export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(url);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface TestPostgres {
  url: string;
  /** The cluster's data folder. */
  dataDir: string;
  stop(): void;
  /** Stops the server cleanly and keeps the data folder, for a later startPostgres({ dataDir }). */
  stopAndKeep(): void;
}

function findBin(name: string): string | undefined {
  const fromPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (fromPath) return fromPath;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(root, v, 'bin', name))) return join(root, v, 'bin', name);
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A new throwaway cluster, or (dataDir) one kept by stopAndKeep() started again. */
export async function startPostgres(options: { dataDir?: string; settings?: string[] } = {}): Promise<TestPostgres> {
  const initdb = findBin('initdb');
  const pgCtl = findBin('pg_ctl');
  if (!initdb || !pgCtl) {
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL (apt-get install postgresql) or set TEST_DATABASE_URL');
  }
  const asRoot = process.getuid?.() === 0;
  // runuser lives in /usr/sbin, which a non-login root shell may not have on its PATH.
  const runuser = asRoot ? (['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p)) ?? 'runuser') : '';
  const dir = options.dataDir ? dirname(options.dataDir) : mkdtempSync(join(tmpdir(), 'fhir-pg-'));
  const data = options.dataDir ?? join(dir, 'data');
  const run = (cmd: string, args: string[]) =>
    asRoot ? execFileSync(runuser, ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe' }) : execFileSync(cmd, args, { stdio: 'pipe' });
  // A dataDir that does not exist yet is created (and kept by stopAndKeep, for a later run).
  if (!options.dataDir || !existsSync(data)) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o777);
    run(initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  }
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB${(options.settings ?? []).map((x) => ` -c ${x}`).join('')}`;
  run(pgCtl, ['-D', data, '-o', opts, '-l', join(dir, 'postgres.log'), '-w', 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir: data,
    stopAndKeep() {
      run(pgCtl, ['-D', data, '-m', 'fast', 'stop']);
    },
    stop() {
      try {
        run(pgCtl, ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
