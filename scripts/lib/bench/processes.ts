// Child processes of a benchmark: start a Node server script with an environment, wait
// until it answers, sample its resident memory from /proc/<pid>/status, stop it
// (SIGTERM, then SIGKILL), and a registry that tears everything down on exit, error or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';

// ---------------------------------------------------------------- cleanup registry

type Cleanup = { name: string; sync: () => void; async?: () => Promise<void> };
const cleanups = new Map<number, Cleanup>();
let nextCleanup = 1;

/** Registers something to undo at the end; returns a function that unregisters it. */
export function onCleanup(name: string, sync: () => void, async?: () => Promise<void>): () => void {
  const key = nextCleanup++;
  cleanups.set(key, { name, sync, async });
  return () => cleanups.delete(key);
}

/** Runs every registered cleanup (latest first), the graceful way when given. */
export async function cleanupAll(): Promise<void> {
  const all = [...cleanups.entries()].reverse();
  cleanups.clear();
  for (const [, c] of all) {
    try {
      if (c.async) await c.async();
      else c.sync();
    } catch (err) {
      console.error(`cleanup of ${c.name} failed: ${(err as Error).message}`);
    }
  }
}

function cleanupAllSync(): void {
  const all = [...cleanups.values()].reverse();
  cleanups.clear();
  for (const c of all) {
    try {
      c.sync();
    } catch {
      // best effort on the way out
    }
  }
}

let installed = false;
/** Ctrl-C / SIGTERM / uncaught errors: stop children and the database, then exit. */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      cleanupAllSync();
      process.exit(130);
    }
    interrupted = true;
    console.error(`\n${signal}: stopping the servers and the database (again to force)...`);
    const force = setTimeout(() => {
      cleanupAllSync();
      process.exit(130);
    }, 15_000);
    force.unref();
    cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // Last resort: whatever is still registered when the process exits (sync only).
  process.on('exit', cleanupAllSync);
}

// ---------------------------------------------------------------- memory

/** Resident set size of a process in bytes (VmRSS), or undefined once it is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples VmRSS every `everyMs`: the overall peak, and the peak of each named phase. */
export class RssSampler {
  peak = 0;
  last = 0;
  readonly phases: Record<string, number> = {};
  private phase = 'start';
  private timer: NodeJS.Timeout;
  private readonly pid: number;

  constructor(pid: number, everyMs = 100) {
    this.pid = pid;
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): void {
    const rss = rssOf(this.pid);
    if (rss === undefined) return;
    this.last = rss;
    if (rss > this.peak) this.peak = rss;
    if (rss > (this.phases[this.phase] ?? 0)) this.phases[this.phase] = rss;
  }

  /** Starts a new phase (its peak is recorded separately). */
  enter(phase: string): void {
    this.sample();
    this.phase = phase;
    this.phases[phase] = this.last;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------- servers

export interface ServerProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  url: string;
  rss: RssSampler;
  logFile: string;
  /** Log lines at warn level or above (pino JSON level >= 40) and anything that is not JSON. */
  problems: string[];
  problemCount: number;
  /** Resolves once readyPath answers fast again (the server drained what was in flight). */
  settle(timeoutMs?: number): Promise<void>;
  /** SIGTERM, wait for a clean exit (then SIGKILL); resolves with the exit code or signal. */
  stop(timeoutMs?: number): Promise<string>;
  exited: boolean;
  /** Set when the process ended before stop() was called: how it ended. */
  readonly unexpectedExit: string | undefined;
}

export interface StartOptions {
  name: string;
  script: string;
  env: Record<string, string>;
  port: number;
  /** Path answering 200 once ready. */
  readyPath: string;
  logFile: string;
  cwd: string;
  /** Node flags before the script (the FHIR server gets those of `npm start`). */
  nodeArgs?: string[];
  timeoutMs?: number;
}

/** Spawns `node [nodeArgs] <script>` with the environment, and waits until readyPath answers 200. */
export async function startServer(o: StartOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script], {
    cwd: o.cwd,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${o.name}: could not spawn ${process.execPath} ${o.script}`);
  const pid = child.pid;
  const log: WriteStream = createWriteStream(o.logFile);
  const problems: string[] = [];
  let problemCount = 0;
  let exitInfo: string | undefined;
  let stopping = false;
  let unexpectedExit: string | undefined;
  let exitWaiters: ((s: string) => void)[] = [];
  const scan = (stream: NodeJS.ReadableStream) => {
    let rest = '';
    stream.on('data', (d: Buffer) => {
      log.write(d);
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        let level = 50;
        try {
          level = (JSON.parse(line) as { level?: number }).level ?? 50;
        } catch {
          // not a pino line: a crash trace, a warning from Node... worth reporting
        }
        if (level >= 40) {
          problemCount++;
          if (problems.length < 20) problems.push(line.length > 600 ? line.slice(0, 600) + '…' : line);
        }
      }
    });
  };
  scan(child.stdout!);
  scan(child.stderr!);
  child.on('exit', (code, signal) => {
    exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!stopping) {
      unexpectedExit = exitInfo + (code === 0 ? ' (its graceful-shutdown path: it was sent SIGTERM or SIGINT by something outside the benchmark)' : '');
    }
    log.end();
    for (const w of exitWaiters) w(exitInfo);
    exitWaiters = [];
  });
  const waitExit = () => new Promise<string>((resolve) => (exitInfo !== undefined ? resolve(exitInfo) : exitWaiters.push(resolve)));

  const rss = new RssSampler(pid);
  const url = `http://127.0.0.1:${o.port}`;
  const stop = async (timeoutMs = 60_000): Promise<string> => {
    stopping = true;
    unregister();
    rss.stop();
    if (exitInfo !== undefined) return exitInfo;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const info = await waitExit();
    clearTimeout(timer);
    return info;
  };
  const unregister = onCleanup(o.name, () => {
    if (exitInfo === undefined) child.kill('SIGKILL');
  }, async () => {
    await stop(10_000);
  });

  const server: ServerProcess = {
    name: o.name,
    child,
    pid,
    url,
    rss,
    logFile: o.logFile,
    problems,
    get problemCount() {
      return problemCount;
    },
    get exited() {
      return exitInfo !== undefined;
    },
    get unexpectedExit() {
      return unexpectedExit;
    },
    stop,
    settle: async (timeoutMs = 120_000) => {
      const until = Date.now() + timeoutMs;
      let fast = 0;
      while (fast < 2 && Date.now() < until && exitInfo === undefined) {
        const t0 = performance.now();
        try {
          const res = await fetch(url + o.readyPath, { signal: AbortSignal.timeout(timeoutMs) });
          await res.arrayBuffer();
          fast = res.status === 200 && performance.now() - t0 < 50 ? fast + 1 : 0;
        } catch {
          fast = 0;
        }
        if (fast < 2) await new Promise((r) => setTimeout(r, 20));
      }
    },
  };

  const deadline = Date.now() + (o.timeoutMs ?? 120_000);
  for (;;) {
    if (exitInfo !== undefined) {
      throw new Error(`${o.name} exited during startup (${exitInfo}); see ${o.logFile}:\n${problems.join('\n')}`);
    }
    try {
      const res = await fetch(url + o.readyPath, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop(5000);
      throw new Error(`${o.name} did not become ready within ${(o.timeoutMs ?? 120_000) / 1000} s; see ${o.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
