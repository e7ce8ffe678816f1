// Compartment search (search.html#compartments; R4 CompartmentDefinitions patient, encounter,
// relatedPerson, practitioner, device) over HTTP: [compartment]/[id]/[type] through fhir-kit-client
// (GET and POST _search), [compartment]/[id]/* with _type and paging, the compartment's own
// resource ({def}), criteria ANDed with membership, and the errors.
import t from 'tap';
import { harness, refsOf } from './helpers/search.ts';
import { http } from './helpers/server.ts';

const ref = (reference: string) => ({ reference });
const fixtures = [
  { resourceType: 'Practitioner', id: 'pr1', name: [{ family: 'Moreau' }] },
  { resourceType: 'Practitioner', id: 'pr2', name: [{ family: 'Fabre' }] },
  { resourceType: 'PractitionerRole', id: 'role1', practitioner: ref('Practitioner/pr1') },
  { resourceType: 'Patient', id: 'pa', generalPractitioner: [ref('Practitioner/pr1')] },
  // pb links to pa: in pa's compartment by Patient.link (param link).
  { resourceType: 'Patient', id: 'pb', generalPractitioner: [ref('Practitioner/pr2')], link: [{ other: ref('Patient/pa'), type: 'seealso' }] },
  { resourceType: 'RelatedPerson', id: 'rp1', patient: ref('Patient/pa') },
  { resourceType: 'Device', id: 'd1', patient: ref('Patient/pa') },
  { resourceType: 'Encounter', id: 'e1', status: 'finished', class: { code: 'AMB' }, subject: ref('Patient/pa'), participant: [{ individual: ref('Practitioner/pr1') }] },
  { resourceType: 'Encounter', id: 'e2', status: 'finished', class: { code: 'AMB' }, subject: ref('Patient/pb'), participant: [{ individual: ref('RelatedPerson/rp1') }] },
  { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'poids' }, subject: ref('Patient/pa'), encounter: ref('Encounter/e1'), performer: [ref('Practitioner/pr1')] },
  { resourceType: 'Observation', id: 'o2', status: 'final', code: { text: 'poids' }, subject: ref('Patient/pb'), encounter: ref('Encounter/e2'), performer: [ref('RelatedPerson/rp1')], device: ref('Device/d1') },
  { resourceType: 'Observation', id: 'o3', status: 'final', code: { text: 'glycémie' }, subject: ref('Device/d1') },
  { resourceType: 'Observation', id: 'o4', status: 'preliminary', code: { text: 'poids' }, subject: ref('Patient/pb'), performer: [ref('Practitioner/pr1')] },
  { resourceType: 'Appointment', id: 'a1', status: 'proposed', participant: [{ actor: ref('Practitioner/pr1'), status: 'accepted' }, { actor: ref('Patient/pa'), status: 'accepted' }] },
  { resourceType: 'Appointment', id: 'a2', status: 'proposed', participant: [{ actor: ref('RelatedPerson/rp1'), status: 'accepted' }, { actor: ref('Device/d1'), status: 'accepted' }] },
  { resourceType: 'Communication', id: 'c1', status: 'completed', sender: ref('Practitioner/pr1'), recipient: [ref('Patient/pb')], encounter: ref('Encounter/e1') },
  { resourceType: 'CareTeam', id: 'ct1', status: 'active', subject: ref('Patient/pa'), encounter: ref('Encounter/e1'), participant: [{ member: ref('RelatedPerson/rp1') }, { member: ref('Practitioner/pr2') }] },
];

t.test('compartment search in every R4 compartment', async (t) => {
  const h = await harness(t);
  await h.put(...(fixtures as any));
  const inCompartment = async (compartment: string, id: string, type: string, searchParams: Record<string, string> = {}, postSearch = false) =>
    refsOf(await h.client.search({ resourceType: type, compartment: { resourceType: compartment, id }, searchParams, options: { postSearch } }));
  const all = async (path: string) => {
    const res = await http('GET', `${h.s.url}/${path}`);
    t.equal(res.status, 200, path);
    return refsOf(res.body);
  };

  // One type: what the equivalent search finds (each of the type's compartment parameters = the compartment, OR-ed).
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Observation'), ['Observation/o1', 'Observation/o4'], 'Practitioner/pr1/Observation: performer');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Observation', { status: 'final' }), ['Observation/o1'], 'criteria are ANDed with membership');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Observation', { status: 'final' }, true), ['Observation/o1'], 'POST _search');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Patient'), ['Patient/pa'], 'a Patient by general-practitioner');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Practitioner'), ['Practitioner/pr1'], 'the compartment\'s own resource ({def}), not another');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'Communication'), ['Communication/c1'], 'Communication by sender');
  t.strictSame(await inCompartment('Patient', 'pb', 'Communication'), ['Communication/c1'], 'and by recipient in the patient\'s');
  t.strictSame(await inCompartment('Practitioner', 'pr2', 'CareTeam'), ['CareTeam/ct1'], 'CareTeam by participant');
  t.strictSame(await inCompartment('Practitioner', 'pr1', 'CareTeam'), [], 'not a participant: not in it');
  t.strictSame(await inCompartment('Encounter', 'e1', 'Observation'), ['Observation/o1'], 'Encounter/e1/Observation');
  t.strictSame(await inCompartment('Encounter', 'e1', 'Encounter'), ['Encounter/e1'], 'the encounter itself');
  t.strictSame(await inCompartment('RelatedPerson', 'rp1', 'Encounter'), ['Encounter/e2'], 'Encounter by participant');
  t.strictSame(await inCompartment('Device', 'd1', 'Observation'), ['Observation/o2', 'Observation/o3'], 'Observation by device or subject');
  t.strictSame(await inCompartment('Patient', 'pa', 'Patient'), ['Patient/pa', 'Patient/pb'], 'the patient and those that link to it (param link)');
  t.strictSame(await inCompartment('Patient', 'pb', 'Patient'), ['Patient/pb'], 'a link is one way');
  t.strictSame(await inCompartment('Patient', 'pa', 'Observation'), ['Observation/o1'], 'the patient compartment as before');
  const counted = await h.client.search({ resourceType: 'Observation', compartment: { resourceType: 'Device', id: 'd1' }, searchParams: { _summary: 'count' } });
  t.equal((counted as any).total, 2, '_summary=count');

  // Every type the compartment holds.
  t.strictSame(await all('Practitioner/pr1/*'), [
    'Appointment/a1', 'Communication/c1', 'Encounter/e1', 'Observation/o1', 'Observation/o4', 'Patient/pa', 'Practitioner/pr1', 'PractitionerRole/role1',
  ], 'Practitioner/pr1/*');
  t.strictSame(await all('Practitioner/pr2/*'), ['CareTeam/ct1', 'Patient/pb', 'Practitioner/pr2'], 'Practitioner/pr2/*');
  t.strictSame(await all('Encounter/e1/*'), ['CareTeam/ct1', 'Communication/c1', 'Encounter/e1', 'Observation/o1'], 'Encounter/e1/*');
  t.strictSame(await all('RelatedPerson/rp1/*'), ['Appointment/a2', 'CareTeam/ct1', 'Encounter/e2', 'Observation/o2', 'RelatedPerson/rp1'], 'RelatedPerson/rp1/*');
  t.strictSame(await all('Device/d1/*'), ['Appointment/a2', 'Observation/o2', 'Observation/o3'], 'Device/d1/*: not the device itself (no {def} in R4\'s)');
  t.strictSame(await all('Patient/pa/*?_type=Observation,Encounter,RelatedPerson'), ['Encounter/e1', 'Observation/o1', 'RelatedPerson/rp1'], 'Patient/pa/* narrowed by _type');
  t.strictSame(await all('Practitioner/pr1/*?_type=Observation&status=final'), ['Observation/o1'], 'with _type, the type\'s parameters apply');
  t.strictSame(await all('Practitioner/pr1/*?_type=Binary'), [], 'a _type outside the compartment: nothing');

  // Paging through * keeps the compartment: every member once.
  const seen: string[] = [];
  let page = await http('GET', `${h.s.url}/Practitioner/pr1/*?_count=3`);
  t.match(page.body.link.find((l: any) => l.relation === 'self').url, /\/Practitioner\/pr1\/\*\?/, 'the self link is the compartment search');
  for (let i = 0; i < 5 && page.status === 200; i++) {
    seen.push(...refsOf(page.body));
    const next = page.body.link.find((l: any) => l.relation === 'next');
    if (!next) break;
    page = await http('GET', next.url);
  }
  t.equal(seen.length, 8, 'three pages of 3, 3 and 2');
  t.strictSame(seen.sort(), await all('Practitioner/pr1/*'), 'the pages hold the compartment, once each');

  // Errors.
  const status = async (path: string) => {
    const res = await http('GET', `${h.s.url}/${path}`);
    t.equal(res.body.resourceType, 'OperationOutcome', `${path}: an OperationOutcome`);
    return { status: res.status, text: JSON.stringify(res.body.issue) };
  };
  t.match(await status('Organization/x/Observation'), { status: 404, text: /not a compartment/ }, 'Organization has no compartment');
  t.match(await status('Device/d1/Device'), { status: 400, text: /not in the Device compartment/ });
  t.match(await status('Practitioner/pr1/Binary'), { status: 400, text: /not in the Practitioner compartment/ });
  t.match(await status('Practitioner/pr1/Nothing'), { status: 404, text: /Unknown resource type/ });
  t.match(await status('Practitioner/pr1/*?_type=Nothing'), { status: 400, text: /Unknown resource type/ });
  const unknown = await http('GET', `${h.s.url}/Practitioner/pr1/*?family=moreau`);
  t.equal(unknown.status, 200, 'a parameter not common to every type is reported, not applied');
  t.equal(refsOf(unknown.body, 'outcome').length, 1, 'in an outcome entry');
  const strict = await http('GET', `${h.s.url}/Practitioner/pr1/*?family=moreau`, undefined, { prefer: 'handling=strict' });
  t.equal(strict.status, 400, 'or refused with handling=strict');

  // The CapabilityStatement names the five compartments.
  const cs = await http('GET', `${h.s.url}/metadata`);
  t.strictSame([...cs.body.rest[0].compartment].sort(), ['device', 'encounter', 'patient', 'practitioner', 'relatedPerson'].map((c) => `http://hl7.org/fhir/CompartmentDefinition/${c}`));
});
