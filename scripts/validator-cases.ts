// Runs the HL7 FHIR validator test cases (../shared/conformance/fhir-test-cases/validator/, the
// R4 cases that can be judged valid/invalid without a terminology server or special setup)
// through this server's $validate over HTTP, and reports the agreement with the reference
// (Java) validator: same verdict, and same error count. Disagreements are listed by module.
//   node scripts/validator-cases.ts [--url http://127.0.0.1:8080/fhir] [--verbose]
// Without --url it starts the server on a throwaway embedded database.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { openDb } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';

interface Case {
  name: string;
  file: string;
  module: string;
  resourceType: string;
  expected: 'valid' | 'invalid';
  errorCount: number;
  errorExpressions?: string[];
  excludedBecause: string[];
}

const DIR = new URL('../../shared/conformance/fhir-test-cases/validator/', import.meta.url);
const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
let url = args.includes('--url') ? args[args.indexOf('--url') + 1] : undefined;

let stop = async () => {};
if (!url) {
  const dataDir = mkdtempSync(join(tmpdir(), 'fhir-validator-cases-'));
  const config = loadConfig({ ...process.env, DATA_DIR: dataDir, LOAD_FIXTURES: 'false', LOG_LEVEL: 'warn', REQUIRED_PROFILES: 'none' });
  const db = await openDb(config);
  await migrate(db);
  const { server } = await buildApp(db, config, false);
  await server.listen({ host: '127.0.0.1', port: 0 });
  const address = server.server.address() as { port: number };
  url = `http://127.0.0.1:${address.port}/fhir`;
  stop = async () => {
    await server.close();
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
}

const index = JSON.parse(readFileSync(new URL('r4-validator-cases.derived.json', DIR), 'utf8')) as { cases: Case[] };
const cases = index.cases.filter((c) => c.excludedBecause.length === 0);
let verdictAgree = 0;
let countAgree = 0;
const disagreements = new Map<string, string[]>();
const started = performance.now();
for (const c of cases) {
  const body = readFileSync(new URL(c.file, DIR), 'utf8').replace(/^\uFEFF/, ''); // some files start with a byte-order mark
  const xml = c.file.endsWith('.xml');
  let errors: { expression?: string[]; details?: { text?: string } }[] = [];
  let verdict: 'valid' | 'invalid';
  let type = c.resourceType;
  if (!xml) type = /"resourceType"\s*:\s*"([A-Za-z]+)"/.exec(body)?.[1] ?? type; // malformed JSON is the server's to judge
  const res = await fetch(`${url}/${type}/$validate`, {
    method: 'POST',
    headers: { 'content-type': xml ? 'application/fhir+xml' : 'application/fhir+json', accept: 'application/fhir+json' },
    body,
  });
  const oo = (await res.json()) as { issue?: { severity: string; expression?: string[]; details?: { text?: string } }[] };
  if (res.status === 200) {
    errors = (oo.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
    verdict = errors.length ? 'invalid' : 'valid';
  } else {
    // A body that cannot be read as a resource (400) is invalid content.
    errors = oo.issue ?? [];
    verdict = res.status === 400 || res.status === 422 ? 'invalid' : 'valid';
    if (res.status >= 500) console.error(`${c.name}: HTTP ${res.status}`);
  }
  const sameVerdict = verdict === c.expected;
  if (sameVerdict) verdictAgree++;
  if (sameVerdict && errors.length === c.errorCount) countAgree++;
  if (!sameVerdict) {
    const line = `${c.name} (${c.file}): expected ${c.expected} (${c.errorCount} errors${c.errorExpressions?.length ? ` at ${c.errorExpressions.join(', ')}` : ''}), got ${verdict}${errors.length ? `: ${errors.slice(0, 3).map((e) => `${e.expression?.[0] ?? ''} ${e.details?.text ?? ''}`).join(' | ')}` : ''}`;
    disagreements.set(c.module, [...(disagreements.get(c.module) ?? []), line]);
  }
}
const ms = performance.now() - started;
await stop();

const pct = (n: number) => ((100 * n) / cases.length).toFixed(1);
console.log(`HL7 validator test cases (R4, judgeable without a terminology server): ${cases.length}`);
console.log(`same verdict (valid/invalid): ${verdictAgree}/${cases.length} = ${pct(verdictAgree)}%`);
console.log(`same verdict and error count: ${countAgree}/${cases.length} = ${pct(countAgree)}%`);
console.log(`time: ${(ms / 1000).toFixed(1)} s`);
for (const [module, lines] of [...disagreements.entries()].sort()) {
  console.log(`\n${module}: ${lines.length} disagreement(s)`);
  for (const l of verbose ? lines : lines.slice(0, 50)) console.log(`  ${l.slice(0, verbose ? 2000 : 300)}`);
}
