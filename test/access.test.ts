// Care-team access rights (AUTH=on, src/access/): real tokens from the embedded OpenID provider
// and a loopback third-party issuer, over real HTTP (and fhir-kit-client). An access matrix:
// identities (each role of an active member, a member whose period ended, a member of another
// team, a coordinator, the patient, an aidant, a patient who objected, a system client) x
// interactions (read, vread, history, search with _include/_revinclude/_has/chains/_total,
// compartment search, transaction and batch entries, conditional update, PATCH, delete,
// $validate), asserting exact statuses and that no hidden resource id appears anywhere in the
// answer (body, links, totals, headers, error messages). Then revocation, objections and
// break-glass, which the data decides at once.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { SignJWT, type JWTPayload } from 'jose';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';
import { matrix } from '../src/access/matrix.ts';
import { covers, rightsOf } from '../src/access/rights.ts';
import { limitsOf } from '../src/fhir/context.ts';
import { http, startServer } from './helpers/server.ts';
import { thirdPartyIssuer, tokensFrom } from './helpers/tokens.ts';
import { insertAuditRecords } from '../src/store/audit.ts';
import { toRecord } from '../src/audit/record.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const R85 = 'https://mos.esante.gouv.fr/NOS/TRE_R85-RolePriseCharge/FHIR/TRE-R85-RolePriseCharge';
const CATEGORY = matrix().file.categorySystem;

// Ids chosen so that none is a substring of another, and easy to look for in any answer.
const ID = {
  p1: 'acc-pat1-q9', p2: 'acc-pat2-q9', p3: 'acc-pat3-q9',
  obs1: 'acc-obs1-q9', obs2: 'acc-obs2-q9', obs3: 'acc-obs3-q9',
  comm1: 'acc-comm1-q9', comm2: 'acc-comm2-q9',
  appt1: 'acc-appt1-q9', plan1: 'acc-plan1-q9',
  rp1: 'acc-rp1-q9',
  team1: 'acc-team1-q9', team2: 'acc-team2-q9', team3: 'acc-team3-q9',
  consent2: 'acc-consent2-q9', consent2b: 'acc-consent2b-q9',
} as const;
type Key = keyof typeof ID;
/** The patient-data resources each identity's visibility is checked on. */
const DATA: Array<{ key: Key; type: string }> = [
  { key: 'p1', type: 'Patient' }, { key: 'p2', type: 'Patient' }, { key: 'p3', type: 'Patient' },
  { key: 'obs1', type: 'Observation' }, { key: 'obs2', type: 'Observation' }, { key: 'obs3', type: 'Observation' },
  { key: 'comm1', type: 'Communication' }, { key: 'comm2', type: 'Communication' },
  { key: 'appt1', type: 'Appointment' }, { key: 'plan1', type: 'CarePlan' },
];

const pro = (id: string, idNatPs: string, family: string) => ({ resourceType: 'Practitioner', id, identifier: [{ system: IDNATPS, value: idNatPs }], name: [{ family }] });
const role = (id: string, practitioner: string, org: string, code: string) => ({
  resourceType: 'PractitionerRole', id, active: true, practitioner: { reference: `Practitioner/${practitioner}` }, organization: { reference: `Organization/${org}` }, code: [{ coding: [{ system: code.split('|')[0], code: code.split('|')[1] }] }],
});
const member = (reference: string, period: Record<string, string> = { start: '2026-01-01' }, roleCode?: string) => ({
  member: { reference }, period, ...(roleCode ? { role: [{ coding: [{ system: roleCode.split('|')[0], code: roleCode.split('|')[1] }] }] } : {}),
});

function dataset() {
  const resources: Array<Record<string, unknown>> = [
    { resourceType: 'Organization', id: 'acc-msp', active: true, name: 'MSP' },
    { resourceType: 'Organization', id: 'acc-pharma', active: true, name: 'Pharmacie' },
    { resourceType: 'Organization', id: 'acc-dac', active: true, name: 'DAC' },
    pro('acc-dr-a', '899700200001', 'Moreau'), // médecin, member of team 1 through their PractitionerRole, and of team 2
    pro('acc-nurse-b', '899700200002', 'Fabre'), // infirmière, member of team 1 as Practitioner
    pro('acc-kine-k', '899700200003', 'Dupuy'), // kiné, member of team 1 (medical read only)
    pro('acc-pharm-p', '899700200004', 'Bernard'), // pharmacienne, team 1 through her Organization
    pro('acc-ended-e', '899700200005', 'Ancien'), // médecin whose participation in team 1 ended
    pro('acc-other-o', '899700200006', 'Autre'), // médecin of team 2 only
    pro('acc-coord-c', '899700200007', 'Marchand'), // coordinatrice of the DAC that manages teams 1 and 2
    role('acc-role-a', 'acc-dr-a', 'acc-msp', `${G15}|10`),
    role('acc-role-b', 'acc-nurse-b', 'acc-msp', `${G15}|60`),
    role('acc-role-k', 'acc-kine-k', 'acc-msp', `${G15}|70`),
    role('acc-role-p', 'acc-pharm-p', 'acc-pharma', `${G15}|21`),
    role('acc-role-e', 'acc-ended-e', 'acc-msp', `${G15}|10`),
    role('acc-role-o', 'acc-other-o', 'acc-msp', `${G15}|10`),
    role('acc-role-c', 'acc-coord-c', 'acc-dac', `${R85}|330`),
    { resourceType: 'Patient', id: ID.p1, identifier: [{ system: INS, value: '238043306308701' }], name: [{ family: 'Lefevre' }] },
    { resourceType: 'Patient', id: ID.p2, identifier: [{ system: INS, value: '146112432215402' }], name: [{ family: 'Durand' }] },
    { resourceType: 'Patient', id: ID.p3, identifier: [{ system: INS, value: '255082B12345603' }], name: [{ family: 'Martin' }] },
    { resourceType: 'RelatedPerson', id: ID.rp1, active: true, patient: { reference: `Patient/${ID.p1}` }, name: [{ family: 'Garnier' }] },
    {
      resourceType: 'CareTeam', id: ID.team1, status: 'active', subject: { reference: `Patient/${ID.p1}` }, period: { start: '2026-01-01' },
      managingOrganization: [{ reference: 'Organization/acc-dac' }],
      participant: [
        member('PractitionerRole/acc-role-a'),
        member('Practitioner/acc-nurse-b', { start: '2026-01-01' }, `${R85}|353`),
        member('Practitioner/acc-kine-k'),
        member('Organization/acc-pharma'),
        member('Practitioner/acc-ended-e', { start: '2026-01-01', end: '2026-06-30' }),
        member(`RelatedPerson/${ID.rp1}`),
      ],
    },
    {
      resourceType: 'CareTeam', id: ID.team2, status: 'active', subject: { reference: `Patient/${ID.p2}` }, period: { start: '2026-01-01' },
      managingOrganization: [{ reference: 'Organization/acc-dac' }],
      participant: [member('Practitioner/acc-other-o'), member('PractitionerRole/acc-role-a')],
    },
    // Closed: nobody reaches Patient 3 through it, its coordinator included.
    {
      resourceType: 'CareTeam', id: ID.team3, status: 'inactive', subject: { reference: `Patient/${ID.p3}` }, period: { start: '2026-01-01', end: '2026-05-01' },
      managingOrganization: [{ reference: 'Organization/acc-dac' }],
      participant: [member('PractitionerRole/acc-role-a'), member('Practitioner/acc-other-o')],
    },
    // Patient 2 objects to Dr A, and to any professional reading the liaison notes.
    { resourceType: 'Consent', id: ID.consent2, status: 'active', scope: { text: 'opposition' }, category: [{ text: 'opposition' }], policyRule: { text: 'opposition' }, patient: { reference: `Patient/${ID.p2}` }, provision: { type: 'deny', actor: [{ role: { text: 'professionnel' }, reference: { reference: 'Practitioner/acc-dr-a' } }] } },
    { resourceType: 'Consent', id: ID.consent2b, status: 'active', scope: { text: 'opposition' }, category: [{ text: 'opposition' }], policyRule: { text: 'opposition' }, patient: { reference: `Patient/${ID.p2}` }, provision: { type: 'deny', class: [{ system: CATEGORY, code: 'liaison' }] } },
    { resourceType: 'Observation', id: ID.obs1, status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${ID.p1}` }, performer: [{ reference: 'Practitioner/acc-dr-a' }] },
    {
      resourceType: 'Observation', id: ID.obs2, status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${ID.p2}` }, identifier: [{ system: 'urn:acc', value: 'obs2' }],
      performer: [{ reference: 'Practitioner/acc-dr-a' }], // Dr A's compartment holds every observation
      contained: [{ resourceType: 'Specimen', id: 'sp', type: { text: 'sang' } }], specimen: { reference: '#sp' },
    },
    {
      resourceType: 'Observation', id: ID.obs3, status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${ID.p3}` },
      performer: [{ reference: 'Practitioner/acc-dr-a' }],
      contained: [{ resourceType: 'Specimen', id: 'sp', type: { text: 'sang' } }], specimen: { reference: '#sp' },
    },
    { resourceType: 'Communication', id: ID.comm1, status: 'completed', subject: { reference: `Patient/${ID.p1}` }, payload: [{ contentString: 'cahier de liaison' }] },
    { resourceType: 'Communication', id: ID.comm2, status: 'completed', subject: { reference: `Patient/${ID.p2}` }, payload: [{ contentString: 'cahier de liaison' }] },
    { resourceType: 'Appointment', id: ID.appt1, status: 'booked', start: '2026-12-01T09:00:00Z', end: '2026-12-01T09:30:00Z', participant: [{ actor: { reference: `Patient/${ID.p1}` }, status: 'accepted' }, { actor: { reference: 'Practitioner/acc-dr-a' }, status: 'accepted' }] },
    { resourceType: 'CarePlan', id: ID.plan1, status: 'active', intent: 'plan', subject: { reference: `Patient/${ID.p1}` } },
  ];
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
  };
}

/** What each identity sees of DATA, with the shipped matrix. */
const SEES: Record<string, Key[]> = {
  drA: ['p1', 'obs1', 'comm1', 'appt1', 'plan1'], // team 1; team 2 refused by Patient 2's objection; team 3 closed
  nurseB: ['p1', 'obs1', 'comm1', 'appt1', 'plan1'],
  kineK: ['p1', 'obs1', 'comm1', 'appt1', 'plan1'],
  pharmP: ['p1', 'obs1', 'comm1', 'appt1'], // no medico-social row for pharmacists
  endedE: [],
  otherO: ['p2', 'obs2'], // team 2; liaison denied by Patient 2 to every professional
  coordC: ['p1', 'obs1', 'comm1', 'appt1', 'plan1', 'p2', 'obs2'], // the teams the DAC manages, not the closed one
  patient1: ['p1', 'obs1', 'comm1', 'appt1', 'plan1'],
  aidant1: ['p1', 'comm1', 'appt1', 'plan1'], // no medical data for aidants
  patient2: ['p2', 'obs2', 'comm2'], // the patient who objected sees all of their own data
  system: DATA.map((d) => d.key),
};

t.test('care-team access rights', async (t) => {
  const third = await thirdPartyIssuer();
  t.teardown(third.close);
  const s = await startServer(t, { AUTH: 'on', AUTH_ISSUERS: `${third.issuer}/` });
  const issuer = await tokensFrom(s.url, s.config.dataDir);
  const tokenRequest = issuer.request;
  const thirdToken = (claims: JWTPayload, iat = Math.floor(Date.now() / 1000)) =>
    new SignJWT({ scope: 'user/*.cruds', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1', typ: 'at+jwt' })
      .setIssuer(third.issuer)
      .setAudience(s.url)
      .setIssuedAt(iat)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
      .sign(third.rsa.privateKey);

  const system = await issuer.system();
  const load = await http('POST', s.url, dataset(), { authorization: `Bearer ${system}` });
  t.equal(load.status, 200, `the data set loads: ${load.text.slice(0, 300)}`);

  const practitioner = issuer.practitioner;
  const tokens: Record<string, string> = {
    drA: await practitioner('899700200001'),
    nurseB: await practitioner('899700200002'),
    kineK: await practitioner('899700200003'),
    pharmP: await practitioner('899700200004'),
    endedE: await practitioner('899700200005'),
    otherO: await practitioner('899700200006'),
    coordC: await practitioner('899700200007'),
    patient1: await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'patient', identity: '238043306308701' }),
    aidant1: await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'related-person', identity: ID.rp1 }),
    patient2: await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'patient', identity: '146112432215402' }),
    system,
  };
  const as = (who: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${tokens[who]}`, ...extra });
  const call = (who: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => http(method, `${s.url}/${path}`, body, as(who, headers));
  const hiddenOf = (who: string) => DATA.filter((d) => !SEES[who].includes(d.key)).map((d) => ID[d.key]);
  /**
   * No id the identity may not see appears in the answer: body, headers (Location, links…);
   * `asked` are the ids the request itself names (echoed in self links and not-found messages).
   */
  const noLeak = (t: Tap, who: string, res: Awaited<ReturnType<typeof http>>, what: string, asked: string[] = []) => {
    const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
    const leaked = hiddenOf(who).filter((id) => !asked.includes(id) && (res.text.includes(id) || headers.includes(id)));
    t.same(leaked, [], `${who} ${what}: no hidden id in the answer`);
  };
  type Tap = typeof t;
  const ids = (bundle: { entry?: Array<{ resource?: { id?: string }; search?: { mode?: string } }> }, mode = 'match') =>
    (bundle.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === mode).map((e) => e.resource?.id).filter(Boolean).sort();
  /**
   * A search followed by its next links (5 pages at most), each page checked for leaks: the first
   * page, the matches of every page, the last status and the SQL the server sent meanwhile.
   */
  const followPages = async (t: Tap, who: string, path: string, what: string, asked: string[] = []) => {
    const sent: string[] = [];
    const query = s.db.query.bind(s.db);
    s.db.query = ((text: string, params?: unknown[], name?: string) => (sent.push(text), query(text, params, name))) as typeof s.db.query;
    const found: string[] = [];
    try {
      const first = await call(who, 'GET', path);
      let page = first;
      for (let i = 0; i < 5 && page.status === 200; i++) {
        found.push(...(ids(page.body) as string[]));
        noLeak(t, who, page, `${what}, page ${i + 1}`, asked);
        const next = page.body.link.find((l: { relation: string }) => l.relation === 'next');
        if (!next) break;
        page = await http('GET', next.url, undefined, as(who));
      }
      return { first, found, status: page.status, sent };
    } finally {
      s.db.query = query;
    }
  };

  // A missing resource's answer, to compare hidden ones with.
  const missing = await call('endedE', 'GET', 'Observation/acc-none-q9');
  t.equal(missing.status, 404);

  for (const who of Object.keys(SEES)) {
    t.test(`${who}: read, vread, history, $validate`, async (t) => {
      for (const d of DATA) {
        const id = ID[d.key];
        const visible = SEES[who].includes(d.key);
        const read = await call(who, 'GET', `${d.type}/${id}`);
        t.equal(read.status, visible ? 200 : 404, `read ${d.type}/${id}`);
        if (visible) t.equal(read.body.id, id);
        else {
          t.same(read.body.issue, [{ severity: 'error', code: 'not-found', details: { text: `${d.type}/${id} not found` } }], 'the same answer as a missing resource');
          t.equal(read.headers.get('etag'), null, 'no version of a hidden resource');
          t.equal(missing.body.issue[0].details.text, 'Observation/acc-none-q9 not found');
        }
        const vread = await call(who, 'GET', `${d.type}/${id}/_history/1`);
        t.equal(vread.status, visible ? 200 : 404, `vread ${d.type}/${id}`);
        const hist = await call(who, 'GET', `${d.type}/${id}/_history`);
        t.equal(hist.status, visible ? 200 : 404, `history ${d.type}/${id}`);
        if (visible) t.equal(hist.body.total, 1);
        for (const r of [read, vread, hist]) if (!visible) t.notOk(r.text.includes('versionId') || r.text.includes('poids'), 'no content of the hidden resource');
      }
      // $validate against stored resources: only those the caller sees (a patient's token has no write scope: only GET).
      const val1 = await call(who, 'GET', `Observation/${ID.obs1}/$validate`);
      t.equal(val1.status, SEES[who].includes('obs1') ? 200 : 404, '$validate Observation 1');
      const val3 = await call(who, 'GET', `Observation/${ID.obs3}/$validate`);
      t.equal(val3.status, who === 'system' ? 200 : 404, '$validate Observation 3');
      noLeak(t, who, val3, '$validate of a hidden resource', [ID.obs3]);
      t.notOk(val3.text.includes('poids'), 'nothing of its content');
    });

    t.test(`${who}: searches`, async (t) => {
      const seen = (type: string): string[] => DATA.filter((d) => d.type === type && SEES[who].includes(d.key)).map((d) => ID[d.key] as string).sort();
      const obs = await call(who, 'GET', 'Observation?_total=accurate&_include=Observation:subject&_revinclude=Provenance:target');
      t.equal(obs.status, 200);
      t.same(ids(obs.body), seen('Observation'), 'the match set');
      t.equal(obs.body.total, seen('Observation').length, '_total counts only what the caller sees');
      const subjects = DATA.filter((d) => d.type === 'Patient' && SEES[who].includes(d.key) && seen('Observation').some((o) => o === ID[`obs${d.key.slice(1)}` as Key])).map((d) => ID[d.key]).sort();
      t.same(ids(obs.body, 'include'), subjects, '_include brings visible subjects only');
      noLeak(t, who, obs, 'Observation search with _include');
      const pats = await call(who, 'GET', 'Patient?_revinclude=Observation:subject&_revinclude=Communication:subject&_total=accurate');
      t.same(ids(pats.body), seen('Patient'), 'Patient search');
      t.same(ids(pats.body, 'include'), [...seen('Observation'), ...seen('Communication')].sort(), '_revinclude brings visible resources only');
      noLeak(t, who, pats, 'Patient search with _revinclude');
      // _has: patients having an Observation "poids"; every patient has one, the caller sees the pairs they may.
      const has = await call(who, 'GET', 'Patient?_has:Observation:subject:code:text=poids&_total=accurate');
      t.same(ids(has.body), seen('Patient').filter((p) => seen('Observation').includes(p.replace('pat', 'obs'))), '_has');
      noLeak(t, who, has, '_has');
      // Chains: Observations whose subject has Patient 2's INS.
      const chain = await call(who, 'GET', `Observation?subject:Patient.identifier=${encodeURIComponent(`${INS}|146112432215402`)}&_total=accurate`);
      const chainExpected = SEES[who].includes('obs2') && SEES[who].includes('p2') ? [ID.obs2] : [];
      t.same(ids(chain.body), chainExpected, 'chain');
      t.equal(chain.body.total, chainExpected.length);
      noLeak(t, who, chain, 'chained search');
      // Contained resources (Observations 2 and 3 each contain a Specimen): seen with their container
      // only, whether the answer holds the containers, the contained resources or a chain's matches.
      {
        const expected = (['obs2', 'obs3'] as Key[]).filter((k) => SEES[who].includes(k)).map((k) => ID[k] as string).sort();
        const containers = await call(who, 'GET', 'Specimen?type:text=sang&_contained=true&_total=accurate');
        t.same(ids(containers.body), expected, '_contained=true: the containers the caller sees');
        t.equal(containers.body.total, expected.length);
        noLeak(t, who, containers, '_contained=true');
        const itself = await call(who, 'GET', 'Specimen?type:text=sang&_contained=true&_containedType=contained&_total=accurate&_count=1');
        t.same((itself.body.entry ?? []).map((e: { fullUrl: string }) => e.fullUrl.split('/').pop()), expected.slice(0, 1).map((id) => `${id}#sp`), '_containedType=contained');
        t.equal(itself.body.total, expected.length);
        noLeak(t, who, itself, '_containedType=contained');
        const chained = await call(who, 'GET', 'Observation?specimen.type:text=sang&_total=accurate');
        t.same(ids(chained.body), expected, 'a chain into contained resources');
        t.equal(chained.body.total, expected.length);
      }
      // Driven from the criterion's index rows (search.ts, indexedMatches): the three subjects'
      // observations are read from sp_reference, and the caller's rights decide which of those
      // rows are matches, for every page, its links and the total.
      {
        const subjects = [ID.p1, ID.p2, ID.p3].map((p) => `Patient/${p}`).join(',');
        const driven = await followPages(t, who, `Observation?subject=${subjects}&_count=1&_total=accurate`, 'driven search', [ID.p1, ID.p2, ID.p3]);
        t.equal(driven.first.body.total, seen('Observation').length, 'a driven search counts only what the caller sees');
        t.equal(driven.status, 200);
        t.same(driven.found.sort(), seen('Observation'), 'its pages hold exactly what the caller sees, once each');
        t.ok(driven.sent.some((q) => /WITH driven AS MATERIALIZED/.test(q)), 'read from the criterion\'s index rows');
      }
      // Pages past the first walk one value's index rows from the cursor (search.ts, walkedFromCursor):
      // the caller's rights decide there too which rows are matches.
      {
        const walked = await followPages(t, who, 'Observation?status=final&_count=1', 'walked search');
        t.equal(walked.status, 200);
        t.same(walked.found.sort(), seen('Observation'), 'walked pages hold exactly what the caller sees, once each');
        if (seen('Observation').length > 1) t.ok(walked.sent.some((q) => /ORDER BY x\d+\.rid\) r WHERE/.test(q)), 'a later page walked from the cursor');
      }
      const sys = await call(who, 'GET', `?_type=Observation,Communication&_count=2&_total=accurate`);
      {
        t.equal(sys.status, 200);
        t.equal(sys.body.total, seen('Observation').length + seen('Communication').length, 'system search total');
        noLeak(t, who, sys, 'system search with paging links');
        const next = sys.body.link.find((l: { relation: string }) => l.relation === 'next');
        if (next) {
          const page2 = await http('GET', next.url, undefined, as(who));
          t.equal(page2.status, 200);
          noLeak(t, who, page2, 'next page');
        }
      }
      // Compartment search.
      const comp = await call(who, 'GET', `Patient/${ID.p2}/Observation?_total=accurate`);
      t.equal(comp.status, 200, 'compartment search answers as for any patient');
      t.same(ids(comp.body), SEES[who].includes('obs2') ? [ID.obs2] : [], 'compartment search');
      noLeak(t, who, comp, 'compartment search', [ID.p2]);
      // A practitioner's compartment spans patients: the rights decide which of its resources show.
      const practitioner = await call(who, 'GET', 'Practitioner/acc-dr-a/*?_type=Observation,Appointment&_total=accurate');
      t.equal(practitioner.status, 200);
      t.same(ids(practitioner.body), [...seen('Observation'), ...seen('Appointment')].sort(), 'Practitioner/acc-dr-a/*: what the caller sees of it');
      t.equal(practitioner.body.total, seen('Observation').length + seen('Appointment').length, 'and its total');
      noLeak(t, who, practitioner, 'practitioner compartment search');
      const hist = await call(who, 'GET', 'Observation/_history');
      t.equal(hist.status, 200);
      {
        t.equal(hist.body.total, seen('Observation').length, 'type history counts what the caller sees');
        noLeak(t, who, hist, 'type history');
      }
    });

    t.test(`${who}: batch entries`, async (t) => {
      const batch = await call(who, 'POST', '', {
        resourceType: 'Bundle', type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Observation/${ID.obs1}` } },
          { request: { method: 'GET', url: `Observation/${ID.obs2}` } },
          { request: { method: 'GET', url: `Communication?subject=Patient/${ID.p2}` } },
        ],
      });
      t.equal(batch.status, 200);
      t.match(batch.body.entry[0].response.status, SEES[who].includes('obs1') ? /^200/ : /^404/);
      t.match(batch.body.entry[1].response.status, SEES[who].includes('obs2') ? /^200/ : /^404/);
      t.equal((batch.body.entry[2].resource.entry ?? []).length, SEES[who].includes('comm2') ? 1 : 0);
      noLeak(t, who, batch, 'batch', [ID.obs1, ID.obs2, ID.p2]);
      if (!SEES[who].includes('obs2')) t.notOk(batch.text.includes('poids') && !SEES[who].includes('obs1'), 'no content of hidden entries');
    });
  }

  t.test('writes follow the matrix and the team', async (t) => {
    const obsFor = (patient: string, extra: Record<string, unknown> = {}) => ({ resourceType: 'Observation', status: 'final', code: { text: 'tension' }, subject: { reference: `Patient/${patient}` }, ...extra });
    // Create.
    t.equal((await call('drA', 'POST', 'Observation', obsFor(ID.p1))).status, 201, 'a doctor of the team writes medical data');
    const kineObs = await call('kineK', 'POST', 'Observation', obsFor(ID.p1));
    t.equal(kineObs.status, 403, 'a kiné reads but does not write medical data');
    t.equal(kineObs.body.issue[0].code, 'forbidden');
    t.equal((await call('kineK', 'POST', 'Appointment', { resourceType: 'Appointment', status: 'proposed', participant: [{ actor: { reference: `Patient/${ID.p1}` }, status: 'needs-action' }] })).status, 201, 'a kiné writes agenda data');
    const drP2 = await call('drA', 'POST', 'Observation', obsFor(ID.p2));
    t.equal(drP2.status, 403, 'no write for a patient who objected');
    noLeak(t, 'drA', drP2, 'refused create');
    t.equal((await call('drA', 'POST', 'Observation', obsFor(ID.p3))).status, 403, 'no write through a closed team');
    t.equal((await call('drA', 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' } })).status, 403, 'patient data belongs to a patient');
    t.equal((await call('endedE', 'POST', 'Observation', obsFor(ID.p1))).status, 403, 'a former member writes nothing');
    t.equal((await call('drA', 'POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'X' }] })).status, 403, 'outside patient data: system clients only');
    t.equal((await call('system', 'POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'X' }] })).status, 201);
    t.equal((await call('drA', 'GET', 'Practitioner/acc-other-o')).status, 200, 'every professional reads the directory');
    t.equal((await call('patient1', 'GET', 'Organization/acc-msp')).status, 200, 'so do patients');
    // Update moving a visible resource to a patient the writer may not write.
    const moved = await call('drA', 'PUT', `Observation/${ID.obs1}`, obsFor(ID.p3, { id: ID.obs1 }));
    t.equal(moved.status, 403, 'an update cannot move data to a patient the writer may not write');
    // Update of a hidden resource: as if missing, before any precondition.
    const upHidden = await call('drA', 'PUT', `Observation/${ID.obs2}`, obsFor(ID.p1, { id: ID.obs2 }), { 'if-match': 'W/"1"' });
    t.equal(upHidden.status, 405, 'update of a hidden resource: refused as update-as-create is, If-Match not evaluated');
    // A free id gets the very same answer: nothing tells a hidden id from a free one.
    const upFree = await call('drA', 'PUT', 'Observation/acc-free-id', obsFor(ID.p1, { id: 'acc-free-id' }), { 'if-match': 'W/"1"' });
    t.equal(upFree.status, 405, 'update-as-create with a client id: 405 under care-team rights');
    t.same(upFree.body, upHidden.body, 'the same OperationOutcome for a free and a hidden id');
    t.equal((await call('drA', 'GET', 'Observation/acc-free-id')).status, 404, 'nothing was created');
    // Conditional update matching only a hidden resource: no match for this caller.
    const cond = await call('drA', 'PUT', 'Observation?identifier=urn:acc|obs2', obsFor(ID.p1, { identifier: [{ system: 'urn:acc', value: 'obs2' }] }));
    t.equal(cond.status, 201, 'conditional update: the hidden match is not seen, a new resource is created');
    t.not(cond.body.id, ID.obs2);
    noLeak(t, 'drA', cond, 'conditional update');
    const condP2 = await call('drA', 'PUT', 'Observation?identifier=urn:acc|obs2', obsFor(ID.p2, { identifier: [{ system: 'urn:acc', value: 'obs2' }] }));
    t.equal(condP2.status, 403, "the one match Dr A sees cannot be moved to a patient she may not write");
    const obs2 = await call('system', 'GET', `Observation/${ID.obs2}`);
    t.equal(obs2.body.meta.versionId, '1', 'the hidden resource was never changed');
    // Conditional delete of hidden matches deletes nothing.
    const condDel = await call('drA', 'DELETE', `Observation?subject=Patient/${ID.p2}`);
    t.equal(condDel.status, 200);
    t.match(condDel.body.issue[0].details.text, /nothing deleted/);
    t.equal((await call('system', 'GET', `Observation/${ID.obs2}`)).status, 200, 'still there');
    // PATCH.
    const patch = [{ op: 'replace', path: '/status', value: 'amended' }];
    const ct = { 'content-type': 'application/json-patch+json' };
    t.equal((await call('nurseB', 'PATCH', `Observation/${ID.obs1}`, patch, ct)).status, 200, 'a nurse patches medical data');
    t.equal((await call('kineK', 'PATCH', `Observation/${ID.obs1}`, patch, ct)).status, 403, 'a kiné may not');
    const patchHidden = await call('otherO', 'PATCH', `Observation/${ID.obs1}`, patch, ct);
    t.equal(patchHidden.status, 404, 'PATCH of a hidden resource: 404');
    noLeak(t, 'otherO', patchHidden, 'PATCH', [ID.obs1]);
    const condPatch = await call('otherO', 'PATCH', `Observation?subject=Patient/${ID.p1}`, patch, ct);
    t.equal(condPatch.status, 404, 'conditional PATCH sees no match');
    // Delete.
    t.equal((await call('endedE', 'DELETE', `Communication/${ID.comm1}`)).status, 404, 'delete by a former member: 404');
    t.equal((await call('kineK', 'DELETE', `Observation/${ID.obs1}`)).status, 403, 'delete needs write rights');
    // Transaction entries: all or nothing.
    const tx = (who: string, patient: string) =>
      call(who, 'POST', '', {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { fullUrl: 'urn:uuid:8a3b1c2d-0000-4000-8000-000000000001', resource: { resourceType: 'Communication', status: 'completed', subject: { reference: `Patient/${patient}` } }, request: { method: 'POST', url: 'Communication' } },
          { request: { method: 'GET', url: `Observation?subject=Patient/${ID.p2}` } },
        ],
      });
    const txOk = await tx('pharmP', ID.p1);
    t.equal(txOk.status, 200, 'a pharmacist of the team (through her organisation) writes a liaison note');
    t.match(txOk.body.entry[0].response.status, /^201/);
    t.equal(txOk.body.entry[1].resource.total ?? txOk.body.entry[1].resource.entry?.length ?? 0, 0);
    noLeak(t, 'pharmP', txOk, 'transaction', [ID.p2]);
    const txRefused = await tx('endedE', ID.p1);
    t.equal(txRefused.status, 403, 'a transaction with an entry the writer may not write fails as a whole');
    const fk = new Client({ baseUrl: s.url, bearerToken: tokens.drA });
    await t.rejects(fk.update({ resourceType: 'Observation', id: ID.obs3, body: obsFor(ID.p1, { id: ID.obs3 }) }), { response: { status: 405 } } as unknown as Error, 'fhir-kit-client: update of a hidden resource');
    const created = (await fk.create({ resourceType: 'Observation', body: obsFor(ID.p1) })) as unknown as { id: string };
    t.ok(created.id, 'fhir-kit-client: create');
    const fkSearch = (await fk.search({ resourceType: 'Observation', searchParams: { _total: 'accurate', 'code:text': 'tension' } })) as unknown as { total: number };
    t.equal(fkSearch.total, 3, "fhir-kit-client: Dr A sees the Observations written for Patient 1 (not the conditional update's hidden match)");
    await t.rejects(fk.read({ resourceType: 'Observation', id: ID.obs2 }), { response: { status: 404 } } as unknown as Error, 'fhir-kit-client: hidden read');
  });

  t.test('visibility labels: hidden from the patient, from aidants, masked to professionals but their author', async (t) => {
    const A07 = 'https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument';
    const doc = (id: string, code: string, author?: string) => ({
      resourceType: 'DocumentReference', id, status: 'current', subject: { reference: `Patient/${ID.p1}` },
      securityLabel: [{ coding: [{ system: A07, code }] }], ...(author ? { author: [{ reference: author }] } : {}),
      content: [{ attachment: { contentType: 'text/plain', data: 'dGV4dGU=' } }],
    });
    const L = { invisible: 'acc-doc-invisible-q9', masked: 'acc-doc-masked-q9', normal: 'acc-doc-normal-q9', rl: 'acc-comm-rl-q9' };
    const resources = [
      doc(L.invisible, 'INVISIBLE_PATIENT'),
      doc(L.masked, 'MASQUE_PS', 'PractitionerRole/acc-role-a'),
      doc(L.normal, 'N'),
      { resourceType: 'Communication', id: L.rl, status: 'completed', subject: { reference: `Patient/${ID.p1}` }, meta: { security: [{ system: 'urn:oid:1.2.250.1.213.1.1.4.13', code: 'INVISIBLE_REPRESENTANTS_LEGAUX' }] }, payload: [{ contentString: 'note' }] },
    ];
    for (const r of resources) t.equal((await call('system', 'PUT', `${r.resourceType}/${r.id}`, r)).status, 201);
    const status = async (who: string, type: string, id: string) => (await call(who, 'GET', `${type}/${id}`)).status;
    const expected: [string, string, string, number][] = [
      ['patient1', 'DocumentReference', L.invisible, 404], ['drA', 'DocumentReference', L.invisible, 200], ['nurseB', 'DocumentReference', L.invisible, 200], ['system', 'DocumentReference', L.invisible, 200],
      ['patient1', 'DocumentReference', L.masked, 200], ['drA', 'DocumentReference', L.masked, 200], ['nurseB', 'DocumentReference', L.masked, 404], ['system', 'DocumentReference', L.masked, 200],
      ['patient1', 'DocumentReference', L.normal, 200], ['nurseB', 'DocumentReference', L.normal, 200],
      ['aidant1', 'Communication', L.rl, 404], ['patient1', 'Communication', L.rl, 200], ['nurseB', 'Communication', L.rl, 200],
    ];
    for (const [who, type, id, want] of expected) t.equal(await status(who, type, id), want, `${who} GET ${type}/${id}`);
    const search = async (who: string, query: string) => (await call(who, 'GET', query)).body;
    const nurse = await search('nurseB', `DocumentReference?subject=Patient/${ID.p1}&_total=accurate`);
    t.same(ids(nurse), [L.invisible, L.normal].sort(), 'the nurse does not find the masked document');
    t.equal(nurse.total, 2, 'nor count it');
    const patient = await search('patient1', `Patient?_id=${ID.p1}&_revinclude=DocumentReference:subject`);
    t.same(ids(patient, 'include'), [L.masked, L.normal].sort(), 'the patient does not get the invisible one by _revinclude');
    t.notOk(JSON.stringify(patient).includes(L.invisible));
    const aidant = await search('aidant1', `Communication?subject=Patient/${ID.p1}`);
    t.notOk(ids(aidant).includes(L.rl), 'the aidant does not find the note hidden from legal representatives');
    // The labels of the current version decide.
    const unmasked = { ...doc(L.masked, 'N', 'PractitionerRole/acc-role-a') };
    t.equal((await call('system', 'PUT', `DocumentReference/${L.masked}`, unmasked)).status, 200);
    t.equal(await status('nurseB', 'DocumentReference', L.masked), 200, 'unmasked, the nurse reads it');
    // Only rows flagged as labelled are looked up: without the flag the label is not seen, and
    // migration 012 sets the flag on what was stored before it existed.
    await s.db.query(`UPDATE resources SET index_mask = index_mask & ~512 WHERE resource_type = 'DocumentReference' AND id = $1`, [L.invisible]);
    t.equal(await status('patient1', 'DocumentReference', L.invisible), 200, 'without the flag, the label is not looked up');
    await s.db.exec(readFileSync(new URL('../src/store/migrations/012_labelled_mask.sql', import.meta.url), 'utf8'));
    t.equal(await status('patient1', 'DocumentReference', L.invisible), 404, 'migration 012 flags it again');
  });

  t.test('deleted data: 410 to those who could read it, 404 to the others', async (t) => {
    const obs = { resourceType: 'Observation', id: 'acc-obs-deleted-q9', status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${ID.p1}` } };
    t.equal((await call('system', 'PUT', `Observation/${obs.id}`, obs)).status, 201);
    t.equal((await call('system', 'DELETE', `Observation/${obs.id}`)).status, 200);
    t.equal((await call('drA', 'GET', `Observation/${obs.id}`)).status, 410, 'a member of the patient\'s team: gone');
    t.equal((await call('patient1', 'GET', `Observation/${obs.id}`)).status, 410, 'the patient: gone');
    const other = await call('otherO', 'GET', `Observation/${obs.id}`);
    t.equal(other.status, 404, 'a professional of another team: as if it never existed');
    t.same(other.body.issue[0].details.text, missing.body.issue[0].details.text.replace('acc-none-q9', obs.id), 'with the message of a missing resource');
    const history = await call('drA', 'GET', `Observation/${obs.id}/_history`);
    t.equal(history.status, 200);
    t.same(history.body.entry.map((e: any) => e.request.method), ['DELETE', 'PUT'], 'its history, deletion first');
    t.equal((await call('otherO', 'GET', `Observation/${obs.id}/_history`)).status, 404);
    t.same(ids((await call('drA', 'GET', `Observation?subject=Patient/${ID.p1}`)).body).filter((id) => id === obs.id), [], 'never in a search');
  });

  t.test('the audit trail: the patient sees who accessed their data, a professional their own actions only', async (t) => {
    const event = (agent: string) => ({
      resourceType: 'AuditEvent', type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' }, action: 'R',
      recorded: new Date().toISOString(), outcome: '0',
      agent: [{ who: { reference: agent }, requestor: true }],
      source: { observer: { display: 'test' } },
      entity: [{ what: { reference: `Patient/${ID.p1}` } }, { what: { reference: `Observation/${ID.obs1}` } }],
    });
    const events = [event('Practitioner/acc-dr-a'), event('PractitionerRole/acc-role-b')];
    // Stored as the server stores its own trail (the API refuses to write AuditEvents).
    await insertAuditRecords(s.db, events.map((e) => toRecord(e as never)));
    const found = async (who: string) => {
      const bundle = (await call(who, 'GET', `AuditEvent?patient=Patient/${ID.p1}&_elements=agent`)).body;
      return (bundle.entry ?? []).map((e: any) => e.resource.agent[0].who.reference).sort();
    };
    t.same(await found('patient1'), ['Practitioner/acc-dr-a', 'PractitionerRole/acc-role-b'], 'the patient sees every access to their data');
    t.same(await found('drA'), ['Practitioner/acc-dr-a'], 'a médecin of the team sees his own actions only');
    t.same(await found('nurseB'), ['PractitionerRole/acc-role-b'], 'the nurse hers (as her PractitionerRole)');
    t.same(await found('kineK'), [], 'a colleague of the same team sees none');
    t.same(await found('system'), ['Practitioner/acc-dr-a', 'PractitionerRole/acc-role-b'], 'the platform sees all');
    const drEvent = ids((await call('system', 'GET', `AuditEvent?agent=Practitioner/acc-dr-a`)).body)[0];
    t.equal((await call('kineK', 'GET', `AuditEvent/${drEvent}`)).status, 404, "a colleague cannot read another's event by id");
    t.equal((await call('drA', 'GET', `AuditEvent/${drEvent}`)).status, 200, 'its agent can');
  });

  t.test('removal from the team, objections and closing take effect at once', async (t) => {
    const team1 = (await call('system', 'GET', `CareTeam/${ID.team1}`)).body;
    t.equal((await call('nurseB', 'GET', `Observation/${ID.obs1}`)).status, 200);
    // The nurse's participation ends yesterday.
    team1.participant[1].period = { start: '2026-01-01', end: new Date(Date.now() - 86_400_000).toISOString().slice(0, 10) };
    t.equal((await call('system', 'PUT', `CareTeam/${ID.team1}`, team1)).status, 200);
    t.equal((await call('nurseB', 'GET', `Observation/${ID.obs1}`)).status, 404, 'the next request is refused');
    t.equal((await call('nurseB', 'GET', 'Observation?_total=accurate')).body.total, 0);
    // An objection against the kiné's organisation? The kiné personally: a Consent, then its withdrawal.
    t.equal((await call('kineK', 'GET', `CarePlan/${ID.plan1}`)).status, 200);
    const consent = await call('system', 'POST', 'Consent', { resourceType: 'Consent', status: 'active', scope: { text: 'x' }, category: [{ text: 'x' }], policyRule: { text: 'x' }, patient: { reference: `Patient/${ID.p1}` }, provision: { type: 'deny', actor: [{ role: { text: 'pro' }, reference: { reference: 'Practitioner/acc-kine-k' } }] } });
    t.equal(consent.status, 201);
    t.equal((await call('kineK', 'GET', `CarePlan/${ID.plan1}`)).status, 404, 'an objection counts at once');
    t.equal((await call('kineK', 'GET', `Patient/${ID.p1}`)).status, 404);
    t.equal((await call('drA', 'GET', `CarePlan/${ID.plan1}`)).status, 200, 'for the professional it names only');
    t.equal((await call('system', 'DELETE', `Consent/${consent.body.id}`)).status, 200);
    t.equal((await call('kineK', 'GET', `CarePlan/${ID.plan1}`)).status, 200, 'withdrawn, access is back');
    // An objection to an organisation, for a category.
    const orgConsent = await call('system', 'POST', 'Consent', { resourceType: 'Consent', status: 'active', scope: { text: 'x' }, category: [{ text: 'x' }], policyRule: { text: 'x' }, patient: { reference: `Patient/${ID.p1}` }, provision: { type: 'deny', actor: [{ role: { text: 'org' }, reference: { reference: 'Organization/acc-pharma' } }], class: [{ system: CATEGORY, code: 'medical' }] } });
    t.equal(orgConsent.status, 201);
    t.equal((await call('pharmP', 'GET', `Observation/${ID.obs1}`)).status, 404, 'the pharmacy loses medical data');
    t.equal((await call('pharmP', 'GET', `Communication/${ID.comm1}`)).status, 200, 'and keeps the rest');
    // The aidant is deactivated.
    const rp = (await call('system', 'GET', `RelatedPerson/${ID.rp1}`)).body;
    t.equal((await call('system', 'PUT', `RelatedPerson/${ID.rp1}`, { ...rp, active: false })).status, 200);
    t.equal((await call('aidant1', 'GET', `Communication/${ID.comm1}`)).status, 404, 'an inactive aidant sees nothing more');
    // The team is closed.
    t.equal((await call('drA', 'GET', `Observation/${ID.obs1}`)).status, 200);
    const current = (await call('system', 'GET', `CareTeam/${ID.team1}`)).body;
    t.equal((await call('system', 'PUT', `CareTeam/${ID.team1}`, { ...current, status: 'inactive' })).status, 200);
    t.equal((await call('drA', 'GET', `Observation/${ID.obs1}`)).status, 404, 'a closed team gives no access');
    t.equal((await call('coordC', 'GET', `Observation/${ID.obs1}`)).status, 404, 'not even to its coordinator');
    t.equal((await call('patient1', 'GET', `Observation/${ID.obs1}`)).status, 200, 'the patient still sees their data');
    t.equal((await call('system', 'PUT', `CareTeam/${ID.team1}`, { ...current, status: 'active' })).status, 200);
    t.equal((await call('drA', 'GET', `Observation/${ID.obs1}`)).status, 200, 'reopened');
  });

  t.test('break-glass: explicit, with a reason, time-limited, flagged', async (t) => {
    const reason = encodeURIComponent('Patient inconscient aux urgences');
    t.equal((await call('otherO', 'GET', `Observation/${ID.obs1}`)).status, 404);
    const bg = await call('otherO', 'GET', `Observation/${ID.obs1}`, undefined, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p1}` });
    t.equal(bg.status, 200, 'emergency read with a reason');
    const all = (await call('system', 'GET', `Observation?_total=accurate&subject=Patient/${ID.p1}`)).body.total;
    t.ok(all >= 2);
    t.equal((await call('otherO', 'GET', `Observation?_total=accurate&subject=Patient/${ID.p1}`, undefined, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p1}` })).body.total, all, 'all of that patient');
    t.equal((await call('otherO', 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${ID.p1}` } }, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p1}` })).status, 403, 'break-glass reads only');
    t.equal((await call('otherO', 'GET', `Observation/${ID.obs3}`, undefined, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p1}` })).status, 404, 'for the patient named only');
    const short = await call('otherO', 'GET', `Observation/${ID.obs1}`, undefined, { 'x-break-glass': 'urgence', 'x-break-glass-patient': `Patient/${ID.p1}` });
    t.equal(short.status, 403, 'a reason is required');
    t.match(short.body.issue[0].details.text, /reason/);
    t.equal((await call('otherO', 'GET', `Observation/${ID.obs1}`, undefined, { 'x-break-glass': reason })).status, 403, 'a patient is required');
    t.equal((await call('drA', 'GET', `Observation/${ID.obs2}`, undefined, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p2}` })).status, 404, "break-glass does not override the patient's objection (matrix default)");
    // The token claim, from a third-party issuer: honoured within maxMinutes of iat.
    const fresh = await thirdToken({ idNatPs: '899700200006', break_glass: { reason: 'Chute, patient inconscient', patient: `Patient/${ID.p1}` } });
    t.equal((await http('GET', `${s.url}/Observation/${ID.obs1}`, undefined, { authorization: `Bearer ${fresh}` })).status, 200, 'break_glass claim');
    const old = await thirdToken({ idNatPs: '899700200006', break_glass: { reason: 'Chute, patient inconscient', patient: `Patient/${ID.p1}` } }, Math.floor(Date.now() / 1000) - 2 * 3600);
    const expired = await http('GET', `${s.url}/Observation/${ID.obs1}`, undefined, { authorization: `Bearer ${old}` });
    t.equal(expired.status, 403, 'beyond maxMinutes after the token was issued');
    t.match(expired.body.issue[0].details.text, /lasts 60 minutes/);
    t.equal((await call('patient1', 'GET', `Observation/${ID.obs2}`, undefined, { 'x-break-glass': reason, 'x-break-glass-patient': `Patient/${ID.p2}` })).status, 404, 'patients have no break-glass');
    // The flag the audit reads: on the computed rights (and request.auth.breakGlass.granted).
    const ctx = { db: s.db, ex: s.db, baseUrl: s.url, limits: limitsOf(s.config), inTransaction: false };
    const rights = await rightsOf(ctx, { kind: 'practitioner', practitioner: 'Practitioner/acc-other-o', breakGlass: { reason: 'Patient inconscient aux urgences', patient: `Patient/${ID.p1}`, issuedAt: new Date() } });
    t.equal(rights?.breakGlass?.patient, `Patient/${ID.p1}`);
    t.equal(rights?.breakGlass?.widened, true, 'flagged as widening access');
    t.ok(rights!.breakGlass!.until.getTime() > Date.now() && rights!.breakGlass!.until.getTime() <= Date.now() + 60 * 60_000, 'until iat + 60 minutes');
    const none = await rightsOf(ctx, { kind: 'practitioner', practitioner: 'Practitioner/acc-other-o' });
    t.equal(none?.breakGlass, undefined, 'no flag without a request');
  });

  t.test('periods', async (t) => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    t.ok(covers({ start: '2026-11-23' }, now), 'a start date covers its whole day');
    t.ok(covers({ end: '2026-11-23' }, now), 'an end date covers its whole day');
    t.notOk(covers({ end: '2026-11-22' }, now));
    t.notOk(covers({ start: '2026-11-24' }, now));
    t.notOk(covers({ end: '2026-11-23T09:59:59Z' }, now));
    t.ok(covers({ start: '2026-11' }, now) && covers({ end: '2026' }, now));
  });
});
