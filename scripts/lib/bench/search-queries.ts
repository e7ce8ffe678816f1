// The searches of the search benchmark, built from values sampled in the loaded database (so
// they work on any database the generator filled, whatever ids the server assigned), and the
// checks of their answers. Each request of a step is different (a random patient, practitioner,
// name prefix, window...); each answer must be 200 with the expected number of matches.
//
// Checks come in two strengths: the warm-up parses every answer and checks its content (the
// right resources, sorted, included); the measured run checks the status and the counts with
// string searches only, so that checking does not take the CPU the server needs.
import { SYS, OBSERVATIONS } from './coordination.ts';
import type { Random } from './patients.ts';
import { fetchText, type Probe } from './runner.ts';

export type Query = (sql: string, params?: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

export interface Samples {
  /** "Type/id" of random resources of every type. */
  reads: string[];
  /** Patients with their INS-NIR. */
  patients: { id: string; ins: string }[];
  /** Folded 3-letter prefixes of family names ("dub"). */
  namePrefixes: string[];
  /** An appointment's patient and a 3-month window around it. */
  appointmentWindows: { patient: string; ge: string; lt: string }[];
  /** Days on which appointments start (for one-week windows over all patients). */
  appointmentDays: string[];
  /** Patients having a care plan. */
  carePlanPatients: string[];
  /** Patients having observations, with their INS-NIR. */
  observationPatients: { id: string; ins: string }[];
  /** Practitioners that are members of care teams, with their idNatPs. */
  teamPractitioners: { id: string; idNatPs: string }[];
  /** LOINC codes of observations. */
  observationCodes: string[];
}

const FOLD = (s: string) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z]/g, '');

async function sampleOf(q: Query, type: string, n: number): Promise<{ id: string; r: Record<string, any> }[]> {
  // Random ids from the (type, id) index, then their content.
  const { rows } = await q(
    `SELECT id, content FROM resources WHERE resource_type = $1 AND NOT deleted
       AND id IN (SELECT id FROM resources WHERE resource_type = $1 AND NOT deleted ORDER BY random() LIMIT $2)`,
    [type, n],
  );
  return rows.map((row) => ({ id: String(row.id), r: JSON.parse(String(row.content)) as Record<string, any> }));
}

const insOf = (p: Record<string, any>): string | undefined =>
  (p.identifier as { system?: string; value?: string }[] | undefined)?.find((i) => i.system === SYS.INS)?.value;

function monthStart(date: string, deltaMonths: number): string {
  const d = new Date(`${date.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() + deltaMonths);
  return d.toISOString().slice(0, 10);
}

export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/** Values for the searches, sampled from the database (n of each kind at most). */
export async function sampleDatabase(q: Query, n = 1000): Promise<Samples> {
  const bounds = (await q('SELECT min(rid)::text AS lo, max(rid)::text AS hi FROM resources')).rows[0];
  const lo = Number(bounds.lo ?? 0);
  const hi = Number(bounds.hi ?? 0);
  const rids = Array.from({ length: Math.min(4 * n, Math.max(0, hi - lo + 1)) }, (_, i) => String(lo + Math.floor(((i * 0.6180339887) % 1) * (hi - lo + 1))));
  const reads = (await q('SELECT resource_type, id FROM resources WHERE rid = ANY($1::bigint[]) AND NOT deleted', [rids])).rows
    .map((r) => `${r.resource_type}/${r.id}`);

  const patientRows = await sampleOf(q, 'Patient', n);
  const patients = patientRows.flatMap(({ id, r }) => {
    const ins = insOf(r);
    return ins ? [{ id, ins }] : [];
  });
  const namePrefixes = [...new Set(patientRows.map(({ r }) => FOLD(String(r.name?.[0]?.family ?? '')).slice(0, 3)).filter((p) => p.length === 3))];

  const appointments = await sampleOf(q, 'Appointment', n);
  const appointmentWindows = appointments.flatMap(({ r }) => {
    const patient = (r.participant as { actor?: { reference?: string } }[] | undefined)
      ?.map((p) => p.actor?.reference).find((ref) => ref?.startsWith('Patient/'));
    const start = r.start as string | undefined;
    return patient && start ? [{ patient, ge: monthStart(start, -1), lt: monthStart(start, 2) }] : [];
  });
  const appointmentDays = appointments.flatMap(({ r }) => (typeof r.start === 'string' ? [r.start.slice(0, 10)] : []));

  const carePlans = await sampleOf(q, 'CarePlan', n);
  const carePlanPatients = [...new Set(carePlans.flatMap(({ r }) => (r.careTeam && r.subject?.reference?.startsWith('Patient/') ? [r.subject.reference as string] : [])))];

  const observations = await sampleOf(q, 'Observation', n);
  const observationSubjects = [...new Set(observations.flatMap(({ r }) => (r.subject?.reference?.startsWith('Patient/') ? [(r.subject.reference as string).slice(8)] : [])))];
  const observationCodes = [...new Set(observations.flatMap(({ r }) => (r.code?.coding ?? []).filter((c: { system?: string }) => c.system === SYS.LOINC).map((c: { code: string }) => c.code)))] as string[];
  const subjectRows = observationSubjects.length
    ? (await q(`SELECT id, content FROM resources WHERE resource_type = 'Patient' AND NOT deleted AND id = ANY($1::text[])`, [observationSubjects])).rows
    : [];
  const observationPatients = subjectRows.flatMap((row) => {
    const ins = insOf(JSON.parse(String(row.content)));
    return ins ? [{ id: String(row.id), ins }] : [];
  });

  const teams = await sampleOf(q, 'CareTeam', n);
  const memberIds = [...new Set(teams.flatMap(({ r }) => ((r.participant ?? []) as { member?: { reference?: string } }[])
    .map((p) => p.member?.reference ?? '').filter((ref) => ref.startsWith('Practitioner/')).map((ref) => ref.slice(13))))];
  const practitionerRows = memberIds.length
    ? (await q(`SELECT id, content FROM resources WHERE resource_type = 'Practitioner' AND NOT deleted AND id = ANY($1::text[])`, [memberIds])).rows
    : [];
  const teamPractitioners = practitionerRows.flatMap((row) => {
    const idNatPs = (JSON.parse(String(row.content)).identifier as { system?: string; value?: string }[] | undefined)?.find((i) => i.system === SYS.IDNPS)?.value;
    return idNatPs ? [{ id: String(row.id), idNatPs }] : [];
  });

  return { reads, patients, namePrefixes, appointmentWindows, appointmentDays, carePlanPatients, observationPatients, teamPractitioners, observationCodes };
}

// ---------------------------------------------------------------- checks

interface Expect {
  /** Matches in the page: exact, or [min, max]. */
  matches?: number | [number, number];
  /** Bundle.total: exact, or [min, max]. */
  total?: number | [number, number];
  /** Included resources at least. */
  includes?: number;
  /** Full check of the parsed bundle. */
  verify?: (bundle: Bundle) => string | undefined;
}

interface Entry {
  fullUrl?: string;
  resource?: Record<string, any>;
  search?: { mode?: string };
}
interface Bundle {
  resourceType?: string;
  type?: string;
  total?: number;
  entry?: Entry[];
  link?: { relation: string; url: string }[];
}

function countOf(body: string, needle: string): number {
  let n = 0;
  for (let i = body.indexOf(needle); i >= 0; i = body.indexOf(needle, i + needle.length)) n++;
  return n;
}

const inRange = (v: number, e: number | [number, number]) => (typeof e === 'number' ? v === e : v >= e[0] && v <= e[1]);
const show = (e: number | [number, number]) => (typeof e === 'number' ? `${e}` : e[1] === Infinity ? `>= ${e[0]}` : `${e[0]}..${e[1]}`);

function searchCheck(e: Expect): Probe['check'] {
  return (status, body, full) => {
    if (status !== 200) return `status ${status}`;
    if (!full) {
      const head = body.slice(0, 300);
      if (!head.includes('"searchset"')) return 'not a searchset Bundle';
      const total = /"total":(\d+)/.exec(head);
      if (e.total !== undefined && (!total || !inRange(Number(total[1]), e.total))) return `total ${total?.[1] ?? 'missing'}, expected ${show(e.total)}`;
      const matches = countOf(body, '"mode":"match"');
      if (e.matches !== undefined && !inRange(matches, e.matches)) return `${matches} matches, expected ${show(e.matches)}`;
      if (e.includes !== undefined && countOf(body, '"mode":"include"') < e.includes) return `fewer than ${e.includes} included resources`;
      return undefined;
    }
    let b: Bundle;
    try {
      b = JSON.parse(body) as Bundle;
    } catch {
      return 'not JSON';
    }
    if (b.resourceType !== 'Bundle' || b.type !== 'searchset') return `not a searchset Bundle (${b.resourceType} ${b.type})`;
    if (e.total !== undefined && (b.total === undefined || !inRange(b.total, e.total))) return `total ${b.total}, expected ${show(e.total)}`;
    const entries = b.entry ?? [];
    const matches = entries.filter((x) => x.search?.mode === 'match').length;
    if (e.matches !== undefined && !inRange(matches, e.matches)) return `${matches} matches, expected ${show(e.matches)}`;
    if (e.includes !== undefined && entries.filter((x) => x.search?.mode === 'include').length < e.includes) return `fewer than ${e.includes} included resources`;
    if (entries.some((x) => x.search?.mode === 'outcome')) return `an OperationOutcome entry: ${JSON.stringify(entries.find((x) => x.search?.mode === 'outcome')?.resource)}`;
    return e.verify?.(b);
  };
}

const readCheck = (type: string, id: string): Probe['check'] => (status, body, full) => {
  if (status !== 200) return `status ${status}`;
  if (!full) return body.startsWith(`{"resourceType":"${type}"`) || body.includes(`"id":"${id}"`) ? undefined : 'not the resource';
  const r = JSON.parse(body) as { resourceType?: string; id?: string };
  return r.resourceType === type && r.id === id ? undefined : `got ${r.resourceType}/${r.id}`;
};

const matchesOf = (b: Bundle) => (b.entry ?? []).filter((x) => x.search?.mode === 'match').map((x) => x.resource ?? {});
const refers = (value: unknown, ref: string): boolean => JSON.stringify(value ?? null).includes(`"reference":"${ref}"`);

function allOfType(b: Bundle, type: string): string | undefined {
  const wrong = matchesOf(b).find((r) => r.resourceType !== type);
  return wrong ? `a match of type ${wrong.resourceType}` : undefined;
}

/** Dates in the order given must never increase (ties broken by the server as it likes). */
function descending(values: (string | undefined)[]): string | undefined {
  for (let i = 1; i < values.length; i++) {
    const a = Date.parse(values[i - 1] ?? '');
    const b = Date.parse(values[i] ?? '');
    if (Number.isNaN(a) || Number.isNaN(b)) return `entry ${i} has no date`;
    if (b > a) return `not sorted by -date: entry ${i} (${values[i]}) after ${values[i - 1]}`;
  }
  return undefined;
}

// ---------------------------------------------------------------- steps

export interface StepDef {
  step: string;
  /** The search as a pattern, for the table. */
  label: string;
  /** Subject to the targets (p50 < 10 ms and < 3x the read's p50); the read is the baseline. */
  target: boolean;
  next(): Probe;
}

/**
 * The benchmark's steps. `page20` holds the page-20 URLs (paths) collected by following `next`
 * links (collectDeepPages); rnd picks the values.
 */
export function searchSteps(s: Samples, page20: string[], rnd: Random, base = '/fhir'): StepDef[] {
  const pick = <T>(list: T[]): T => {
    if (!list.length) throw new Error('the database holds nothing to build this search from');
    return list[Math.floor(rnd() * list.length)];
  };
  const enc = encodeURIComponent;
  const steps: StepDef[] = [
    {
      step: 'read',
      label: 'GET /{type}/{id} (random resources of every type)',
      target: false,
      next() {
        const ref = pick(s.reads);
        const [type, id] = ref.split('/');
        return { path: `${base}/${ref}`, check: readCheck(type, id) };
      },
    },
    {
      step: 'token',
      label: 'Patient?identifier=<INS system>|<INS-NIR>',
      target: true,
      next() {
        const p = pick(s.patients);
        return {
          path: `${base}/Patient?identifier=${enc(`${SYS.INS}|${p.ins}`)}`,
          check: searchCheck({
            total: 1,
            matches: 1,
            verify: (b) => (matchesOf(b)[0]?.id === p.id ? undefined : `found ${matchesOf(b)[0]?.id}, expected Patient/${p.id}`),
          }),
        };
      },
    },
    {
      step: 'patient-date',
      label: 'Appointment?patient=Patient/<id>&date=ge<month>&date=lt<month+3>',
      target: true,
      next() {
        const w = pick(s.appointmentWindows);
        return {
          path: `${base}/Appointment?patient=${enc(w.patient)}&date=ge${w.ge}&date=lt${w.lt}`,
          check: searchCheck({
            matches: [1, 20],
            verify: (b) => {
              for (const a of matchesOf(b)) {
                if (!refers(a.participant, w.patient)) return `Appointment/${a.id} is not ${w.patient}'s`;
                if (!(a.start >= w.ge && a.start.slice(0, 10) < w.lt)) return `Appointment/${a.id} starts ${a.start}, outside [${w.ge}, ${w.lt})`;
              }
              return allOfType(b, 'Appointment');
            },
          }),
        };
      },
    },
    {
      step: 'name-prefix',
      label: 'Patient?name=<3 letters> (string prefix, accents folded)',
      target: true,
      next() {
        const prefix = pick(s.namePrefixes);
        return {
          path: `${base}/Patient?name=${prefix}`,
          check: searchCheck({
            matches: [1, 20],
            verify: (b) => {
              for (const p of matchesOf(b)) {
                const names = ((p.name ?? []) as { family?: string; given?: string[] }[]).flatMap((n) => [n.family ?? '', ...(n.given ?? [])]).map(FOLD);
                if (!names.some((n) => n.startsWith(prefix))) return `Patient/${p.id} has no name starting with ${prefix}`;
              }
              return allOfType(b, 'Patient');
            },
          }),
        };
      },
    },
    {
      step: 'chain',
      label: 'Observation?subject:Patient.identifier=<INS system>|<INS-NIR>',
      target: true,
      next() {
        const p = pick(s.observationPatients);
        return {
          path: `${base}/Observation?subject:Patient.identifier=${enc(`${SYS.INS}|${p.ins}`)}`,
          check: searchCheck({
            matches: [1, 20],
            verify: (b) => matchesOf(b).find((o) => o.subject?.reference !== `Patient/${p.id}`) ? `an Observation not of Patient/${p.id}` : allOfType(b, 'Observation'),
          }),
        };
      },
    },
    {
      step: 'chain-practitioner',
      label: 'CareTeam?participant:Practitioner.identifier=<idNatPs system>|<idNatPs>',
      target: true,
      next() {
        const p = pick(s.teamPractitioners);
        return {
          path: `${base}/CareTeam?participant:Practitioner.identifier=${enc(`${SYS.IDNPS}|${p.idNatPs}`)}`,
          check: searchCheck({
            matches: [1, 20],
            verify: (b) => matchesOf(b).find((t) => !refers(t.participant, `Practitioner/${p.id}`)) ? `a CareTeam without Practitioner/${p.id}` : allOfType(b, 'CareTeam'),
          }),
        };
      },
    },
    {
      step: 'has',
      label: 'Patient?_has:CareTeam:patient:participant=Practitioner/<id>',
      target: true,
      next() {
        const p = pick(s.teamPractitioners);
        return { path: `${base}/Patient?_has:CareTeam:patient:participant=Practitioner/${p.id}`, check: searchCheck({ matches: [1, 20], verify: (b) => allOfType(b, 'Patient') }) };
      },
    },
    {
      step: 'include',
      label: 'CarePlan?patient=<id>&_include=CarePlan:patient&_include=CarePlan:care-team',
      target: true,
      next() {
        const patient = pick(s.carePlanPatients);
        return {
          path: `${base}/CarePlan?patient=${enc(patient)}&_include=CarePlan:patient&_include=CarePlan:care-team`,
          check: searchCheck({
            matches: [1, 20],
            includes: 2,
            verify: (b) => {
              const included = (b.entry ?? []).filter((x) => x.search?.mode === 'include').map((x) => `${x.resource?.resourceType}/${x.resource?.id}`);
              if (!included.includes(patient)) return `${patient} not included`;
              if (!included.some((r) => r.startsWith('CareTeam/'))) return 'no CareTeam included';
              return allOfType(b, 'CarePlan');
            },
          }),
        };
      },
    },
    {
      step: 'sort-patient',
      label: 'Observation?subject=Patient/<id>&_sort=-date&_count=50',
      target: true,
      next() {
        const p = pick(s.observationPatients);
        return {
          path: `${base}/Observation?subject=Patient/${p.id}&_sort=-date&_count=50`,
          check: searchCheck({ matches: [1, 50], verify: (b) => descending(matchesOf(b).map((o) => o.effectiveDateTime)) ?? allOfType(b, 'Observation') }),
        };
      },
    },
    {
      step: 'sort-broad',
      label: 'Appointment?date=ge<day>&date=lt<day+7>&_sort=-date&_count=50 (all patients)',
      target: true,
      next() {
        const day = pick(s.appointmentDays);
        return {
          path: `${base}/Appointment?date=ge${day}&date=lt${addDays(day, 7)}&_sort=-date&_count=50`,
          check: searchCheck({ matches: [1, 50], verify: (b) => descending(matchesOf(b).map((a) => a.start)) ?? allOfType(b, 'Appointment') }),
        };
      },
    },
    {
      step: 'page-20',
      label: 'page 20 of Observation?code=<LOINC>[&date=ge<year>]&_count=20 (next link followed 19 times)',
      target: true,
      next() {
        const path = pick(page20);
        return { path, check: searchCheck({ matches: 20, verify: (b) => allOfType(b, 'Observation') }) };
      },
    },
  ];
  return steps;
}

/** The broad searches whose page 20 the `page-20` step requests. */
export function pagingQueries(s: Samples, base = '/fhir'): string[] {
  const codes = s.observationCodes.length ? s.observationCodes : OBSERVATIONS.map((o) => o.loinc);
  const out: string[] = [];
  for (const code of codes) {
    for (const since of ['', '2025-01-01', '2026-01-01']) {
      out.push(`${base}/Observation?code=${encodeURIComponent(`${SYS.LOINC}|${code}`)}${since ? `&date=ge${since}` : ''}&_count=20`);
    }
  }
  return out;
}

/**
 * Follows `next` links from page 1 to page `pages` (20) of each query, checking that every page
 * has 20 matches and that no resource shows on two pages; returns the paths of the last pages
 * (at most `want`), and the queries dropped (fewer pages) or failed (an error message).
 */
export async function collectDeepPages(
  origin: string,
  queries: string[],
  o: { log: (s: string) => void; pages?: number; want?: number; parallel?: number },
): Promise<{ urls: string[]; short: number; errors: string[] }> {
  const pages = o.pages ?? 20;
  const want = o.want ?? 12;
  const urls: string[] = [];
  const errors: string[] = [];
  let short = 0;
  const follow = async (q: string): Promise<string | undefined> => {
    let path = q;
    const seen = new Set<string>();
    for (let page = 1; page <= pages; page++) {
      const { status, body } = await fetchText(origin, path);
      if (status !== 200) {
        errors.push(`page ${page} of ${q}: status ${status}: ${body.slice(0, 500)}`);
        return undefined;
      }
      const b = JSON.parse(body) as Bundle;
      const ids = (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
      const repeated = ids.find((id) => seen.has(id));
      if (repeated) {
        errors.push(`page ${page} of ${q}: ${repeated} was already on an earlier page`);
        return undefined;
      }
      for (const id of ids) seen.add(id);
      const next = b.link?.find((l) => l.relation === 'next')?.url;
      if (ids.length !== 20 || (page < pages && !next)) {
        if ((b.total ?? 0) >= 20 * pages) errors.push(`page ${page} of ${q}: ${ids.length} matches, next link ${next ? 'present' : 'missing'}, total ${b.total}`);
        else short++;
        return undefined;
      }
      if (page === pages) return path;
      const u = new URL(next!);
      path = u.pathname + u.search;
    }
    return undefined;
  };
  let i = 0;
  await Promise.all(Array.from({ length: o.parallel ?? 4 }, async () => {
    while (urls.length < want && i < queries.length) {
      const url = await follow(queries[i++]);
      if (url && urls.length < want) urls.push(url);
    }
  }));
  o.log(`  page-${pages} URLs: ${urls.length} collected (${short} queries with fewer than ${pages} pages skipped${errors.length ? `, ${errors.length} errors` : ''})`);
  return { urls, short, errors };
}
