// Generates realistic French care-coordination data and loads it into a FHIR server through
// transaction bundles (scripts/lib/bench/coordination.ts describes the data).
//
//   node scripts/generate-data.ts --url http://127.0.0.1:8080/fhir --patients 50000
//        [--seed 1] [--concurrency 4] [--bundle-size 500] [--anchor 2026-11-23]
//        [--organizations 300] [--practitioners 3000] [--first-patient 0] [--skip-pool]
//   node scripts/generate-data.ts --dry-run --patients 1000     # counts per type, nothing sent
//   node scripts/generate-data.ts --print 0                     # patient 0's bundle as JSON
//
// Deterministic: the same seed, anchor day and pool sizes give the same resources (the server
// assigns the ids of everything but the pool). About 23 resources per patient: 43,500 patients
// and the default pool make about 1,000,000 resources.
import { parseArgs } from 'node:util';
import { CoordinationGenerator, makePool, transaction } from './lib/bench/coordination.ts';
import { ingest } from './lib/bench/ingest.ts';
import { IngestError } from './lib/bench/post-bundle.ts';
import { anchorDayArg, numberArg, usageError } from './lib/cli.ts';

const USAGE = 'node scripts/generate-data.ts --url http://127.0.0.1:8080/fhir --patients 50000 [--seed 1] [--concurrency 4] ' +
  '[--bundle-size 500] [--anchor 2026-11-23] [--organizations 300] [--practitioners 3000] [--first-patient 0] [--skip-pool] ' +
  '| --dry-run | --print N';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    patients: { type: 'string', default: '50000' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
    'bundle-size': { type: 'string', default: '500' },
    anchor: { type: 'string', default: '2026-11-23' },
    organizations: { type: 'string', default: '300' },
    practitioners: { type: 'string', default: '3000' },
    'first-patient': { type: 'string', default: '0' },
    'skip-pool': { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    print: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const seed = numberArg('seed', args.seed, 0);
const patients = numberArg('patients', args.patients, 1);
const firstPatient = numberArg('first-patient', args['first-patient'], 0);
const pool = { organizations: numberArg('organizations', args.organizations, 6), practitioners: numberArg('practitioners', args.practitioners, 12) };
const anchorDay = anchorDayArg(args.anchor);
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

if (args.print !== undefined || args['dry-run']) {
  const generator = new CoordinationGenerator({ seed, anchorDay, pool: makePool(seed, pool) });
  if (args.print !== undefined) {
    const index = numberArg('print', args.print, 0);
    for (let i = 0; i < index; i++) generator.patient(i); // INS-NIR uniqueness depends on the earlier patients
    console.log(JSON.stringify(transaction(generator.patient(index)), null, 2));
    process.exit(0);
  }
  const byType: Record<string, number> = {};
  for (const r of makePool(seed, pool).resources) byType[r.resourceType] = (byType[r.resourceType] ?? 0) + 1;
  let total = Object.values(byType).reduce((a, b) => a + b, 0);
  let bytes = 0;
  for (let i = firstPatient; i < firstPatient + patients; i++) {
    for (const e of generator.patient(i)) {
      byType[e.resource!.resourceType] = (byType[e.resource!.resourceType] ?? 0) + 1;
      bytes += JSON.stringify(e.resource).length;
      total++;
    }
  }
  for (const [t, n] of Object.entries(byType).sort((a, b) => b[1] - a[1])) console.log(`${t.padEnd(24)} ${String(n).padStart(9)}`);
  console.log(`${'total'.padEnd(24)} ${String(total).padStart(9)}  (${(total / patients).toFixed(2)} per patient with the pool; ` +
    `patient data ${Math.round(bytes / (total - makePool(seed, pool).resources.length))} bytes of JSON per resource on average)`);
  process.exit(0);
}

if (!args.url) usageError(`--url is required\n${USAGE}`);
const fhirBase = args.url.replace(/\/$/, '');
log(`loading ${patients} patients (from #${firstPatient}, seed ${seed}) into ${fhirBase}: bundles of ~${args['bundle-size']} entries, ${args.concurrency} in parallel`);
try {
  const r = await ingest({
    fhirBase,
    patients,
    firstPatient,
    seed,
    anchorDay,
    pool,
    bundleSize: numberArg('bundle-size', args['bundle-size'], 1),
    concurrency: numberArg('concurrency', args.concurrency, 1),
    skipPool: args['skip-pool'],
    log,
  });
  log(`loaded ${r.resources} resources (${r.patients} patients, pool ${r.poolResources}) in ${r.bundles} bundles, ${r.seconds.toFixed(1)} s: ` +
    `${Math.round(r.perSecond)} resources/s (bundle round trip p50 ${r.bundleMs.p50} ms, p99 ${r.bundleMs.p99} ms)`);
  for (const [t, n] of Object.entries(r.byType).sort((a, b) => b[1] - a[1])) console.log(`  ${t.padEnd(24)} ${String(n).padStart(9)}`);
  for (const why of r.retries) console.log(`  CHECK: bundle sent again: ${why}`);
  process.exit(r.retries.length ? 1 : 0);
} catch (err) {
  console.error(err instanceof IngestError ? err.message : (err as Error).stack);
  process.exit(1);
}
