// Patient/[id]/$everything (R4 Patient-everything): the patient, their compartment and what it
// references, as a paged searchset; start/end (care dates), _since, _type, _count; errors as
// OperationOutcomes; and, under care-team rights, nothing beyond what the caller may see.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';
import { tokensFrom } from './helpers/tokens.ts';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const CATEGORY = 'https://fhir-coordination.example/CodeSystem/access-category';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

type Entry = { resource: { resourceType: string; id: string }; search?: { mode: string } };
const refs = (bundle: { entry?: Entry[] }, mode = 'match') =>
  (bundle.entry ?? []).filter((e) => e.search?.mode === mode).map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort();

/** Patient ev-p1 with dated and undated data, a practitioner and an organisation they reference; patient ev-p2 with an observation. */
function dataset() {
  const obs = (id: string, patient: string, date: string) => ({
    resourceType: 'Observation', id, status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${patient}` },
    effectiveDateTime: date, performer: [{ reference: 'Practitioner/ev-dr' }],
  });
  const resources = [
    { resourceType: 'Organization', id: 'ev-org', active: true, name: 'MSP des Tilleuls' },
    { resourceType: 'Practitioner', id: 'ev-dr', active: true, identifier: [{ system: IDNATPS, value: '899700400001' }], name: [{ family: 'Martin' }] },
    { resourceType: 'PractitionerRole', id: 'ev-role', active: true, practitioner: { reference: 'Practitioner/ev-dr' }, organization: { reference: 'Organization/ev-org' }, code: [{ coding: [{ system: G15, code: '10' }] }] },
    { resourceType: 'Practitioner', id: 'ev-other', active: true, identifier: [{ system: IDNATPS, value: '899700400002' }], name: [{ family: 'Durand' }] },
    { resourceType: 'Patient', id: 'ev-p1', identifier: [{ system: INS, value: '238043306308701' }], name: [{ family: 'Lefèvre' }], managingOrganization: { reference: 'Organization/ev-org' } },
    { resourceType: 'Patient', id: 'ev-p2', identifier: [{ system: INS, value: '146112432215402' }], name: [{ family: 'Moreau' }] },
    obs('ev-obs-2023', 'ev-p1', '2023-05-01'),
    obs('ev-obs-2025', 'ev-p1', '2025-01-10T09:00:00Z'),
    obs('ev-obs-p2', 'ev-p2', '2024-03-03'),
    { resourceType: 'Encounter', id: 'ev-enc', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'Patient/ev-p1' }, period: { start: '2024-02-01', end: '2024-02-03' } },
    { resourceType: 'Condition', id: 'ev-cond', subject: { reference: 'Patient/ev-p1' }, code: { text: 'diabète' }, onsetDateTime: '2024-06-15' },
    { resourceType: 'CarePlan', id: 'ev-plan', status: 'active', intent: 'plan', subject: { reference: 'Patient/ev-p1' } },
    { resourceType: 'CareTeam', id: 'ev-team', status: 'active', subject: { reference: 'Patient/ev-p1' }, participant: [{ member: { reference: 'PractitionerRole/ev-role' } }] },
  ];
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })) };
}

const P1_MATCHES = ['CarePlan/ev-plan', 'CareTeam/ev-team', 'Condition/ev-cond', 'Encounter/ev-enc', 'Observation/ev-obs-2023', 'Observation/ev-obs-2025', 'Patient/ev-p1'];

t.test('Patient/$everything: the compartment, what it references, care-date window, _since, _type, paging and errors', async (t) => {
  const s = await startServer(t);
  t.equal((await http('POST', s.url, dataset())).status, 200);
  const get = async (query = '', id = 'ev-p1') => http('GET', `${s.url}/Patient/${id}/$everything${query}`);

  const all = await get();
  t.equal(all.status, 200);
  t.equal(all.body.type, 'searchset');
  t.same(refs(all.body), P1_MATCHES, 'the patient and every resource of their compartment, nothing of another patient');
  t.same(refs(all.body, 'include'), ['Organization/ev-org', 'Practitioner/ev-dr', 'PractitionerRole/ev-role'], 'and the resources they reference, as includes');
  t.equal(all.body.total, P1_MATCHES.length);

  // start/end: care dates overlapping the window; the undated (CarePlan, CareTeam, the Patient) always.
  t.same(refs((await get('?start=2024-01-01')).body), P1_MATCHES.filter((r) => r !== 'Observation/ev-obs-2023'), 'start leaves out what ended before it');
  t.same(refs((await get('?end=2023-12-31')).body), ['CarePlan/ev-plan', 'CareTeam/ev-team', 'Observation/ev-obs-2023', 'Patient/ev-p1'], 'end leaves out what began after it');
  t.same(refs((await get('?start=2024-02-02&end=2024-02')).body), ['CarePlan/ev-plan', 'CareTeam/ev-team', 'Encounter/ev-enc', 'Patient/ev-p1'], 'a window inside a period keeps it (Encounter.period)');
  t.same(refs((await get('?start=2024-06-15&end=2024-06-15')).body), ['CarePlan/ev-plan', 'CareTeam/ev-team', 'Condition/ev-cond', 'Patient/ev-p1'], 'a type without a date parameter uses its care date (Condition onset)');

  // _type, _since
  const typed = await get('?_type=Observation,Encounter');
  t.same(refs(typed.body), ['Encounter/ev-enc', 'Observation/ev-obs-2023', 'Observation/ev-obs-2025'], '_type');
  t.same(refs(typed.body, 'include'), ['Patient/ev-p1', 'Practitioner/ev-dr'], 'with what those reference');
  t.same(refs((await get('?_type=Practitioner')).body), [], '_type outside the compartment: nothing');
  await new Promise((r) => setTimeout(r, 20));
  const since = new Date().toISOString();
  t.equal((await http('PUT', `${s.url}/CarePlan/ev-plan`, { resourceType: 'CarePlan', id: 'ev-plan', status: 'completed', intent: 'plan', subject: { reference: 'Patient/ev-p1' } })).status, 200);
  t.same(refs((await get(`?_since=${encodeURIComponent(since)}`)).body), ['CarePlan/ev-plan'], '_since: only what changed since');

  // Paging: every match once over the pages; the links keep the operation and its parameters.
  const seen: string[] = [];
  let page = await get('?_count=2&start=2020-01-01');
  let pages = 1;
  t.match(page.body.link.find((l: { relation: string }) => l.relation === 'next').url, /\/Patient\/ev-p1\/\$everything\?.*start=2020-01-01/, 'the next link is the operation with its parameters');
  for (;;) {
    seen.push(...refs(page.body));
    const next = page.body.link.find((l: { relation: string }) => l.relation === 'next');
    if (!next) break;
    page = await http('GET', next.url);
    t.equal(page.status, 200);
    pages++;
  }
  t.equal(pages, 4);
  t.same(seen.sort(), P1_MATCHES, 'the pages hold every match once');

  // POST with a Parameters resource, and through a third-party client.
  const posted = await http('POST', `${s.url}/Patient/ev-p1/$everything`, { resourceType: 'Parameters', parameter: [{ name: 'start', valueDate: '2024-01-01' }, { name: '_type', valueString: 'Observation' }] });
  t.equal(posted.status, 200);
  t.same(refs(posted.body), ['Observation/ev-obs-2025'], 'POST Parameters: start and _type');
  const client = new Client({ baseUrl: s.url });
  const viaClient = (await client.operation({ name: '$everything', resourceType: 'Patient', id: 'ev-p2', method: 'GET' })) as { entry?: Entry[] };
  t.same(refs(viaClient), ['Observation/ev-obs-p2', 'Patient/ev-p2'], 'fhir-kit-client: the other patient has only their own data');

  // Patient/$everything names no patient: without a patient in context (no token here), an error.
  const typeLevel = await http('GET', `${s.url}/Patient/$everything`);
  t.equal(typeLevel.status, 400, 'Patient/$everything without a patient in context: 400');
  t.match(typeLevel.body.issue[0].details.text, /patient in context/);

  // Errors: OperationOutcomes with the right status.
  const missing = await get('', 'ev-nobody');
  t.equal(missing.status, 404);
  t.equal(missing.body.resourceType, 'OperationOutcome');
  const badDate = await get('?start=2024-13-01');
  t.equal(badDate.status, 400);
  t.match(badDate.body.issue[0].diagnostics ?? badDate.body.issue[0].details?.text, /start/);
  t.equal((await get('?start=2025-01-01&end=2024-01-01')).status, 400, 'start after end');
  const cap = (await http('GET', `${s.url}/metadata`)).body;
  const patientCap = cap.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
  t.ok(patientCap.operation?.some((o: { name: string; definition: string }) => o.name === 'everything' && o.definition === 'http://hl7.org/fhir/OperationDefinition/Patient-everything'), 'the CapabilityStatement states it');
});

t.test('Patient/$everything under care-team rights: a member sees their patient, others nothing, and scopes apply', async (t) => {
  const s = await startServer(t, { AUTH: 'on' });
  const tokens = await tokensFrom(s.url, s.config.dataDir);
  const system = bearer(await tokens.system());
  t.equal((await http('POST', s.url, dataset(), system)).status, 200);
  const member = bearer(await tokens.practitioner('899700400001'));
  const outsider = bearer(await tokens.practitioner('899700400002'));

  const mine = await http('GET', `${s.url}/Patient/ev-p1/$everything`, undefined, member);
  t.equal(mine.status, 200);
  t.same(refs(mine.body), P1_MATCHES, 'a member of the team: everything of the patient');
  const notMine = await http('GET', `${s.url}/Patient/ev-p2/$everything`, undefined, member);
  t.equal(notMine.status, 404, 'a patient outside their teams: as if missing');
  t.notMatch(JSON.stringify(notMine.body), /ev-obs-p2|Moreau/, 'nothing of that patient in the answer');
  const outside = await http('GET', `${s.url}/Patient/ev-p1/$everything`, undefined, outsider);
  t.equal(outside.status, 404, 'a professional of no team of the patient: 404');

  // The patient objects to Dr Martin's access to medical data: the observations leave, the rest stays.
  const consent = {
    resourceType: 'Consent', id: 'ev-consent', status: 'active', scope: { text: 'opposition' }, category: [{ text: 'opposition' }], policyRule: { text: 'opposition' },
    patient: { reference: 'Patient/ev-p1' }, provision: { type: 'deny', actor: [{ role: { text: 'professionnel' }, reference: { reference: 'Practitioner/ev-dr' } }], class: [{ system: CATEGORY, code: 'medical' }] },
  };
  t.equal((await http('PUT', `${s.url}/Consent/ev-consent`, consent, system)).status, 201);
  const objected = await http('GET', `${s.url}/Patient/ev-p1/$everything?_total=accurate`, undefined, member);
  t.equal(objected.status, 200);
  const left = refs(objected.body);
  t.notOk(left.some((r) => r.startsWith('Observation/')), 'no observation after the objection');
  t.equal(objected.body.total, left.length, 'the total counts only what may be seen');

  // The patient: Patient/$everything is their own record; another patient's is as if missing.
  const patient = bearer(await tokens.request({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'patient', identity: '146112432215402' }));
  const own = await http('GET', `${s.url}/Patient/$everything`, undefined, patient);
  t.equal(own.status, 200);
  t.same(refs(own.body), ['Observation/ev-obs-p2', 'Patient/ev-p2'], 'Patient/$everything with a patient token: their own data');
  t.equal((await http('GET', `${s.url}/Patient/ev-p1/$everything`, undefined, patient)).status, 404, "another patient's: 404");

  // Scopes: a token limited to observations may not ask for everything.
  const narrow = bearer(await tokens.request({ grant_type: 'client_credentials', scope: 'system/Observation.rs system/Patient.r' }));
  const refused = await http('GET', `${s.url}/Patient/ev-p1/$everything`, undefined, narrow);
  t.equal(refused.status, 403, 'every type of the compartment needs a search scope');
  t.equal(refused.body.resourceType, 'OperationOutcome');
  const allowed = await http('GET', `${s.url}/Patient/ev-p1/$everything?_type=Observation`, undefined, narrow);
  t.equal(allowed.status, 200, 'with _type within its scopes');
});
