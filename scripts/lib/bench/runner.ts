// A closed-loop HTTP load runner for the search benchmark: `connections` keep-alive
// connections, each sending its next request as soon as the previous answer is read, for
// `duration` seconds. Every request is built by the caller (so each one can differ) and every
// answer is checked by the caller; latencies are kept exactly (microseconds) for p50/p90/p99.
// autocannon would do the load, but its latency histogram has 1 ms resolution, too coarse for
// a 10 ms target and for ratios to a read of a few milliseconds.
import http from 'node:http';

export interface Probe {
  /** Path and query, e.g. /fhir/Patient?name=dub */
  path: string;
  /** undefined when the answer is right, else what is wrong with it. */
  check(status: number, body: string, full: boolean): string | undefined;
}

export interface Failure {
  path: string;
  status: number;
  problem: string;
  body: string;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
  /** Answers that were not right (status, count, content) or got no answer. */
  failures: number;
  failureExamples: Failure[];
  statusCodes: Record<string, number>;
  bytesPerResponse: number;
}

export interface LoadOptions {
  /** Server origin, e.g. http://127.0.0.1:8080 */
  origin: string;
  connections: number;
  duration: number;
  next: () => Probe;
  /** Check answers fully (JSON parse and content checks): the warm-up; the measured run does cheap checks. */
  fullChecks: boolean;
  timeoutMs?: number;
}

function get(agent: http.Agent, url: URL, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path, method: 'GET', agent, headers: { accept: 'application/fhir+json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** One GET outside a load run (collecting URLs, checks). */
export async function fetchText(origin: string, path: string, timeoutMs = 60_000): Promise<{ status: number; body: string }> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    return await get(agent, new URL(origin), path, timeoutMs);
  } finally {
    agent.destroy();
  }
}

export function percentileOf(sorted: Float64Array | number[], p: number): number {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const url = new URL(o.origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections, maxFreeSockets: o.connections });
  const timeoutMs = o.timeoutMs ?? 30_000;
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  let failures = 0;
  let bytes = 0;
  const failureExamples: Failure[] = [];
  const statusCodes: Record<string, number> = {};
  const start = performance.now();
  const deadline = start + o.duration * 1000;
  const fail = (f: Failure) => {
    failures++;
    if (failureExamples.length < 10) failureExamples.push({ ...f, body: f.body.slice(0, 1500) });
  };
  const worker = async () => {
    while (performance.now() < deadline) {
      const probe = o.next();
      const t0 = performance.now();
      try {
        const { status, body } = await get(agent, url, probe.path, timeoutMs);
        const ms = performance.now() - t0;
        statusCodes[status] = (statusCodes[status] ?? 0) + 1;
        if (n === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[n++] = ms;
        bytes += body.length;
        const problem = probe.check(status, body, o.fullChecks);
        if (problem) fail({ path: probe.path, status, problem, body });
      } catch (err) {
        statusCodes.error = (statusCodes.error ?? 0) + 1;
        fail({ path: probe.path, status: 0, problem: (err as Error).message, body: '' });
      }
    }
  };
  await Promise.all(Array.from({ length: o.connections }, worker));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  const sorted = latencies.slice(0, n).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    requests: n,
    seconds,
    reqPerSec: n / seconds,
    p50: r2(percentileOf(sorted, 50)),
    p90: r2(percentileOf(sorted, 90)),
    p99: r2(percentileOf(sorted, 99)),
    mean: r2(n ? sum / n : 0),
    max: r2(n ? sorted[n - 1] : 0),
    failures,
    failureExamples,
    statusCodes,
    bytesPerResponse: n ? Math.round(bytes / n) : 0,
  };
}
