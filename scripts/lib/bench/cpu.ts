// Where the machine's CPU went during a step, from /proc: the server under test, the
// PostgreSQL cluster (postmaster and its children), this process (autocannon, the load
// generator), and everything else ("other": anything running beside the benchmark,
// which makes the figures unreliable when it is high). Percentages of one core.
import { readdirSync, readFileSync } from 'node:fs';
import { withClient } from '../postgres.ts';

const TICK = 100; // USER_HZ: clock ticks per second in /proc (100 on Linux)

function procTicks(pid: number): { ticks: number; ppid: number; reaped: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), counted from
    // the closing paren. cutime + cstime: the ticks of children that exited and were waited for.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ticks: Number(f[11]) + Number(f[12]), ppid: Number(f[1]), reaped: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

function machineTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = line;
  return user + nice + system + irq + softirq + steal;
}

/**
 * What a PostgreSQL process is, from its title ("postgres: autovacuum worker fhir",
 * "postgres: postgres fhir 127.0.0.1(5432) idle", "postgres: walwriter"): a client backend, an
 * autovacuum worker or launcher, or another background process (walwriter, checkpointer, ...).
 */
function postgresKind(pid: number): string {
  let title = '';
  try {
    title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return 'gone';
  }
  if (/autovacuum/.test(title)) return 'autovacuum';
  const m = /^postgres: (\S+)/.exec(title);
  if (!m) return 'postmaster';
  if (/^(walwriter|checkpointer|background|logical|archiver|stats|walsender|walreceiver)/.test(m[1])) return m[1] === 'background' ? 'bgwriter' : m[1];
  return 'backend';
}

/** The CPU ticks of each live process descending from root (root included), by pid. */
function descendantsTicks(root: number): Map<number, number> {
  const parents = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = procTicks(Number(name));
    if (!p) continue;
    parents.set(Number(name), p.ppid);
    ticks.set(Number(name), p.ticks);
  }
  const out = new Map<number, number>();
  for (const [pid, t] of ticks) {
    for (let cur: number | undefined = pid; cur !== undefined && cur > 1; cur = parents.get(cur)) {
      if (cur === root) {
        out.set(pid, t);
        break;
      }
    }
  }
  return out;
}

/**
 * The ticks the cluster spent since the start, by kind of process. A process alive at both ends:
 * its difference; one started meanwhile: all its ticks. A process that exited meanwhile (an
 * autovacuum worker, a backend a pool closed) is in the postmaster's reaped ticks with its whole
 * life; its ticks before the start, known from the start's reading, are taken out again.
 */
function clusterTicksSince(postmasterPid: number, start: ClusterTicks, end: ClusterTicks): { total: number; kinds: Map<string, number> } {
  const kinds = new Map<string, number>();
  const add = (kind: string, t: number) => {
    if (t > 0) kinds.set(kind, (kinds.get(kind) ?? 0) + t);
  };
  for (const [pid, t] of end.ticks) add(pid === postmasterPid ? 'postmaster' : postgresKind(pid), t - (start.ticks.get(pid) ?? 0));
  let goneBefore = 0;
  for (const [pid, t] of start.ticks) if (!end.ticks.has(pid)) goneBefore += t;
  add('exited', end.reaped - start.reaped - goneBefore);
  let total = 0;
  for (const t of kinds.values()) total += t;
  return { total, kinds };
}

interface ClusterTicks {
  ticks: Map<number, number>;
  reaped: number;
}

function clusterTicks(postmasterPid: number): ClusterTicks {
  return { ticks: descendantsTicks(postmasterPid), reaped: procTicks(postmasterPid)?.reaped ?? 0 };
}

export interface CpuShare {
  /** Percent of one core. */
  server: number;
  database?: number;
  /** The database's share by kind of process: client backends, autovacuum, walwriter, checkpointer, ... */
  databaseKinds?: Record<string, number>;
  loadgen: number;
  other: number;
  machine: number;
  cores: number;
}

export interface CpuWatch {
  stop(): CpuShare;
}

/** Starts measuring; postmasterPid counts the PostgreSQL cluster separately (its processes). */
export function watchCpu(serverPid: number, postmasterPid: number | undefined, cores: number): CpuWatch {
  const t0 = performance.now();
  const m0 = machineTicks();
  const s0 = procTicks(serverPid)?.ticks ?? 0;
  const d0 = postmasterPid ? clusterTicks(postmasterPid) : undefined;
  const c0 = process.cpuUsage();
  return {
    stop() {
      const seconds = (performance.now() - t0) / 1000;
      const pct = (ticks: number) => Math.round((ticks / TICK / seconds) * 100);
      const machine = pct(machineTicks() - m0);
      const server = pct((procTicks(serverPid)?.ticks ?? s0) - s0);
      const cluster = postmasterPid && d0 ? clusterTicksSince(postmasterPid, d0, clusterTicks(postmasterPid)) : undefined;
      const database = cluster ? pct(cluster.total) : undefined;
      const databaseKinds = cluster ? Object.fromEntries([...cluster.kinds].map(([k, t]) => [k, pct(t)])) : undefined;
      const c = process.cpuUsage(c0);
      const loadgen = Math.round(((c.user + c.system) / 1e6 / seconds) * 100);
      const other = Math.max(0, machine - server - (database ?? 0) - loadgen);
      return { server, database, ...(databaseKinds ? { databaseKinds } : {}), loadgen, other, machine, cores };
    },
  };
}

/** The postmaster's pid: the parent of a backend of ours. */
export async function postmasterPidFromBackend(url: string): Promise<number | undefined> {
  // Read while the backend lives: once the connection closes its /proc entry is gone.
  return withClient(url, async (c) => procTicks(Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid))?.ppid);
}

/** CPU time (server and database processes) per answered request, in ms: what a request costs whatever else runs. */
export function cpuMsPerRequest(r: { reqPerSec: number; cpu?: Pick<CpuShare, 'server' | 'database'> }): number {
  if (!r.cpu || !r.reqPerSec) return NaN;
  return ((r.cpu.server + (r.cpu.database ?? 0)) / 100) * 1000 / r.reqPerSec;
}
