// Loads generated coordination data (scripts/lib/bench/coordination.ts) through the server's
// transaction endpoint: the shared pool first (PUT, ids chosen by the generator), then the
// patients, whole patients per bundle (their entries reference each other by urn:uuid), about
// `bundleSize` entries per bundle, `concurrency` bundles in flight. Every bundle must answer
// 200 with one 2xx entry response per entry; anything else stops the load with the server's
// answer. Reports resources per second.
import type { BundleEntry } from '@medplum/fhirtypes';
import { IngestError, postBundle } from './post-bundle.ts';
import { CoordinationGenerator, makePool, poolBundles, transaction, type Pool, type PoolSizes } from './coordination.ts';

export interface IngestOptions {
  /** FHIR base URL, e.g. http://127.0.0.1:8080/fhir */
  fhirBase: string;
  patients: number;
  /** Index of the first patient (to add patients to an earlier load with the same seed). */
  firstPatient?: number;
  seed: number;
  /** Day number the dates are spread around (coordination.ts dayNumber). */
  anchorDay: number;
  pool: PoolSizes;
  /** Entries per bundle (whole patients: a bundle closes once it reaches this size). */
  bundleSize: number;
  concurrency: number;
  /** The pool is already on the server (PUT again otherwise: the same resources, new versions). */
  skipPool?: boolean;
  log: (s: string) => void;
  /** Progress line every this many milliseconds (default 15 s). */
  progressMs?: number;
}

export interface IngestResult {
  /** Resources written, pool included. */
  resources: number;
  poolResources: number;
  patients: number;
  bundles: number;
  seconds: number;
  perSecond: number;
  /** Resources written per type. */
  byType: Record<string, number>;
  /** Bundles sent again after a connection-level failure (no HTTP answer), with the reason. */
  retries: string[];
  /** Bundle round trips (ms), to see the server's behaviour under load. */
  bundleMs: { p50: number; p99: number; max: number };
}

async function post(fhirBase: string, entries: BundleEntry[], what: string, retries: string[], log: (s: string) => void): Promise<number> {
  const sent = performance.now();
  const { status, text } = await postBundle(fhirBase, JSON.stringify(transaction(entries)), what, retries, log);
  if (status !== 200) throw new IngestError(`load: ${what} answered ${status}: ${text.slice(0, 2000)}`);
  const reply = JSON.parse(text) as { entry?: { response?: { status?: string; location?: string } }[] };
  const answers = reply.entry ?? [];
  if (answers.length !== entries.length) throw new IngestError(`load: ${what} answered ${answers.length} entries for ${entries.length}`);
  answers.forEach((a, i) => {
    if (!/^20[01]/.test(a.response?.status ?? '')) {
      throw new IngestError(`load: ${what} entry ${i} (${entries[i].request?.method} ${entries[i].request?.url}) answered ${JSON.stringify(a.response)}`);
    }
  });
  return performance.now() - sent;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function ingest(o: IngestOptions): Promise<IngestResult & { pool: Pool }> {
  const pool = makePool(o.seed, o.pool);
  const generator = new CoordinationGenerator({ seed: o.seed, anchorDay: o.anchorDay, pool });
  const byType: Record<string, number> = {};
  const retries: string[] = [];
  const latencies: number[] = [];
  const count = (entries: BundleEntry[]) => {
    for (const e of entries) byType[e.resource!.resourceType] = (byType[e.resource!.resourceType] ?? 0) + 1;
  };
  const start = performance.now();
  let resources = 0;
  let bundles = 0;

  // 1. The pool: organisations first (roles refer to them), then practitioners with their roles.
  let poolResources = 0;
  if (!o.skipPool) {
    const chunks = poolBundles(pool, o.bundleSize);
    // Organisations before the roles that point at them.
    for (const group of [chunks.organizations, chunks.practitioners]) {
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(o.concurrency, group.length) }, async () => {
        for (let i = next++; i < group.length; i = next++) {
          latencies.push(await post(o.fhirBase, group[i], `pool bundle ${i}`, retries, o.log));
          count(group[i]);
          poolResources += group[i].length;
          bundles++;
        }
      }));
    }
    o.log(`  pool: ${pool.organizations.length} organisations, ${pool.practitioners.length} practitioners and roles (${poolResources} resources)`);
  }
  resources += poolResources;

  // 2. Patients, whole patients per bundle, generated in index order as bundles are taken.
  const first = o.firstPatient ?? 0;
  const end = first + o.patients;
  let cursor = first;
  let patientsDone = 0;
  let lastReport = Date.now();
  let failed = false;
  const progressMs = o.progressMs ?? 15_000;
  const takeBundle = (): { entries: BundleEntry[]; patients: number; from: number } | undefined => {
    if (cursor >= end || failed) return undefined;
    const from = cursor;
    const entries: BundleEntry[] = [];
    while (cursor < end && entries.length < o.bundleSize) entries.push(...generator.patient(cursor++));
    return { entries, patients: cursor - from, from };
  };
  const worker = async () => {
    for (let b = takeBundle(); b; b = takeBundle()) {
      try {
        latencies.push(await post(o.fhirBase, b.entries, `bundle of patients ${b.from}..${b.from + b.patients - 1}`, retries, o.log));
      } catch (err) {
        failed = true;
        throw err;
      }
      count(b.entries);
      resources += b.entries.length;
      patientsDone += b.patients;
      bundles++;
      if (Date.now() - lastReport > progressMs) {
        lastReport = Date.now();
        const s = (performance.now() - start) / 1000;
        o.log(`  ${patientsDone} / ${o.patients} patients, ${resources} resources, ${Math.round(resources / s)} resources/s`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    resources,
    poolResources,
    patients: patientsDone,
    bundles,
    seconds,
    perSecond: resources / seconds,
    byType,
    retries,
    bundleMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies[latencies.length - 1] ?? 0) },
    pool,
  };
}
