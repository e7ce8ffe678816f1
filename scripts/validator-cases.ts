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
  outcomeSource: string;
  terminologyDependent: boolean;
  errorMessages: string[];
}

/** A manifest entry: the options the reference harness ran the case with. */
type Options = Record<string, unknown>;

/**
 * Why a case cannot be judged here as the reference harness judged it, or undefined. Decided
 * from the case's options and the kind of its expected errors, never from its name.
 */
function notJudgeable(c: Case, o: Options): string | undefined {
  if (o.examples === false) return 'run with example URLs forbidden (examples: false), an option this validator does not have';
  if (o.validateContains === 'IGNORE') return 'run without validating contained resources (validateContains: IGNORE), an option this validator does not have';
  if (o.noHtmlInMarkdown) return 'run with HTML in markdown as an error (noHtmlInMarkdown), an option this validator does not have';
  if (typeof o.validateReference === 'string' && o.validateReference.startsWith('CHECK_EXISTS')) {
    return 'run with every reference required to resolve (validateReference: CHECK_EXISTS...); here a reference may name a resource the server does not hold';
  }
  if (/^java\/R(?!4\.)/.test(c.outcomeSource)) return `the expected outcome is another FHIR version's (${c.outcomeSource})`;
  if (c.expected === 'invalid' && c.terminologyDependent && c.errorMessages.every((m) => /^(Wrong Display Name|Unknown code)/.test(m))) {
    return 'every expected error is a display or code check in an external code system (LOINC, SNOMED CT, CVX, v2 tables), which needs a terminology server';
  }
  return undefined;
}

const DIR = new URL('../../shared/conformance/fhir-test-cases/validator/', import.meta.url);
const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
let url = args.includes('--url') ? args[args.indexOf('--url') + 1] : undefined;

let stop = async () => {};
if (!url) {
  const dataDir = mkdtempSync(join(tmpdir(), 'fhir-validator-cases-'));
  const config = loadConfig({ ...process.env, DATA_DIR: dataDir, LOAD_FIXTURES: 'false', LOG_LEVEL: 'warn', REQUIRED_PROFILES: 'none', UNKNOWN_EXTENSIONS: process.env.UNKNOWN_EXTENSIONS ?? 'error' });
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
const manifest = JSON.parse(readFileSync(new URL('manifest.json', DIR), 'utf8')) as { 'test-cases': (Options & { name: string })[] };
const optionsOf = new Map(manifest['test-cases'].map((t) => [t.name, t]));
const notJudged: string[] = [];
const cases = index.cases.filter((c) => {
  if (c.excludedBecause.length) return false;
  const why = notJudgeable(c, optionsOf.get(c.name) ?? {});
  if (why) notJudged.push(`${c.name}: ${why}`);
  return !why;
});
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
  if (!xml) type = topLevelType(body) ?? type; // malformed JSON is the server's to judge
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

/** The resourceType of a JSON body: the top-level one (contained resources may come first), else the first found. */
function topLevelType(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { resourceType?: unknown };
    if (typeof parsed.resourceType === 'string') return parsed.resourceType;
  } catch {
    // not JSON: the server will say so
  }
  return /"resourceType"\s*:\s*"([A-Za-z]+)"/.exec(body)?.[1];
}
await stop();

const pct = (n: number) => ((100 * n) / cases.length).toFixed(1);
console.log(`HL7 validator test cases (R4, judgeable without a terminology server): ${cases.length}`);
console.log(`same verdict (valid/invalid): ${verdictAgree}/${cases.length} = ${pct(verdictAgree)}%`);
console.log(`same verdict and error count: ${countAgree}/${cases.length} = ${pct(countAgree)}%`);
console.log(`time: ${(ms / 1000).toFixed(1)} s`);
console.log(`\nnot judgeable here (${notJudged.length}):`);
for (const l of notJudged) console.log(`  ${l}`);
for (const [module, lines] of [...disagreements.entries()].sort()) {
  console.log(`\n${module}: ${lines.length} disagreement(s)`);
  for (const l of verbose ? lines : lines.slice(0, 50)) console.log(`  ${l.slice(0, verbose ? 2000 : 300)}`);
}
