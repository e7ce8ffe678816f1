// The results of one database's run: the printed table and the JSON written to bench-results/.
import type { StepResult } from './cannon.ts';
import type { CpuShare } from './cpu.ts';

export interface Target {
  name: string;
  value: number | undefined;
  threshold: number;
  /** 'min': value >= threshold passes; 'max': value < threshold passes. */
  kind: 'min' | 'max';
  unit: string;
  pass: boolean | undefined;
}

export interface ServerReport {
  peakRssMB: number;
  /** Peak once the server answered (startup excluded: PGlite's first initdb is a one-off spike). */
  peakAfterStartupRssMB: number;
  /** Peak RSS (MB) of each phase: startup, load, each step. */
  phasePeakRssMB: Record<string, number>;
  exit: string;
  problemLines: number;
  problems: string[];
  logFile: string;
}

export interface DbReport {
  db: 'pglite' | 'postgres';
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGB: number; node: string; platform: string; loadAverageAtStart: number[] };
  /** git HEAD when the server was started, and whether src/ had uncommitted changes. */
  code?: { commit: string; srcModified: boolean };
  options: { resources: number; duration: number; connections: number; txConnections?: number; warmup: number; bundleSize: number; loadConcurrency: number };
  load?: { resources: number; bundles: number; seconds: number; perSecond: number; retries: string[]; cpu?: CpuShare };
  steps: StepResult[];
  ratios: Record<string, number | undefined>;
  targets: Target[];
  fhirServer?: ServerReport;
  bareServer?: ServerReport;
  dataSizeMB?: number;
  error?: string;
  ok: boolean;
}

export const STEP_ORDER = ['read', 'create', 'update', 'transaction', 'metadata', 'fixed', 'bare-select', 'bare-insert'] as const;

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
export { mb };

export function computeRatios(steps: StepResult[]): Record<string, number | undefined> {
  const rate = (name: string) => steps.find((s) => s.step === name)?.reqPerSec;
  const ratio = (a: string, b: string) => {
    const x = rate(a);
    const y = rate(b);
    return x !== undefined && y ? x / y : undefined;
  };
  const out: Record<string, number | undefined> = {
    'read/bare-select': ratio('read', 'bare-select'),
    'create/bare-insert': ratio('create', 'bare-insert'),
  };
  for (const s of steps) if (s.step !== 'fixed') out[`${s.step}/fixed`] = ratio(s.step, 'fixed');
  return out;
}

export function computeTargets(ratios: Record<string, number | undefined>, peakRssMB: number | undefined): Target[] {
  const t = (name: string, value: number | undefined, threshold: number, kind: 'min' | 'max', unit: string): Target => ({
    name,
    value,
    threshold,
    kind,
    unit,
    pass: value === undefined ? undefined : kind === 'min' ? value >= threshold : value < threshold,
  });
  return [
    t('read >= 0.6 x bare pg select', ratios['read/bare-select'], 0.6, 'min', 'x'),
    t('create >= 0.5 x bare pg insert', ratios['create/bare-insert'], 0.5, 'min', 'x'),
    t('FHIR server peak RSS < 300 MB', peakRssMB, 300, 'max', 'MB'),
  ];
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(rows: string[][], alignRight: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (alignRight[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join('\n');
}

const cpuCell = (c: CpuShare | undefined) => (c ? `${c.server}/${c.database ?? '-'}/${c.loadgen}/${c.other}` : '');

const DB_TITLE = { pglite: 'PGlite (embedded, WebAssembly)', postgres: 'PostgreSQL' };

export function render(r: DbReport): string {
  const out: string[] = [];
  out.push('');
  const code = r.code ? `; code ${r.code.commit}${r.code.srcModified ? ' + uncommitted changes in src/' : ''}` : '';
  out.push(`=== ${DB_TITLE[r.db]}: ${r.options.connections} connections${r.options.txConnections !== undefined ? ` (the transaction step: ${r.options.txConnections})` : ''}, ${r.options.duration} s per step (after ${r.options.warmup} s warm-up)${code}`);
  if (r.load) {
    out.push(`load: ${fmt(r.load.resources)} patients in ${r.load.bundles} transaction bundles of ${r.options.bundleSize} ` +
      `(${r.options.loadConcurrency} in parallel): ${fmt(r.load.seconds, 1)} s, ${fmt(r.load.perSecond)} resources/s` +
      (r.load.cpu ? ` (CPU% srv/pg/gen/other ${cpuCell(r.load.cpu)})` : ''));
    for (const why of r.load.retries) out.push(`  CHECK: load request sent again: ${why}`);
  }
  const ratios = r.ratios;
  const rows: string[][] = [['step', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'vs bare pg', 'vs fixed', 'requests', 'CPU% srv/pg/gen/other']];
  for (const s of r.steps) {
    const vsBare = s.step === 'read' ? ratios['read/bare-select'] : s.step === 'create' ? ratios['create/bare-insert'] : undefined;
    const vsFixed = s.step === 'fixed' ? 1 : ratios[`${s.step}/fixed`];
    const label = s.resourcesPerSec !== undefined ? `${s.label} (${fmt(s.resourcesPerSec)} res/s)` : s.label;
    rows.push([
      label,
      fmt(s.reqPerSec),
      fmt(s.p50),
      fmt(s.p99),
      fmt(s.non2xx),
      fmt(s.errors + s.timeouts),
      vsBare === undefined ? '' : `${fmt(vsBare, 2)}x`,
      vsFixed === undefined ? '' : `${fmt(vsFixed, 2)}x`,
      fmt(s.requests),
      cpuCell(s.cpu),
    ]);
  }
  out.push(table(rows, [false, true, true, true, true, true, true, true, true, true]));
  out.push('(CPU: percent of one core over the measured run, for the server, the PostgreSQL cluster, the load generator (autocannon), ' +
    `and everything else on this ${r.machine.cpus}-core machine; a high "other" means something else competed for the CPU)`);
  if (r.fhirServer) {
    const phases = Object.entries(r.fhirServer.phasePeakRssMB).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
    out.push(`FHIR server peak RSS: ${fmt(r.fhirServer.peakRssMB, 1)} MB, ${fmt(r.fhirServer.peakAfterStartupRssMB, 1)} MB once started (per phase, MB: ${phases}); ${r.fhirServer.exit}; ` +
      `${r.fhirServer.problemLines} warn/error log line(s)`);
  }
  if (r.bareServer) out.push(`bare server peak RSS: ${fmt(r.bareServer.peakRssMB, 1)} MB; ${r.bareServer.exit}; ${r.bareServer.problemLines} warn/error log line(s)`);
  if (r.dataSizeMB !== undefined) out.push(`database size at the end: ${fmt(r.dataSizeMB)} MB`);
  out.push('targets:');
  for (const t of r.targets) {
    const v = t.value === undefined ? 'n/a' : t.unit === 'x' ? `${fmt(t.value, 2)}x` : `${fmt(t.value, 1)} ${t.unit}`;
    out.push(`  ${t.pass === undefined ? 'N/A ' : t.pass ? 'PASS' : 'MISS'}  ${t.name}: ${v}`);
  }
  const bad = r.steps.filter((s) => s.non2xx || s.errors || s.timeouts);
  if (r.load?.retries.length) out.push(`  CHECK FAILED  load: ${r.load.retries.length} bundle(s) got no HTTP answer and were sent again`);
  if (bad.length) {
    for (const s of bad) {
      out.push(`  CHECK FAILED  ${s.label}: ${s.non2xx} non-2xx, ${s.errors} errors, ${s.timeouts} timeouts; status codes ${JSON.stringify(s.statusCodes)}`);
    }
  } else if (r.steps.length) {
    out.push('  OK    every response was 2xx (no errors, no timeouts)');
  }
  for (const srv of [r.fhirServer, r.bareServer]) {
    if (srv?.problems.length) {
      out.push(`server log problems (${srv.logFile}):`);
      for (const p of srv.problems.slice(0, 5)) out.push(`  ${p}`);
    }
  }
  if (r.error) out.push(`ERROR: ${r.error}`);
  return out.join('\n');
}
