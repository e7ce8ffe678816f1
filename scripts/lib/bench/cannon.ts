// One measured step: a short warm-up (discarded), then autocannon for `duration` seconds
// at `connections` connections; throughput, latency percentiles and the status codes.
import autocannon, { type Instance, type Request, type Result } from 'autocannon';
import type { CpuShare, CpuWatch } from './cpu.ts';

export interface StepResult {
  step: string;
  label: string;
  reqPerSec: number;
  p50: number;
  p90: number;
  p99: number;
  meanMs: number;
  maxMs: number;
  requests: number;
  durationS: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Resources written per second for multi-resource requests (transaction bundles). */
  resourcesPerSec?: number;
  /** CPU use during the measured run (percent of one core). */
  cpu?: CpuShare;
}

export interface StepOptions {
  step: string;
  label: string;
  url: string;
  requests: Request[];
  connections: number;
  duration: number;
  warmup: number;
  /** Resources each request writes (for resourcesPerSec). */
  resourcesPerRequest?: number;
  /**
   * Waits until the server has finished what the previous run left in flight: autocannon
   * drops its connections at the end of a run, but the server still completes those requests.
   */
  settle?: () => Promise<void>;
  /** Starts a CPU measurement at the start of the measured run. */
  watchCpu?: () => CpuWatch;
}

let current: Instance | undefined;

/** Stops the run in progress (Ctrl-C). */
export function stopCurrent(): void {
  current?.stop();
}

async function fire(url: string, requests: Request[], connections: number, duration: number): Promise<Result> {
  current = autocannon({ url, connections, duration, timeout: 30, requests });
  try {
    return await current;
  } finally {
    current = undefined;
  }
}

export async function runStep(o: StepOptions): Promise<StepResult & { warmup?: { requests: number; non2xx: number; errors: number } }> {
  let warm: Result | undefined;
  if (o.warmup > 0) {
    warm = await fire(o.url, o.requests, o.connections, o.warmup);
    await o.settle?.();
  }
  const watch = o.watchCpu?.();
  const r = await fire(o.url, o.requests, o.connections, o.duration);
  const cpu = watch?.stop();
  await o.settle?.();
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats)) statusCodes[code] = s.count;
  const reqPerSec = r.duration > 0 ? r.requests.total / r.duration : 0;
  return {
    step: o.step,
    label: o.label,
    reqPerSec,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    meanMs: r.latency.mean,
    maxMs: r.latency.max,
    requests: r.requests.total,
    durationS: r.duration,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes,
    ...(o.resourcesPerRequest ? { resourcesPerSec: reqPerSec * o.resourcesPerRequest } : {}),
    ...(cpu ? { cpu } : {}),
    ...(warm ? { warmup: { requests: warm.requests.total, non2xx: warm.non2xx, errors: warm.errors } } : {}),
  };
}
