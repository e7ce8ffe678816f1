// Bulk load through the server's transaction endpoint: bundles of `bundleSize` Patient
// creates, `concurrency` in flight, collecting the assigned ids from the responses.
import { seeded, transactionBundle } from './patients.ts';
import { postBundle } from './post-bundle.ts';

export interface LoadResult {
  resources: number;
  bundles: number;
  seconds: number;
  perSecond: number;
  ids: string[];
  /** Bundles sent again after a connection-level failure (no HTTP answer), with the reason. */
  retries: string[];
}

export async function loadPatients(fhirBase: string, total: number, bundleSize: number, concurrency: number, log: (s: string) => void): Promise<LoadResult> {
  const bundles = Math.ceil(total / bundleSize);
  const ids: string[] = [];
  const retries: string[] = [];
  let next = 0;
  let done = 0;
  let lastReport = Date.now();
  const start = performance.now();
  let failed = false;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= bundles || failed) return;
      try {
        await one(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const one = async (i: number) => {
    const body = JSON.stringify(transactionBundle(seeded(1000 + i), bundleSize));
    const { status, text } = await postBundle(fhirBase, body, `bundle ${i}`, retries, log);
    if (status !== 200) throw new Error(`load: bundle ${i} answered ${status}: ${text.slice(0, 500)}`);
    const reply = JSON.parse(text) as { entry?: { response?: { status?: string; location?: string } }[] };
    const entries = reply.entry ?? [];
    if (entries.length !== bundleSize) throw new Error(`load: bundle ${i} answered ${entries.length} entries, expected ${bundleSize}`);
    for (const e of entries) {
      const m = /Patient\/([^/]+)\/_history\//.exec(e.response?.location ?? '');
      if (!m || !e.response?.status?.startsWith('201')) throw new Error(`load: unexpected entry response ${JSON.stringify(e.response)}`);
      ids.push(m[1]);
    }
    done++;
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      const s = (performance.now() - start) / 1000;
      log(`  loaded ${done * bundleSize} / ${bundles * bundleSize} patients (${Math.round((done * bundleSize) / s)} /s)`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, bundles) }, worker));
  const seconds = (performance.now() - start) / 1000;
  return { resources: ids.length, bundles, seconds, perSecond: ids.length / seconds, ids, retries };
}
