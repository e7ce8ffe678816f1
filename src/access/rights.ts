// What a caller may reach, decided from the stored data (src/access/cache.ts keeps the result per
// caller only while no rights source is written and no period boundary passes, so a change — a
// participant's period ended, a team closed, a Consent recorded — counts at once):
//
// - a professional: the patients of the active CareTeams (period covering now) where they are an
//   active participant (participant period covering now) as their Practitioner, one of their
//   active PractitionerRoles or an active Organization of those roles; what they may do there is
//   the union of the matrix rows of their roles' codes and the participant's team roles;
// - coordination staff (a PractitionerRole whose code is a matrix coordinator role): the patients
//   of the active CareTeams their organisation manages (CareTeam.managingOrganization);
// - the patient (INS identity): their own data; a declared aidant (active RelatedPerson): the
//   data of the patient they help, per their matrix rows;
// - Consent (active, provision.type deny) removes a professional, an organisation, an aidant or
//   a data category (or everyone, without actor) from the patient's data;
// - break-glass (bris de glace): explicit, with a reason, for one patient, within maxMinutes of
//   the token's issue; it adds the matrix's breakGlass rights and is reported for the audit.
//
// Storage is reached through the FHIR interactions (dispatch), as the REST layer does, with no
// access filter (this is the code that builds it); the managing-organisation lookup, for which R4
// has no search parameter, reads the resources table through the same executor.
import type { Bundle, CareTeam, CodeableConcept, Coding, Consent, ConsentProvision, Organization, Period, PractitionerRole, RelatedPerson, Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../fhir/context.ts';
import { FhirError, issue } from '../fhir/outcome.ts';
import { parseQueryString } from '../fhir/request.ts';
import { bodyOf } from '../fhir/response.ts';
import { dispatch, readById } from '../fhir/router.ts';
import { CATEGORIES, granted, matrix, type Category, type CallerKind, type Matrix, type Rights } from './matrix.ts';

/** The caller, as the access layer needs it (built by the HTTP layer from the verified token). */
export type Caller =
  | { kind: 'system' }
  | {
      kind: 'practitioner';
      practitioner: string;
      /** The token grants patient/ scopes only: rights are limited to the patient in context. */
      patientScopesOnly?: boolean;
      patientContext?: string;
      breakGlass?: BreakGlassRequest;
    }
  | { kind: 'patient'; patient: string }
  | { kind: 'related-person'; relatedPerson: string; patient?: string };

export interface BreakGlassRequest {
  reason: string;
  /** Patient/id the emergency access is for. */
  patient?: string;
  /** When the token was issued (iat): the access lasts maxMinutes from then. */
  issuedAt?: Date;
}

export interface BreakGlassGrant {
  reason: string;
  patient: string;
  until: Date;
  /** True when the patient was reachable only through break-glass (it widened the rights). */
  widened: boolean;
}

/** Per category, the patients (Patient/id) whose data of that category the caller may read / write. */
export interface AccessRights {
  kind: CallerKind;
  read: Map<Category, Set<string>>;
  write: Map<Category, Set<string>>;
  outsideRead: boolean;
  outsideWrite: boolean;
  matrixVersion: string;
  breakGlass?: BreakGlassGrant;
  /** Epoch ms of the next period boundary (start or end) these rights depend on; Infinity when none. */
  until: number;
  /** References that designate the caller as an author (their Practitioner and PractitionerRoles): labels spare what they wrote. */
  authorRefs: string[];
}

interface PatientRights {
  read: Set<Category>;
  write: Set<Category>;
}

const forbidden = (text: string) => new FhirError(403, issue('error', 'forbidden', text));

/** The earliest instant after now at which a `covers` answer given so far changes. */
export interface Horizon {
  until: number;
}

/**
 * Is `now` within the period? Partial dates cover their whole day, month or year (UTC). Each
 * bound still ahead of now is noted in the horizon: the answer changes then.
 */
export function covers(period: Period | undefined, now: number, horizon?: Horizon): boolean {
  if (!period) return true;
  const start = period.start ? boundOf(period.start, false) : -Infinity;
  const end = period.end ? boundOf(period.end, true) : Infinity;
  if (horizon) for (const t of [start, end]) if (t > now && t < horizon.until) horizon.until = t;
  return start <= now && now < end;
}

function boundOf(value: string, end: boolean): number {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(value);
  if (!m) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? (end ? Infinity : -Infinity) : t;
  }
  const [y, mo, d] = [Number(m[1]), m[2] ? Number(m[2]) - 1 : 0, m[3] ? Number(m[3]) : 1];
  if (!end) return Date.UTC(y, mo, d);
  return m[3] ? Date.UTC(y, mo, d + 1) : m[2] ? Date.UTC(y, mo + 1, 1) : Date.UTC(y + 1, 0, 1);
}

const codesOf = (concepts: (CodeableConcept | undefined)[] | undefined): string[] =>
  (concepts ?? []).flatMap((c) => (c?.coding ?? []).filter((x) => x.system && x.code).map((x) => `${x.system}|${x.code}`));

/** Every resource of a search, page after page (the interactions' own paging links). */
async function searchAll(ctx: FhirContext, type: string, query: Record<string, string[]>): Promise<Resource[]> {
  const out: Resource[] = [];
  let q: Record<string, string[]> = { ...query, _count: [String(ctx.limits.maxCount)] };
  for (let page = 0; page < 1000; page++) {
    const bundle = bodyOf(await dispatch(ctx, { method: 'GET', path: [type], query: q })) as Bundle | undefined;
    for (const e of bundle?.entry ?? []) if (e.resource && e.search?.mode !== 'outcome') out.push(e.resource);
    const next = bundle?.link?.find((l) => l.relation === 'next')?.url;
    if (!next) break;
    q = parseQueryString(next.slice(next.indexOf('?') + 1));
  }
  return out;
}


function patientOf(ref: string | undefined): string | undefined {
  return ref && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(ref) ? ref : undefined;
}

/** Computes the caller's rights; undefined for system clients (unrestricted). */
export async function rightsOf(ctx: FhirContext, caller: Caller, m: Matrix = matrix(), now = Date.now()): Promise<AccessRights | undefined> {
  if (caller.kind === 'system') return undefined;
  const horizon: Horizon = { until: Infinity };
  const within = (period: Period | undefined) => covers(period, now, horizon);
  const patients = new Map<string, PatientRights>();
  const add = (patient: string, rows: Rights[]) => {
    const p = patients.get(patient) ?? { read: new Set(), write: new Set() };
    for (const c of granted(rows, 'read')) p.read.add(c);
    for (const c of granted(rows, 'write')) p.write.add(c);
    patients.set(patient, p);
  };
  let kind: CallerKind;
  let actorRefs: Set<string>;
  let breakGlass: BreakGlassGrant | undefined;

  if (caller.kind === 'patient') {
    kind = 'patient';
    add(caller.patient, [m.file.patient.rights]);
    actorRefs = new Set([caller.patient]);
    // The patient's own objections never hide their data from them.
    return finish(kind, patients, m, undefined, horizon, []);
  }
  if (caller.kind === 'related-person') {
    kind = 'related-person';
    actorRefs = new Set([caller.relatedPerson]);
    const rp = (await readById(ctx, 'RelatedPerson', caller.relatedPerson.replace(/^RelatedPerson\//, ''))) as RelatedPerson | undefined;
    const patient = patientOf(rp?.patient?.reference);
    // Declared and active now: deactivating the RelatedPerson or ending its period revokes at once.
    if (rp && rp.active !== false && within(rp.period) && patient) add(patient, [m.file.relatedPerson.rights]);
  } else {
    kind = 'professional';
    const me = caller.practitioner;
    const found = await searchAll(ctx, 'PractitionerRole', { practitioner: [me], _include: ['PractitionerRole:organization'] });
    const orgs = new Map(found.filter((r): r is Organization => r.resourceType === 'Organization').map((o) => [`Organization/${o.id}`, o]));
    const roles = found
      .filter((r): r is PractitionerRole => r.resourceType === 'PractitionerRole')
      .filter((r) => r.active !== false && within(r.period) && r.practitioner?.reference === me);
    const roleCodes = new Map(roles.map((r) => [`PractitionerRole/${r.id}`, codesOf(r.code)]));
    const activeOrg = (ref: string | undefined) => !!ref && orgs.has(ref) && orgs.get(ref)!.active !== false;
    const orgCodes = new Map<string, string[]>();
    for (const r of roles) {
      const o = r.organization?.reference;
      if (activeOrg(o)) orgCodes.set(o!, [...(orgCodes.get(o!) ?? []), ...codesOf(r.code)]);
    }
    const allCodes = [...roleCodes.values()].flat();
    actorRefs = new Set([me, ...roleCodes.keys(), ...orgCodes.keys()]);

    // Teams where I take part, as myself, one of my roles or one of my organisations.
    const teams = (await searchAll(ctx, 'CareTeam', { participant: [[...actorRefs].join(',')], status: ['active'] })) as CareTeam[];
    for (const team of teams) {
      const patient = patientOf(team.subject?.reference);
      if (team.status !== 'active' || !within(team.period) || !patient) continue;
      for (const p of team.participant ?? []) {
        const ref = p.member?.reference;
        if (!ref || !actorRefs.has(ref) || !within(p.period)) continue;
        const codes = ref === me ? allCodes : roleCodes.get(ref) ?? orgCodes.get(ref) ?? [];
        add(patient, m.rowsFor([...codes, ...codesOf(p.role)]));
      }
    }
    // Coordination staff: the teams their organisation manages.
    for (const r of roles) {
      const codes = codesOf(r.code);
      const org = r.organization?.reference;
      if (!codes.some((c) => m.isCoordinatorCode(c)) || !activeOrg(org)) continue;
      const managed = await ctx.ex.query<{ content: string }>(
        "SELECT content FROM resources WHERE resource_type = 'CareTeam' AND NOT deleted AND content::jsonb @> $1::jsonb",
        [JSON.stringify({ managingOrganization: [{ reference: org }] })]
      );
      for (const row of managed.rows) {
        const team = JSON.parse(row.content) as CareTeam;
        const patient = patientOf(team.subject?.reference);
        if (team.status === 'active' && within(team.period) && patient) add(patient, m.rowsFor(codes));
      }
    }
    if (caller.breakGlass) breakGlass = checkBreakGlass(caller.breakGlass, caller.patientContext, m, now, patients);
    if (breakGlass && m.file.breakGlass.overridesObjection) {
      await applyConsents(ctx, patients, actorRefs, m, now, horizon);
      add(breakGlass.patient, [m.file.breakGlass.rights]);
    } else {
      if (breakGlass) add(breakGlass.patient, [m.file.breakGlass.rights]);
      await applyConsents(ctx, patients, actorRefs, m, now, horizon);
    }
    // A token limited to patient/ scopes reaches the patient in context only.
    if (caller.patientScopesOnly) for (const p of [...patients.keys()]) if (p !== caller.patientContext) patients.delete(p);
    return finish(kind, patients, m, breakGlass, horizon, [me, ...roleCodes.keys()]);
  }
  await applyConsents(ctx, patients, actorRefs, m, now, horizon);
  return finish(kind, patients, m, breakGlass, horizon, []);
}

function checkBreakGlass(req: BreakGlassRequest, context: string | undefined, m: Matrix, now: number, patients: Map<string, PatientRights>): BreakGlassGrant {
  const bg = m.file.breakGlass;
  const reason = req.reason.trim();
  if (reason.length < bg.minReasonLength) throw forbidden(`Break-glass access needs a reason of at least ${bg.minReasonLength} characters`);
  const patient = patientOf(req.patient ?? context);
  if (!patient) throw forbidden('Break-glass access is for one patient: give it (X-Break-Glass-Patient: Patient/id, or the patient in context)');
  if (!req.issuedAt) throw forbidden('Break-glass access needs a token that states when it was issued (iat)');
  const until = new Date(req.issuedAt.getTime() + bg.maxMinutes * 60_000);
  if (until.getTime() <= now) throw forbidden(`Break-glass access lasts ${bg.maxMinutes} minutes from the token's issue; get a new token`);
  const before = patients.get(patient);
  const extra = granted([bg.rights], 'read');
  const widened = !before || [...extra].some((c) => !before.read.has(c));
  return { reason, patient, until, widened };
}

/** Active Consents with deny provisions, applied to the caller (actor) on each reachable patient. */
async function applyConsents(ctx: FhirContext, patients: Map<string, PatientRights>, actorRefs: Set<string>, m: Matrix, now: number, horizon: Horizon): Promise<void> {
  const list = [...patients.keys()];
  for (let i = 0; i < list.length; i += 100) {
    const consents = (await searchAll(ctx, 'Consent', { patient: [list.slice(i, i + 100).join(',')], status: ['active'] })) as Consent[];
    for (const consent of consents) {
      const patient = patientOf(consent.patient?.reference);
      const rights = patient && patients.get(patient);
      if (consent.status !== 'active' || !rights) continue;
      for (const deny of denials(consent.provision)) {
        if (!covers(deny.period, now, horizon)) continue;
        const actors = (deny.actor ?? []).map((a) => a.reference?.reference).filter((r): r is string => !!r);
        if (actors.length && !actors.some((a) => actorRefs.has(a))) continue;
        const cats = categoriesOf(deny, m);
        for (const c of cats ?? CATEGORIES) {
          rights.read.delete(c);
          rights.write.delete(c);
        }
      }
    }
  }
}

/** Every provision (nested ones included) whose type is deny. */
function denials(p: ConsentProvision | undefined): ConsentProvision[] {
  if (!p) return [];
  return [...(p.type === 'deny' ? [p] : []), ...(p.provision ?? []).flatMap(denials)];
}

/** The categories a deny provision names (class or code in the category system, or resource types); undefined = all. */
function categoriesOf(p: ConsentProvision, m: Matrix): Category[] | undefined {
  const codings: Coding[] = [...(p.class ?? []), ...(p.code ?? []).flatMap((c) => c.coding ?? [])];
  if (!codings.length) return undefined;
  const out = new Set<Category>();
  for (const c of codings) {
    if (c.system === m.file.categorySystem && (CATEGORIES as string[]).includes(c.code ?? '')) out.add(c.code as Category);
    else if (c.system === 'http://hl7.org/fhir/resource-types' && c.code) out.add(m.categoryOf(c.code));
    else return undefined; // a provision this server cannot read denies everything (never less)
  }
  return [...out];
}

function finish(kind: CallerKind, patients: Map<string, PatientRights>, m: Matrix, breakGlass: BreakGlassGrant | undefined, horizon: Horizon, authorRefs: string[]): AccessRights {
  const read = new Map<Category, Set<string>>(CATEGORIES.map((c) => [c, new Set()]));
  const write = new Map<Category, Set<string>>(CATEGORIES.map((c) => [c, new Set()]));
  for (const [patient, r] of patients) {
    for (const c of r.read) read.get(c)!.add(patient);
    // Writing a category needs reading it too.
    for (const c of r.write) if (r.read.has(c)) write.get(c)!.add(patient);
  }
  // An objection that cancels the emergency access leaves nothing widened.
  if (breakGlass && ![...read.values()].some((s) => s.has(breakGlass!.patient))) breakGlass = { ...breakGlass, widened: false };
  return {
    kind,
    read,
    write,
    outsideRead: m.file.outsideCompartment.read.includes(kind),
    outsideWrite: m.file.outsideCompartment.write.includes(kind),
    matrixVersion: m.version,
    breakGlass,
    until: Math.min(horizon.until, breakGlass ? breakGlass.until.getTime() : Infinity),
    authorRefs,
  };
}
