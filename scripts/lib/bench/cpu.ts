// Where the machine's CPU went during a step, from /proc: the server under test, the
// PostgreSQL cluster (postmaster and its children), this process (autocannon, the load
// generator), and everything else ("other": anything running beside the benchmark,
// which makes the figures unreliable when it is high). Percentages of one core.
import { readdirSync, readFileSync } from 'node:fs';

const TICK = 100; // USER_HZ: clock ticks per second in /proc (100 on Linux)

function procTicks(pid: number): { ticks: number; ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state ppid ... utime(14) stime(15), counted from the closing paren.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ticks: Number(f[11]) + Number(f[12]), ppid: Number(f[1]) };
  } catch {
    return undefined;
  }
}

function machineTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = line;
  return user + nice + system + irq + softirq + steal;
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
 * The ticks the processes alive at the end spent since the start (a process started meanwhile: all
 * of its ticks). Per process, not total against total: a backend that exits during the step (a pool
 * closing an idle connection) would otherwise take the ticks of its whole life out of the sum, which
 * came out negative (shown as 0 for PostgreSQL, and the rest under "other"). Its ticks of the step
 * itself are lost: an underestimate at worst.
 */
function ticksSince(start: Map<number, number>, end: Map<number, number>): number {
  let total = 0;
  for (const [pid, t] of end) total += Math.max(0, t - (start.get(pid) ?? 0));
  return total;
}

export interface CpuShare {
  /** Percent of one core. */
  server: number;
  database?: number;
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
  const d0 = postmasterPid ? descendantsTicks(postmasterPid) : undefined;
  const c0 = process.cpuUsage();
  return {
    stop() {
      const seconds = (performance.now() - t0) / 1000;
      const pct = (ticks: number) => Math.round((ticks / TICK / seconds) * 100);
      const machine = pct(machineTicks() - m0);
      const server = pct((procTicks(serverPid)?.ticks ?? s0) - s0);
      const database = postmasterPid && d0 ? pct(ticksSince(d0, descendantsTicks(postmasterPid))) : undefined;
      const c = process.cpuUsage(c0);
      const loadgen = Math.round(((c.user + c.system) / 1e6 / seconds) * 100);
      const other = Math.max(0, machine - server - (database ?? 0) - loadgen);
      return { server, database, loadgen, other, machine, cores };
    },
  };
}

/** The postmaster's pid: the parent of a backend of ours. */
export async function postmasterPidFromBackend(url: string): Promise<number | undefined> {
  const { default: pg } = await import('pg');
  const c = new pg.Client(url);
  await c.connect();
  try {
    const backend = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    return procTicks(backend)?.ppid;
  } finally {
    await c.end();
  }
}
