// Two versions of the server measured side by side (bench-search --compare REF): the other version is
// checked out in a git worktree of its own and served on the same database, and each step is
// measured on both, alternately, round after round. On a machine whose speed drifts by a quarter
// between runs of minutes, only figures taken this close together can be compared.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CpuShare } from './cpu.ts';
import { median } from './rounds.ts';

export interface Checkout {
  /** The worktree: the server is started from its src/main.ts. */
  dir: string;
  commit: string;
  remove(): void;
}

/** A worktree of `ref` beside the repository at `root`, sharing its node_modules. */
export function checkout(root: string, ref: string): Checkout {
  const git = (...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const commit = git('rev-parse', '--short', `${ref}^{commit}`);
  const dir = mkdtempSync(join(tmpdir(), 'fhir-bench-compare-'));
  git('worktree', 'add', '--detach', dir, commit);
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return {
    dir,
    commit,
    remove() {
      try {
        git('worktree', 'remove', '--force', dir);
      } catch {
        // already gone
      }
    },
  };
}

/** One measured run of one step on one version. */
export interface ArmRun {
  reqPerSec: number;
  p50: number;
  p99: number;
  failures: number;
  cpu?: CpuShare;
}

export interface ArmSummary {
  runs: number;
  reqPerSec: number;
  p50: number;
  /** CPU time per request, in µs, of the version's server process and of PostgreSQL. */
  serverUs?: number;
  databaseUs?: number;
  failures: number;
}

/** Medians over the rounds; CPU per request from each run's share of a core and its throughput. */
export function summarize(runs: ArmRun[]): ArmSummary {
  const perRequest = (share: (c: CpuShare) => number | undefined) => {
    const xs = runs.flatMap((r) => {
      const v = r.cpu && share(r.cpu);
      return v === undefined || !r.reqPerSec ? [] : [(v / 100) * 1e6 / r.reqPerSec];
    });
    return xs.length ? median(xs) : undefined;
  };
  return {
    runs: runs.length,
    reqPerSec: median(runs.map((r) => r.reqPerSec)),
    p50: median(runs.map((r) => r.p50)),
    serverUs: perRequest((c) => c.server),
    databaseUs: perRequest((c) => c.database),
    failures: runs.reduce((n, r) => n + r.failures, 0),
  };
}
