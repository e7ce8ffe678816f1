// FHIR R4 search (search.html) against the real server over HTTP: every parameter type with
// its modifiers and prefixes, chaining and _has, result parameters (_sort, _count and paging,
// _total, _summary, _elements, _include/_revinclude), GET and POST _search, system and
// compartment search, error handling, and that deleted or superseded data never shows.
// Searches and writes go through a third-party client (fhir-kit-client); fetch (http()) is
// used where the status or headers matter. Every assertion compares exact, sorted id sets.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { harness, idsOf, refsOf, type Params, type Resource } from './helpers/search.ts';
import { http, startServer } from './helpers/server.ts';


const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const FR_0203 = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203';
const SUBSETTED = 'SUBSETTED';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- string

t.test('string: prefix, case and accent folding, :exact, :contains, name and address parts, :missing, OR/AND', async (t) => {
  const h = await harness(t);
  await h.put(
    {
      resourceType: 'Patient', id: 'p1',
      name: [{ family: 'Lefèvre', given: ['Hélène', 'Marie'] }],
      address: [{ line: ['3 rue de la Paix'], city: 'Saint-Étienne', postalCode: '42000', country: 'FR' }],
    },
    {
      resourceType: 'Patient', id: 'p2',
      name: [{ family: 'Martin', given: ['Helena'] }],
      address: [
        { city: 'Lyon', postalCode: '69001' },
        { city: 'Paris', postalCode: '75001' },
      ],
    },
    { resourceType: 'Patient', id: 'p3', name: [{ family: 'Dupont', given: ['Jean'] }] },
    { resourceType: 'Patient', id: 'p4', name: [{ family: 'Durand', given: ['HÉLÈNE'] }, { family: 'Lefebvre' }] },
    { resourceType: 'Patient', id: 'p5', gender: 'unknown' }
  );
  await h.matrix(t, 'Patient', [
    // default: starts-with, case and accent insensitive
    [{ family: 'lef' }, ['p1', 'p4']],
    [{ family: 'LEFEVRE' }, ['p1']],
    [{ family: 'Lefèvre' }, ['p1']],
    [{ family: 'efevre' }, []],
    [{ given: 'helene' }, ['p1', 'p4']],
    [{ given: 'HELENE' }, ['p1', 'p4']],
    [{ given: 'Hélène' }, ['p1', 'p4']],
    [{ given: 'hel' }, ['p1', 'p2', 'p4']],
    [{ given: 'marie' }, ['p1']],
    [{ name: 'dupont' }, ['p3']],
    [{ name: 'jean' }, ['p3']],
    // :exact: the whole string, case and accents included
    [{ 'given:exact': 'Hélène' }, ['p1']],
    [{ 'given:exact': 'HÉLÈNE' }, ['p4']],
    [{ 'given:exact': 'helene' }, []],
    [{ 'given:exact': 'Hél' }, []],
    [{ 'family:exact': 'Lefèvre' }, ['p1']],
    // :contains: anywhere, folded
    [{ 'family:contains': 'EVR' }, ['p1']],
    [{ 'family:contains': 'ebv' }, ['p4']],
    [{ 'name:contains': 'elen' }, ['p1', 'p2', 'p4']],
    // Address parts
    [{ 'address-city': 'saint-etienne' }, ['p1']],
    [{ 'address-city': 'SAINT-ÉT' }, ['p1']],
    [{ 'address-city': 'paris' }, ['p2']],
    [{ 'address-postalcode': '69' }, ['p2']],
    [{ 'address-postalcode': '42000' }, ['p1']],
    [{ address: 'lyon' }, ['p2']],
    [{ address: '3 rue' }, ['p1']],
    [{ 'address-country': 'fr' }, ['p1']],
    // :missing
    [{ 'address-city:missing': 'true' }, ['p3', 'p4', 'p5']],
    [{ 'address-city:missing': 'false' }, ['p1', 'p2']],
    [{ 'family:missing': 'true' }, ['p5']],
    // OR within a parameter, AND across repetitions
    [{ given: 'jean,marie' }, ['p1', 'p3']],
    [{ family: 'martin,dupont,nobody' }, ['p2', 'p3']],
    [{ given: 'helene', family: 'dur' }, ['p4']],
    [{ given: ['hel', 'helena'] }, ['p2']],
    [{ family: ['lef', 'lefeb'] }, ['p4']],
  ]);
});

// ---------------------------------------------------------------- token

t.test('token: code, system|code, |code, system|, Identifier, CodeableConcept, boolean, :not, :text, :of-type, :missing', async (t) => {
  const h = await harness(t);
  await h.put(
    {
      resourceType: 'Patient', id: 'ins1', active: true, gender: 'female',
      identifier: [
        { system: INS, value: '285017512345612', type: { coding: [{ system: FR_0203, code: 'INS-NIR' }], text: 'NIR définitif' } },
        { system: 'urn:oid:1.2.250.1.71.4.2.7', value: 'IPP-001', type: { coding: [{ system: V2_0203, code: 'PI' }] } },
      ],
    },
    {
      resourceType: 'Patient', id: 'ins2', active: false, gender: 'male',
      identifier: [{ system: INS, value: '185017512345699', type: { coding: [{ system: FR_0203, code: 'INS-NIR' }] } }],
    },
    { resourceType: 'Patient', id: 'nosys', active: true, identifier: [{ value: '285017512345612' }] },
    { resourceType: 'Patient', id: 'bare' },
    {
      resourceType: 'Observation', id: 'hr', status: 'final',
      code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }], text: 'Fréquence cardiaque' },
    },
    {
      resourceType: 'Observation', id: 'bp', status: 'final',
      code: {
        coding: [
          { system: LOINC, code: '85354-9', display: 'Blood pressure panel' },
          { system: 'http://snomed.info/sct', code: '75367002', display: 'Blood pressure' },
        ],
      },
    },
    { resourceType: 'Observation', id: 'local', status: 'preliminary', code: { coding: [{ code: '8867-4' }] } },
    { resourceType: 'Observation', id: 'textonly', status: 'final', code: { text: 'Poids' } }
  );
  await h.matrix(t, 'Patient', [
    // Identifier
    [{ identifier: `${INS}|285017512345612` }, ['ins1']],
    [{ identifier: '285017512345612' }, ['ins1', 'nosys']],
    [{ identifier: '|285017512345612' }, ['nosys']],
    [{ identifier: `${INS}|` }, ['ins1', 'ins2']],
    [{ identifier: `${INS}|IPP-001` }, []],
    [{ identifier: 'urn:oid:1.2.250.1.71.4.2.7|IPP-001' }, ['ins1']],
    [{ identifier: `${INS}|285017512345612,${INS}|185017512345699` }, ['ins1', 'ins2']],
    [{ 'identifier:of-type': `${FR_0203}|INS-NIR|185017512345699` }, ['ins2']],
    [{ 'identifier:of-type': `${FR_0203}|INS-NIR|IPP-001` }, []],
    [{ 'identifier:of-type': `${V2_0203}|PI|IPP-001` }, ['ins1']],
    [{ 'identifier:text': 'nir defin' }, ['ins1']],
    [{ 'identifier:missing': 'true' }, ['bare']],
    [{ 'identifier:missing': 'false' }, ['ins1', 'ins2', 'nosys']],
    // boolean and code
    [{ active: 'true' }, ['ins1', 'nosys']],
    [{ active: 'false' }, ['ins2']],
    [{ 'active:not': 'true' }, ['ins2', 'bare']],
    [{ 'active:missing': 'true' }, ['bare']],
    [{ gender: 'female' }, ['ins1']],
    [{ 'gender:not': 'male' }, ['ins1', 'nosys', 'bare']],
    [{ 'gender:missing': 'false' }, ['ins1', 'ins2']],
  ]);
  await h.matrix(t, 'Observation', [
    [{ code: '8867-4' }, ['hr', 'local']],
    [{ code: `${LOINC}|8867-4` }, ['hr']],
    [{ code: '|8867-4' }, ['local']],
    [{ code: `${LOINC}|` }, ['hr', 'bp']],
    [{ code: 'http://snomed.info/sct|75367002' }, ['bp']],
    [{ code: `${LOINC}|75367002` }, []],
    [{ code: `${LOINC}|8867-4,http://snomed.info/sct|75367002` }, ['hr', 'bp']],
    [{ 'code:not': `${LOINC}|8867-4` }, ['bp', 'local', 'textonly']],
    [{ 'code:text': 'frequence' }, ['hr']],
    [{ 'code:text': 'heart' }, ['hr']],
    [{ 'code:text': 'BLOOD pressure' }, ['bp']],
    [{ 'code:text': 'poids' }, ['textonly']],
    [{ status: 'final,preliminary' }, ['hr', 'bp', 'local', 'textonly']],
    [{ status: 'preliminary' }, ['local']],
    // tokens are matched exactly, not by prefix
    [{ code: '8867' }, []],
  ]);
});

// ---------------------------------------------------------------- date

t.test('date: prefixes and precision on date (Patient.birthDate)', async (t) => {
  const h = await harness(t);
  const births: Record<string, string> = {
    a: '1950-03-04', b: '1950-03-20', c: '1950-07-01', d: '1949-12-31', e: '1951-01-01', f: '1950', g: '1950-03', h: '1990-01-01',
  };
  for (const [id, birthDate] of Object.entries(births)) await h.put({ resourceType: 'Patient', id, birthDate });
  await h.put({ resourceType: 'Patient', id: 'none' });
  await h.matrix(t, 'Patient', [
    // eq (default): the target range lies within the search range
    [{ birthdate: '1950' }, ['a', 'b', 'c', 'f', 'g']],
    [{ birthdate: 'eq1950' }, ['a', 'b', 'c', 'f', 'g']],
    [{ birthdate: '1950-03' }, ['a', 'b', 'g']],
    [{ birthdate: '1950-03-04' }, ['a']],
    [{ birthdate: '1950-03-04T10:00:00Z' }, []],
    // ne: not contained (resources without a value do not match)
    [{ birthdate: 'ne1950-03' }, ['c', 'd', 'e', 'f', 'h']],
    // gt / lt: some part of the target lies after / before the search range
    [{ birthdate: 'gt1950-03' }, ['c', 'e', 'f', 'h']],
    [{ birthdate: 'lt1950-03' }, ['d', 'f']],
    [{ birthdate: 'ge1950-03' }, ['a', 'b', 'c', 'e', 'f', 'g', 'h']],
    [{ birthdate: 'le1950-03' }, ['a', 'b', 'd', 'f', 'g']],
    [{ birthdate: 'gt1950-03-04' }, ['b', 'c', 'e', 'f', 'g', 'h']],
    [{ birthdate: 'le1950-03-04' }, ['a', 'd', 'f', 'g']],
    // sa / eb: the target starts after / ends before the search range
    [{ birthdate: 'sa1950-03' }, ['c', 'e', 'h']],
    [{ birthdate: 'eb1950-03' }, ['d']],
    [{ birthdate: 'sa1950' }, ['e', 'h']],
    [{ birthdate: 'eb1950-01-01' }, ['d']],
    // ap: within 10% of the distance to now (decades here), never 40 years off
    [{ birthdate: 'ap1950-03-04' }, ['a', 'b', 'c', 'd', 'e', 'f', 'g']],
    [{ birthdate: 'ap1990-01-01' }, ['h']],
    // ranges by AND, alternatives by OR
    [{ birthdate: ['ge1950-03-01', 'lt1950-04-01'] }, ['a', 'b', 'f', 'g']], // 1950 overlaps both
    [{ birthdate: ['ge1950-03-01', 'le1950-03-31'] }, ['a', 'b', 'f', 'g']],
    [{ birthdate: ['sa1950-02-28', 'eb1950-04-01'] }, ['a', 'b', 'g']],
    [{ birthdate: '1949,1951' }, ['d', 'e']],
    [{ 'birthdate:missing': 'true' }, ['none']],
  ]);
});

t.test('primitives with extensions (birthDate beside _birthDate) are indexed by their value', async (t) => {
  const h = await harness(t);
  const ext = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1950-03-04T08:30:00+01:00' }] };
  const dar = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] };
  await h.put(
    { resourceType: 'Patient', id: 'ext', birthDate: '1950-03-04', _birthDate: ext, gender: 'female', _gender: dar, active: true, _active: dar } as Resource,
    { resourceType: 'Patient', id: 'plain', birthDate: '1950-03-04', gender: 'female', active: true },
    { resourceType: 'Patient', id: 'absent', _birthDate: dar, gender: 'male' } as Resource
  );
  await h.matrix(t, 'Patient', [
    [{ birthdate: '1950-03-04' }, ['ext', 'plain']],
    [{ birthdate: 'ge1950-03' }, ['ext', 'plain']],
    [{ gender: 'female' }, ['ext', 'plain']],
    [{ active: 'true' }, ['ext', 'plain']],
    [{ 'birthdate:missing': 'true' }, ['absent']],
  ]);
});

t.test('date: repeated criteria on one value (single-valued) or on any values (several values)', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Appointment', id: 'week', status: 'booked', start: '2026-03-06T10:00:00Z', end: '2026-03-06T10:30:00Z', participant: [{ actor: { reference: 'Patient/x' }, status: 'accepted' }] },
    { resourceType: 'Appointment', id: 'before', status: 'booked', start: '2026-03-01T10:00:00Z', end: '2026-03-01T10:30:00Z', participant: [{ actor: { reference: 'Patient/x' }, status: 'accepted' }] },
    // a Timing indexes one value per event: each criterion may hold for another event
    { resourceType: 'ServiceRequest', id: 'events', status: 'active', intent: 'order', subject: { reference: 'Patient/x' }, occurrenceTiming: { event: ['2020-01-01T10:00:00Z', '2030-01-01T10:00:00Z'] } },
  );
  t.strictSame(await h.find('Appointment', { date: ['ge2026-03-05', 'lt2026-03-12'] }), ['week'], 'a week of appointments');
  t.strictSame(await h.find('Appointment', { date: ['ge2026-03-01', 'le2026-03-06'] }), ['before', 'week'], 'inclusive bounds');
  t.strictSame(await h.find('Appointment', { date: ['ge2026-03-02', 'lt2026-03-01'] }), [], 'an empty range matches nothing');
  await h.put({ resourceType: 'CarePlan', id: 'span', status: 'active', intent: 'plan', subject: { reference: 'Patient/x' }, period: { start: '2026-02-01', end: '2026-04-01' } });
  t.strictSame(await h.find('CarePlan', { date: ['ge2026-03-02', 'lt2026-03-01'] }), ['span'], 'one period can meet both criteria across the gap between them');
  t.strictSame(await h.find('CarePlan', { date: ['ge2026-03-02', 'lt2026-03-12'] }), ['span'], 'a period overlapping the window');
  t.strictSame(await h.find('CarePlan', { date: ['ge2026-05-01', 'lt2026-06-01'] }), [], 'a period before the window');
  t.strictSame(await h.find('ServiceRequest', { occurrence: ['ge2029-01-01', 'lt2021-01-01'] }), ['events'], 'several values: each criterion met by another event');
  t.strictSame(await h.find('ServiceRequest', { occurrence: ['ge2021-01-01', 'lt2029-01-01'] }), ['events'], 'several values: found though no event lies between the bounds');
  t.strictSame(await h.find('ServiceRequest', { occurrence: ['ge2031-01-01', 'lt2021-01-01'] }), [], 'several values: one criterion no event meets');
});

t.test('date: ap is relative to now (10% of the distance)', async (t) => {
  const h = await harness(t);
  const day = 86_400_000;
  const tenYearsAgo = Date.now() - 3652 * day; // the ap margin is then about a year
  const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const births: Record<string, number> = {
    exact: tenYearsAgo, before: tenYearsAgo - 200 * day, after: tenYearsAgo + 200 * day, older: tenYearsAgo - 800 * day, younger: tenYearsAgo + 800 * day,
  };
  for (const [id, ms] of Object.entries(births)) await h.put({ resourceType: 'Patient', id, birthDate: ymd(ms) });
  await h.matrix(t, 'Patient', [
    [{ birthdate: `ap${ymd(tenYearsAgo)}` }, ['exact', 'before', 'after']],
    [{ birthdate: `ap${ymd(tenYearsAgo - 500 * day)}` }, ['before', 'older']],
  ]);
});

t.test('date: dateTime with time zone offsets at the day boundary', async (t) => {
  const h = await harness(t);
  const obs = (id: string, effectiveDateTime: string): Resource => ({
    resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, effectiveDateTime,
  });
  await h.put(
    obs('plus1', '2024-03-05T00:30:00+01:00'), // 2024-03-04T23:30:00Z
    obs('utc', '2024-03-05T00:30:00Z'),
    obs('minus5', '2024-03-04T10:00:00-05:00'), // 2024-03-04T15:00:00Z
    obs('minute', '2024-03-04T23:59:00Z')
  );
  await h.matrix(t, 'Observation', [
    // A date without time is a UTC day on this server.
    [{ date: '2024-03-04' }, ['plus1', 'minus5', 'minute']],
    [{ date: '2024-03-05' }, ['utc']],
    // The same instant written in two zones is one instant.
    [{ date: '2024-03-04T23:30:00Z' }, ['plus1']],
    [{ date: '2024-03-05T00:30:00+01:00' }, ['plus1']],
    [{ date: '2024-03-04T10:00:00-05:00' }, ['minus5']],
    [{ date: '2024-03-04T15:00:00Z' }, ['minus5']],
    [{ date: 'ge2024-03-05T00:00:00+01:00' }, ['plus1', 'utc', 'minute']],
    [{ date: 'lt2024-03-05T00:00:00Z' }, ['plus1', 'minus5', 'minute']],
    [{ date: 'gt2024-03-04T23:30:00Z' }, ['utc', 'minute']],
    [{ date: 'le2024-03-04T23:30:00Z' }, ['plus1', 'minus5']],
    [{ date: 'sa2024-03-04T23:59:59Z' }, ['utc']],
    [{ date: 'eb2024-03-04T23:30:00+00:00' }, ['minus5']],
    // a search value to the minute is the whole minute; the target is to the second
    [{ date: '2024-03-04T23:59Z' }, ['minute']],
    [{ date: '2024-03-04T23:58Z' }, []],
    [{ date: '2024-03-04T23:59:00Z' }, ['minute']],
    [{ date: '2024-03-04T23:59:01Z' }, []],
  ]);
});

t.test('date: Period (CarePlan.period, CareTeam.period), open-ended periods', async (t) => {
  const h = await harness(t);
  await h.put({ resourceType: 'Patient', id: 'pat' });
  const plan = (id: string, period: Record<string, string>): Resource => ({
    resourceType: 'CarePlan', id, status: 'active', intent: 'plan', subject: { reference: 'Patient/pat' }, period,
  });
  await h.put(
    plan('jan', { start: '2024-01-01', end: '2024-01-31' }),
    plan('from15', { start: '2024-01-15' }),
    plan('until2023', { end: '2023-12-31' }),
    plan('feb', { start: '2024-02-01T08:00:00+01:00', end: '2024-02-29T18:00:00+01:00' }),
    { resourceType: 'CarePlan', id: 'noperiod', status: 'active', intent: 'plan', subject: { reference: 'Patient/pat' } }
  );
  await h.matrix(t, 'CarePlan', [
    [{ date: '2024-01' }, ['jan']],
    [{ date: '2024' }, ['jan', 'feb']],
    [{ date: '2024-01-20' }, []],
    [{ date: 'ne2024-01' }, ['from15', 'until2023', 'feb']],
    [{ date: 'ge2024-02-01' }, ['from15', 'feb']],
    [{ date: 'gt2030-01-01' }, ['from15']],
    [{ date: 'lt2024-01-10' }, ['jan', 'until2023']],
    [{ date: 'lt1900-01-01' }, ['until2023']],
    [{ date: 'le2024-01-31' }, ['jan', 'from15', 'until2023']],
    [{ date: 'le2024-02-01' }, ['jan', 'from15', 'until2023']], // feb starts at 07:00Z on that day: not below it, not within it
    [{ date: 'le2024-02-02' }, ['jan', 'from15', 'until2023', 'feb']],
    [{ date: 'sa2023-12-31' }, ['jan', 'from15', 'feb']],
    [{ date: 'eb2024-01-15' }, ['until2023']],
    [{ date: 'eb2024-03-01' }, ['jan', 'until2023', 'feb']],
    [{ date: ['ge2024-01-10', 'le2024-01-20'] }, ['jan', 'from15']],
    [{ 'date:missing': 'true' }, ['noperiod']],
  ]);
  await h.put(
    { resourceType: 'CareTeam', id: 'ct-open', status: 'active', period: { start: '2023-06-01' } },
    { resourceType: 'CareTeam', id: 'ct-closed', status: 'inactive', period: { start: '2022-01-01', end: '2022-12-31' } }
  );
  await h.matrix(t, 'CareTeam', [
    [{ date: '2022' }, ['ct-closed']],
    [{ date: 'ge2025-01-01' }, ['ct-open']],
    [{ date: 'le2023-01-01' }, ['ct-closed']],
    [{ date: 'sa2023-01-01' }, ['ct-open']],
  ]);
});

t.test('_lastUpdated with gt, lt, ge, le and equality on the instant', async (t) => {
  const h = await harness(t);
  const [a] = await h.put({ resourceType: 'Patient', id: 'first' });
  await sleep(15);
  const [b] = await h.put({ resourceType: 'Patient', id: 'second' });
  await sleep(15);
  const [c] = await h.put({ resourceType: 'Patient', id: 'third' });
  const A = a.meta.lastUpdated;
  const B = b.meta.lastUpdated;
  const C = c.meta.lastUpdated;
  t.ok(A < B && B < C, 'three distinct lastUpdated instants');
  await h.matrix(t, 'Patient', [
    [{ _lastUpdated: `gt${A}` }, ['second', 'third']],
    [{ _lastUpdated: `ge${B}` }, ['second', 'third']],
    [{ _lastUpdated: `lt${B}` }, ['first']],
    [{ _lastUpdated: `le${B}` }, ['first', 'second']],
    [{ _lastUpdated: B }, ['second']],
    [{ _lastUpdated: `ne${B}` }, ['first', 'third']],
    [{ _lastUpdated: [`gt${A}`, `lt${C}`] }, ['second']],
    [{ _lastUpdated: `lt${A.slice(0, 4)}` }, []],
    [{ _lastUpdated: `sa${A}` }, ['second', 'third']],
  ]);
});

// ---------------------------------------------------------------- number and quantity

t.test('number: prefixes and the precision of the search value (RiskAssessment.probability)', async (t) => {
  const h = await harness(t);
  await h.put({ resourceType: 'Patient', id: 'pat' });
  const values: Record<string, number> = { r494: 49.4, r495: 49.5, r50: 50, r505: 50.5, r42: 42, r105: 1.05, r115: 1.15 };
  for (const [id, probabilityDecimal] of Object.entries(values)) {
    await h.put({ resourceType: 'RiskAssessment', id, status: 'final', subject: { reference: 'Patient/pat' }, prediction: [{ probabilityDecimal }] });
  }
  await h.put({ resourceType: 'RiskAssessment', id: 'none', status: 'final', subject: { reference: 'Patient/pat' } });
  await h.matrix(t, 'RiskAssessment', [
    // 50 stands for [49.5, 50.5)
    [{ probability: '50' }, ['r495', 'r50']],
    [{ probability: 'eq50' }, ['r495', 'r50']],
    [{ probability: '50.0' }, ['r50']],
    [{ probability: '50.00' }, ['r50']],
    [{ probability: '49.5' }, ['r495']],
    // decimal arithmetic, not binary floating point: 1.1 is [1.05, 1.15)
    [{ probability: '1.1' }, ['r105']],
    [{ probability: '1.15' }, ['r115']],
    [{ probability: 'ne50' }, ['r494', 'r505', 'r42', 'r105', 'r115']],
    [{ probability: 'gt49.5' }, ['r50', 'r505']],
    [{ probability: 'ge49.5' }, ['r495', 'r50', 'r505']],
    [{ probability: 'lt49.5' }, ['r494', 'r42', 'r105', 'r115']],
    [{ probability: 'le42' }, ['r42', 'r105', 'r115']],
    [{ probability: 'ap50' }, ['r494', 'r495', 'r50', 'r505']],
    [{ probability: 'ap42' }, ['r42']],
    [{ probability: 'ap1' }, ['r105', 'r115']],
    [{ probability: ['gt1.1', 'lt49.5'] }, ['r494', 'r42', 'r115']],
    [{ probability: '42,1.05' }, ['r42', 'r105']],
    [{ 'probability:missing': 'true' }, ['none']],
  ]);
});

t.test('quantity: value|system|code, ||unit, prefixes and precision (Observation value-quantity)', async (t) => {
  const h = await harness(t);
  const obs = (id: string, valueQuantity: Record<string, unknown>): Resource => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code: '2345-7' }] }, valueQuantity,
  });
  await h.put(
    obs('mg', { value: 5.4, unit: 'milligram', system: UCUM, code: 'mg' }),
    obs('g', { value: 5.4, unit: 'g', system: UCUM, code: 'g' }),
    obs('mmhg', { value: 100, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' }),
    obs('free', { value: 5.44, unit: 'mg' }),
    obs('big', { value: 120, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' }),
    { resourceType: 'Observation', id: 'novalue', status: 'final', code: { text: 'x' } }
  );
  await h.matrix(t, 'Observation', [
    [{ 'value-quantity': `5.4|${UCUM}|mg` }, ['mg']],
    [{ 'value-quantity': '5.4' }, ['mg', 'g', 'free']],
    [{ 'value-quantity': '5.40' }, ['mg', 'g']],
    // ||code matches the code or the unit as written
    [{ 'value-quantity': '5.4||mg' }, ['mg', 'free']],
    [{ 'value-quantity': '5.4||milligram' }, ['mg']],
    [{ 'value-quantity': `5.4|${UCUM}|milligram` }, []],
    [{ 'value-quantity': `gt5|${UCUM}|mg` }, ['g', 'mg']], // UCUM units convert: 5.4 g > 5 mg (search-features.test.ts)
    [{ 'value-quantity': 'lt10' }, ['mg', 'g', 'free']],
    [{ 'value-quantity': `100|${UCUM}|mm[Hg]` }, ['mmhg']],
    [{ 'value-quantity': `ge100|${UCUM}|mm[Hg]` }, ['mmhg', 'big']],
    [{ 'value-quantity': `ap110|${UCUM}|mm[Hg]` }, ['mmhg', 'big']],
    [{ 'value-quantity': `ne100|${UCUM}|mm[Hg]` }, ['big']],
    [{ 'value-quantity': `${'5.4'}|${UCUM}|g,120` }, ['g', 'big']],
    [{ 'value-quantity:missing': 'true' }, ['novalue']],
  ]);
});

// ---------------------------------------------------------------- reference

t.test('reference: Type/id, id, :Type, :identifier, absolute URLs, chains, _has', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Organization', id: 'clinic', name: 'Clinique du Parc', identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.2', value: '1420000012' }] },
    { resourceType: 'Organization', id: 'hosp', name: 'Hôpital Nord' },
    {
      resourceType: 'Patient', id: 'pa', name: [{ family: 'Lefèvre', given: ['Hélène'] }],
      identifier: [{ system: INS, value: '285017512345612' }], managingOrganization: { reference: 'Organization/clinic' },
    },
    {
      resourceType: 'Patient', id: 'pb', name: [{ family: 'Martin' }],
      identifier: [{ system: INS, value: '185017512345699' }], managingOrganization: { reference: 'Organization/hosp' },
    },
    { resourceType: 'Patient', id: 'shared', name: [{ family: 'Shared' }] },
    { resourceType: 'Group', id: 'shared', type: 'person', actual: true },
    { resourceType: 'Practitioner', id: 'dr', name: [{ family: 'House' }] }
  );
  const obs = (id: string, extra: Record<string, unknown>, code = '8867-4'): Resource => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code }] }, ...extra,
  });
  await h.put(
    obs('o-pa', { subject: { reference: 'Patient/pa' } }),
    obs('o-pa-dr', { subject: { reference: 'Patient/pa' }, performer: [{ reference: 'Practitioner/dr' }] }, '85354-9'),
    obs('o-pb', { subject: { reference: 'Patient/pb' } }, '2345-7'),
    obs('o-abs', { subject: { reference: 'http://other.example.org/fhir/Patient/pa' } }),
    obs('o-ident', { subject: { identifier: { system: INS, value: '285017512345612' } } }),
    obs('o-shared-p', { subject: { reference: 'Patient/shared' } }),
    obs('o-shared-g', { subject: { reference: 'Group/shared' } }),
    obs('o-none', {})
  );
  await h.matrix(t, 'Observation', [
    [{ subject: 'Patient/pa' }, ['o-pa', 'o-pa-dr']],
    [{ subject: 'pa' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject:Patient': 'pa' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject:Group': 'pa' }, []],
    [{ 'subject:Patient': 'Patient/pa' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject:Group': 'Patient/pa' }, []],
    [{ patient: 'pa' }, ['o-pa', 'o-pa-dr']],
    [{ subject: 'shared' }, ['o-shared-p', 'o-shared-g']],
    [{ 'subject:Patient': 'shared' }, ['o-shared-p']],
    [{ subject: 'Group/shared' }, ['o-shared-g']],
    [{ subject: 'Patient/pa,Patient/pb' }, ['o-pa', 'o-pa-dr', 'o-pb']],
    [{ subject: 'Patient/pa/_history/1' }, ['o-pa', 'o-pa-dr']],
    // an absolute URL to another server is not the local Patient/pa, and vice versa
    [{ subject: 'http://other.example.org/fhir/Patient/pa' }, ['o-abs']],
    [{ 'subject:identifier': `${INS}|285017512345612` }, ['o-ident']],
    [{ 'subject:identifier': `${INS}|` }, ['o-ident']],
    [{ performer: 'Practitioner/dr' }, ['o-pa-dr']],
    [{ 'performer:missing': 'false' }, ['o-pa-dr']],
    [{ 'subject:missing': 'false' }, ['o-pa', 'o-pa-dr', 'o-pb', 'o-abs', 'o-ident', 'o-shared-p', 'o-shared-g']],
    [{ 'subject:missing': 'true' }, ['o-none']],
    // chains
    [{ 'subject:Patient.name': 'lefevre' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject.name': 'shared' }, ['o-shared-p']],
    [{ 'patient.identifier': `${INS}|185017512345699` }, ['o-pb']],
    [{ 'subject:Patient.organization.name': 'clinique' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject:Patient.organization.identifier': 'urn:oid:1.2.250.1.71.4.2.2|1420000012' }, ['o-pa', 'o-pa-dr']],
    [{ 'subject:Patient.organization': 'Organization/hosp' }, ['o-pb']],
    [{ 'subject:Patient._id': 'pb' }, ['o-pb']],
    [{ 'subject:Patient.name': 'martin,lefevre', code: '8867-4' }, ['o-pa']],
  ]);
  await h.put(
    { resourceType: 'CareTeam', id: 'team-pa', subject: { reference: 'Patient/pa' }, participant: [{ member: { reference: 'Practitioner/dr' } }] },
    { resourceType: 'CareTeam', id: 'team-pb', subject: { reference: 'Patient/pb' } }
  );
  await h.matrix(t, 'CareTeam', [
    [{ 'subject.identifier': `${INS}|285017512345612` }, ['team-pa']],
    [{ 'patient.name': 'martin' }, ['team-pb']],
    [{ 'participant.name': 'house' }, ['team-pa']],
  ]);
  await h.matrix(t, 'Patient', [
    [{ '_has:Observation:patient:code': '8867-4' }, ['pa', 'shared']],
    [{ '_has:Observation:patient:code': '85354-9' }, ['pa']],
    [{ '_has:Observation:subject:code': `${LOINC}|2345-7` }, ['pb']],
    [{ '_has:Observation:patient:code': '2345-7,85354-9' }, ['pa', 'pb']],
    [{ '_has:Observation:patient:performer': 'Practitioner/dr' }, ['pa']],
    [{ '_has:CareTeam:patient:participant': 'Practitioner/dr' }, ['pa']],
    [{ '_has:Observation:patient:code': 'nothing' }, []],
  ]);
  // nested _has: the organizations managing a patient who has a heart-rate observation
  await h.matrix(t, 'Organization', [
    [{ '_has:Patient:organization:_has:Observation:patient:code': '8867-4' }, ['clinic']],
    [{ '_has:Patient:organization:_has:Observation:patient:code': '2345-7' }, ['hosp']],
    [{ '_has:Patient:organization:name': 'martin' }, ['hosp']],
  ]);
});

// ---------------------------------------------------------------- uri

t.test('uri: exact, :below, :above (ValueSet.url)', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'ValueSet', id: 'vs123', status: 'active', url: 'http://acme.org/fhir/ValueSet/123' },
    { resourceType: 'ValueSet', id: 'vs124', status: 'active', url: 'http://acme.org/fhir/ValueSet/124' },
    { resourceType: 'ValueSet', id: 'vsroot', status: 'active', url: 'http://acme.org/fhir' },
    { resourceType: 'ValueSet', id: 'other', status: 'draft', url: 'urn:oid:1.2.250.1.213.1.1.5.1' },
    { resourceType: 'ValueSet', id: 'nourl', status: 'draft' }
  );
  await h.matrix(t, 'ValueSet', [
    [{ url: 'http://acme.org/fhir/ValueSet/123' }, ['vs123']],
    [{ url: 'http://acme.org/fhir/ValueSet/12' }, []],
    [{ url: 'HTTP://ACME.ORG/fhir/ValueSet/123' }, []],
    [{ url: 'urn:oid:1.2.250.1.213.1.1.5.1' }, ['other']],
    [{ 'url:below': 'http://acme.org/fhir/ValueSet' }, ['vs123', 'vs124']],
    [{ 'url:below': 'http://acme.org/fhir' }, ['vs123', 'vs124', 'vsroot']],
    [{ 'url:above': 'http://acme.org/fhir/ValueSet/123/_history/5' }, ['vs123', 'vsroot']],
    [{ 'url:above': 'http://acme.org/fhir/ValueSet/125' }, ['vsroot']],
    [{ url: 'http://acme.org/fhir/ValueSet/123,http://acme.org/fhir/ValueSet/124' }, ['vs123', 'vs124']],
    [{ 'url:missing': 'true' }, ['nourl']],
  ]);
});

// ---------------------------------------------------------------- escaping

t.test('escaping \\, \\| \\$ \\\\ in search values', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Patient', id: 'comma', name: [{ family: 'Smith,Jr' }], identifier: [{ system: 'urn:x', value: 'a|b' }] },
    { resourceType: 'Patient', id: 'smith', name: [{ family: 'Smith' }], identifier: [{ system: 'urn:x', value: 'a' }] },
    { resourceType: 'Patient', id: 'jr', name: [{ family: 'Jr' }], identifier: [{ system: 'urn:x', value: 'cost$5' }] },
    { resourceType: 'Patient', id: 'slash', name: [{ family: 'back\\slash' }], identifier: [{ system: 'urn:x', value: 'x\\y,z' }] },
    { resourceType: 'Patient', id: 'percent', name: [{ family: '100%_sûr' }] },
    { resourceType: 'Patient', id: 'plain', name: [{ family: '100abcsur' }] }
  );
  await h.matrix(t, 'Patient', [
    [{ family: 'Smith\\,Jr' }, ['comma']],
    [{ family: 'Smith,Jr' }, ['comma', 'smith', 'jr']],
    [{ 'family:exact': 'Smith\\,Jr' }, ['comma']],
    [{ 'family:exact': 'Smith\\,Jr,Jr' }, ['comma', 'jr']],
    [{ family: 'back\\\\slash' }, ['slash']],
    [{ family: 'back\\\\' }, ['slash']],
    [{ identifier: 'urn:x|a\\|b' }, ['comma']],
    [{ identifier: 'a\\|b' }, ['comma']],
    [{ identifier: 'urn:x|a' }, ['smith']],
    [{ identifier: 'urn:x|cost\\$5' }, ['jr']],
    [{ identifier: 'urn:x|x\\\\y\\,z' }, ['slash']],
    [{ identifier: 'urn:x|x\\\\y\\,z,urn:x|a' }, ['slash', 'smith']],
    // LIKE wildcards in values are plain characters
    [{ family: '100%' }, ['percent']],
    [{ family: '100%_s' }, ['percent']],
    [{ family: '100_' }, []],
    [{ 'family:contains': '%_SUR' }, ['percent']],
    [{ 'family:contains': 'c_u' }, []],
    [{ family: '100' }, ['percent', 'plain']],
  ]);
});

// A prefix is read as the index range [prefix, prefix with its last character's successor)
// (sql.ts prefixSql): the bound must hold at its edges, in code point order.
t.test('string and uri prefixes as index ranges: the upper bound at its edges', async (t) => {
  const h = await harness(t);
  const families: Record<string, string> = {
    ab: 'ab', abz: 'abz', abzz: 'abzz', brace: 'ab{', ac: 'ac', aaTilde: 'aa~',
    astral: '\u{1D49C}lpha', astralNext: '\u{1D49D}eta', // mathematical script A and B: one code point, two UTF-16 units
    beforeSurrogates: 'x\uD7FFa', afterSurrogates: 'x\uE000a',
    lastCodePoint: 'q\u{10FFFF}z',
  };
  await h.put(...Object.entries(families).map(([id, family]) => ({ resourceType: 'Patient', id: id.toLowerCase(), name: [{ family }] }) as Resource));
  await h.put(
    { resourceType: 'ValueSet', id: 'vsz', status: 'active', url: 'http://acme.org/z' },
    { resourceType: 'ValueSet', id: 'vsbrace', status: 'active', url: 'http://acme.org/{' },
  );
  await h.matrix(t, 'Patient', [
    [{ family: 'ab' }, ['ab', 'abz', 'abzz', 'brace']],
    [{ family: 'abz' }, ['abz', 'abzz']],
    [{ family: 'a' }, ['ab', 'abz', 'abzz', 'brace', 'ac', 'aatilde']],
    [{ family: 'aa~' }, ['aatilde']],
    [{ family: '\u{1D49C}' }, ['astral']],
    [{ family: '\u{1D49D}e' }, ['astralnext']],
    [{ family: 'x\uD7FF' }, ['beforesurrogates']],
    [{ family: 'x\uE000' }, ['aftersurrogates']],
    [{ family: 'q\u{10FFFF}' }, ['lastcodepoint']], // no successor: the pattern itself
    [{ family: 'q\u{10FFFF}z' }, ['lastcodepoint']],
  ]);
  await h.matrix(t, 'ValueSet', [
    [{ 'url:below': 'http://acme.org/z' }, ['vsz']],
    [{ 'url:below': 'http://acme.org/' }, ['vsbrace', 'vsz']],
  ]);
});

// ---------------------------------------------------------------- _id, _sort

t.test('_id with several ids, and _sort on string, date, _lastUpdated and several keys', async (t) => {
  const h = await harness(t);
  const people: [string, string, string | undefined][] = [
    ['s1', 'Martin', '1980-05-01'],
    ['s2', 'Élise', '1975-01-01'],
    ['s3', 'dupont', '1990-12-31'],
    ['s4', 'Martin', '1960-02-02'],
    ['s5', 'Zola', undefined],
  ];
  for (const [id, family, birthDate] of people) {
    await h.put({ resourceType: 'Patient', id, name: [{ family }], ...(birthDate ? { birthDate } : {}) });
    await sleep(5);
  }
  await h.put({ resourceType: 'Patient', id: 's6' }); // neither name nor birth date
  const order = async (params: Params) => ((await h.search('Patient', params)).entry ?? []).map((e: any) => e.resource.id);
  t.strictSame(await h.find('Patient', { _id: 's1,s3,nope' }), ['s1', 's3'], '_id=s1,s3,nope');
  t.strictSame(await h.find('Patient', { _id: 's2', family: 'elise' }), ['s2'], '_id combined with another parameter');
  t.strictSame(await h.find('Patient', { _id: 's2', family: 'martin' }), [], '_id AND family, no overlap');
  t.strictSame(await order({ _sort: 'family' }), ['s3', 's2', 's1', 's4', 's5', 's6'], 'family ascending, folded; no value last');
  t.strictSame(await order({ _sort: '-family' }), ['s5', 's1', 's4', 's2', 's3', 's6'], 'family descending; no value last');
  t.strictSame(await order({ _sort: 'birthdate' }), ['s4', 's2', 's1', 's3', 's5', 's6'], 'birthdate ascending');
  t.strictSame(await order({ _sort: '-birthdate' }), ['s3', 's1', 's2', 's4', 's5', 's6'], 'birthdate descending');
  t.strictSame(await order({ _sort: 'family,-birthdate' }), ['s3', 's2', 's1', 's4', 's5', 's6'], 'family, then birthdate descending');
  t.strictSame(await order({ _sort: 'family,birthdate' }), ['s3', 's2', 's4', 's1', 's5', 's6'], 'family, then birthdate');
  t.strictSame(await order({ _sort: '_lastUpdated' }), ['s1', 's2', 's3', 's4', 's5', 's6'], '_lastUpdated ascending');
  t.strictSame(await order({ _sort: '-_lastUpdated' }), ['s6', 's5', 's4', 's3', 's2', 's1'], '_lastUpdated descending');
  t.strictSame(await order({ _sort: '-_id' }), ['s6', 's5', 's4', 's3', 's2', 's1'], '_id descending');
  t.strictSame(await order({ _sort: 'family', family: 'martin,zola' }), ['s1', 's4', 's5'], 'sorting a filtered set');
});

// ---------------------------------------------------------------- paging, _total, _summary=count

t.test('_count and paging: next to the end, previous back, _total, _summary=count', async (t) => {
  const h = await harness(t);
  const all: string[] = [];
  for (let i = 0; i < 11; i++) {
    const id = `pg${String(i).padStart(2, '0')}`;
    all.push(id);
    await h.put({ resourceType: 'Patient', id, name: [{ family: `Page${String(10 - i).padStart(2, '0')}` }] });
  }
  await h.put({ resourceType: 'Practitioner', id: 'not-a-patient', name: [{ family: 'Page' }] });

  for (const sort of [undefined, 'family', '-_lastUpdated']) {
    const params: Params = { _count: '4', family: 'page' };
    if (sort) params._sort = sort;
    let bundle: any = await h.search('Patient', params);
    const pages: string[][] = [];
    const seen: string[] = [];
    for (;;) {
      t.equal(bundle.total, 11, `total on every page (sort ${sort})`);
      const page = (bundle.entry ?? []).map((e: any) => e.resource.id);
      pages.push(page);
      seen.push(...page);
      if (!bundle.link.find((l: any) => l.relation === 'next')) break;
      bundle = await h.client.nextPage({ bundle });
    }
    t.strictSame(pages.map((p) => p.length), [4, 4, 3], `pages of 4, 4, 3 (sort ${sort})`);
    t.strictSame([...seen].sort(), all, `every match exactly once across the pages (sort ${sort})`);
    if (sort === 'family') t.strictSame(seen, [...all].reverse(), 'pages follow the sort order');
    const prev: any = await h.client.prevPage({ bundle });
    t.strictSame(prev.entry.map((e: any) => e.resource.id), pages[1], `previous of the last page is the middle page (sort ${sort})`);
    const first: any = await h.client.prevPage({ bundle: prev });
    t.strictSame(first.entry.map((e: any) => e.resource.id), pages[0], 'previous again is the first page');
    t.notOk(first.link.find((l: any) => l.relation === 'previous'), 'the first page has no previous link');
  }

  const none: any = await h.search('Patient', { _count: '4', _total: 'none' });
  t.equal(none.total, undefined, '_total=none: no total');
  t.equal(none.entry.length, 4);
  const accurate: any = await h.search('Patient', { _count: '4', _total: 'accurate' });
  t.equal(accurate.total, 11, '_total=accurate');
  const small: any = await h.search('Patient', { _id: 'pg01,pg02' });
  t.equal(small.total, 2, 'total on a single page');
  const empty: any = await h.search('Patient', { family: 'nobody' });
  t.equal(empty.total, 0, 'total 0');
  t.equal(empty.entry, undefined, 'no entry array when nothing matches');

  const count: any = await h.search('Patient', { _summary: 'count', family: 'page' });
  t.equal(count.total, 11, '_summary=count: the total');
  t.equal(count.entry, undefined, '_summary=count: no entries');
  const count0: any = await h.search('Patient', { _count: '0' });
  t.equal(count0.total, 11, '_count=0: the total only');
  t.equal(count0.entry, undefined, '_count=0: no entries');
});

t.test('Bundle.total: counted up to SEARCH_TOTAL_LIMIT unless _total asks otherwise', async (t) => {
  const s = await startServer(t, { SEARCH_TOTAL_LIMIT: '5' });
  const client = new Client({ baseUrl: s.url });
  for (let i = 0; i < 8; i++) await client.update({ resourceType: 'Patient', id: `tl${i}`, body: { resourceType: 'Patient', id: `tl${i}`, name: [{ family: i < 3 ? 'Few' : 'Many' }] } as any });
  const search = (p: Params): Promise<any> => client.search({ resourceType: 'Patient', searchParams: p });
  t.equal((await search({ _count: '2' })).total, undefined, 'over the limit: no total');
  t.equal((await search({ _count: '2' })).entry.length, 2, 'but the page is there');
  t.equal((await search({ _count: '2', family: 'few' })).total, 3, 'under the limit: the exact total, even across pages');
  t.equal((await search({ _count: '2', _total: 'accurate' })).total, 8, '_total=accurate counts everything');
  const estimate = (await search({ _count: '2', _total: 'estimate' })).total;
  t.ok(typeof estimate === 'number' && estimate > 5, `_total=estimate gives a number beyond the limit (${estimate})`);
  t.equal((await search({ _summary: 'count' })).total, 8, '_summary=count is exact');
  t.equal((await search({ _count: '20' })).total, 8, 'a single page holding every match has its total');
});

t.test('_sort on a multi-valued parameter: each resource once, at its smallest (asc) or largest (desc) value, across pages', async (t) => {
  const h = await harness(t);
  const obs = (id: string, codes: string[]) => ({
    resourceType: 'Observation', id, status: 'final',
    code: { coding: codes.map((c) => ({ system: 'http://example.org/mv', code: c })), text: 'mv' },
  });
  await h.put(obs('o1', ['b']), obs('o2', ['a', 'z']), obs('o3', ['c']), { resourceType: 'Observation', id: 'o4', status: 'final', code: { text: 'mv' } });
  const walk = async (sort: string): Promise<{ forward: string[]; backward: string[] }> => {
    let bundle: any = await h.search('Observation', { 'code:text': 'mv', _sort: sort, _count: '1' });
    const forward: string[] = bundle.entry.map((e: any) => e.resource.id);
    while (bundle.link.find((l: any) => l.relation === 'next')) {
      bundle = await h.client.nextPage({ bundle });
      forward.push(...(bundle.entry ?? []).map((e: any) => e.resource.id));
    }
    const backward: string[] = [];
    while (bundle.link.find((l: any) => l.relation === 'previous')) {
      bundle = await h.client.prevPage({ bundle });
      backward.unshift(...bundle.entry.map((e: any) => e.resource.id));
    }
    return { forward, backward };
  };
  const asc = await walk('code');
  t.strictSame(asc.forward, ['o2', 'o1', 'o3', 'o4'], 'ascending by the smallest code (a, b, c), no code last');
  t.strictSame(asc.backward, ['o2', 'o1', 'o3'], 'and back, page by page, from the last page');
  const desc = await walk('-code');
  t.strictSame(desc.forward, ['o2', 'o3', 'o1', 'o4'], 'descending by the largest code (z, c, b), no code last');
  t.strictSame(desc.backward, ['o2', 'o3', 'o1'], 'and back');
  const all = await h.find('Observation', { 'code:text': 'mv', _sort: '-code', _count: '10' });
  t.strictSame(all, ['o1', 'o2', 'o3', 'o4'], 'one page holds each resource once');
});

t.test('_sort by date when the matches are rare at the start of the index (the budgeted walk falls back)', async (t) => {
  // Few matches (up to SEARCH_TOTAL_LIMIT) are sorted directly; a limit of 3 makes these 5 "many",
  // so the page is first looked for along the date index.
  const h = await harness(t, { SEARCH_TOTAL_LIMIT: '3' });
  // 1,100 past observations come first in date order; the 5 that match come after all of them.
  const entry = (id: string, code: string, date: string) => ({
    resource: { resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: 'http://example.org/b', code }] }, effectiveDateTime: date },
    request: { method: 'PUT', url: `Observation/${id}` },
  });
  const entries = [];
  for (let i = 0; i < 1100; i++) entries.push(entry(`old${i}`, 'old', new Date(Date.UTC(2020, 0, 1) + i * 3600_000).toISOString()));
  for (let i = 0; i < 5; i++) entries.push(entry(`new${i}`, 'new', `2030-01-0${5 - i}T10:00:00Z`));
  const tx = await http('POST', h.s.url, { resourceType: 'Bundle', type: 'transaction', entry: entries });
  t.equal(tx.status, 200, 'loaded');
  let bundle: any = await h.search('Observation', { code: 'http://example.org/b|new', _sort: 'date', _count: '2' });
  const seen: string[] = bundle.entry.map((e: any) => e.resource.id);
  while (bundle.link.find((l: any) => l.relation === 'next')) {
    bundle = await h.client.nextPage({ bundle });
    seen.push(...(bundle.entry ?? []).map((e: any) => e.resource.id));
  }
  t.strictSame(seen, ['new4', 'new3', 'new2', 'new1', 'new0'], 'the matches in date order, each once');
  const desc = await h.search('Observation', { code: 'http://example.org/b|new', _sort: '-date', _count: '3' });
  t.strictSame(desc.entry.map((e: any) => e.resource.id), ['new0', 'new1', 'new2'], 'descending');
  const olds = await h.search('Observation', { code: 'http://example.org/b|old', _sort: '-date', _count: '2' });
  t.strictSame(olds.entry.map((e: any) => e.resource.id), ['old1099', 'old1098'], 'dense matches: the latest first');
});

t.test('searchsets splice the stored JSON: odd client strings echoed in the outcome stay plain text', async (t) => {
  const h = await harness(t);
  await h.put({ resourceType: 'Patient', id: 'sp1', name: [{ family: 'Splice' }] });
  const res = await http('GET', `${h.s.url}/Patient?family=splice&%00abc%3A0=1&_include=Patient:organization`);
  t.equal(res.status, 200);
  t.equal(res.body.entry[0].resource.id, 'sp1', 'the match, spliced in');
  t.strictSame(res.body.entry[0].resource.name, [{ family: 'Splice' }], 'exactly as stored');
  const outcome = res.body.entry.find((e: any) => e.search.mode === 'outcome');
  t.match(JSON.stringify(outcome.resource.issue[0].expression), /abc:0/, 'the unknown parameter is reported as it was written');
  const pretty = await http('GET', `${h.s.url}/Patient?family=splice&_pretty=true`);
  t.match(pretty.text, /\n  "resourceType": "Bundle"/, '_pretty still indents');
  t.equal(pretty.body.entry[0].resource.id, 'sp1');
});

t.test('paging is stable while data changes: keyset links, no skip, no repeat', async (t) => {
  const h = await harness(t);
  // birthDate is missing on some, so the sort walks through NULLs (they come last both ways).
  const born = ['1950-01-01', undefined, '1960-01-01', '1940-01-01', undefined, '1970-01-01', '1955-06-01', '1945-01-01', undefined, '1965-01-01'];
  for (let i = 0; i < born.length; i++) {
    await h.put({ resourceType: 'Patient', id: `st${i}`, name: [{ family: 'Stable' }], ...(born[i] ? { birthDate: born[i] } : {}) });
  }
  for (const sort of ['birthdate', '-birthdate', '_lastUpdated', undefined]) {
    const params: Params = { family: 'stable', _count: '3' };
    if (sort) params._sort = sort;
    const expected = (await h.search('Patient', { ...params, _count: '100' })).entry.map((e: any) => e.resource.id);
    let bundle: any = await h.search('Patient', params);
    const seen: string[] = bundle.entry.map((e: any) => e.resource.id);
    t.strictSame(seen, expected.slice(0, 3), `first page in order (sort ${sort})`);
    // Between pages: a new match and a deletion of an already-seen match. Neither shifts what comes next.
    await h.put({ resourceType: 'Patient', id: `new-${(sort ?? 'none').replace(/_/g, '')}`, name: [{ family: 'Stable' }], birthDate: '1900-01-01' });
    await h.client.delete({ resourceType: 'Patient', id: seen[0] });
    while (bundle.link.find((l: any) => l.relation === 'next')) {
      bundle = await h.client.nextPage({ bundle });
      seen.push(...(bundle.entry ?? []).map((e: any) => e.resource.id));
    }
    const expectedRest = expected.slice(3);
    const rest = seen.slice(3).filter((id) => !id.startsWith('new-'));
    t.strictSame(rest, expectedRest, `every remaining match once, in order, despite the insert and delete (sort ${sort})`);
    // Walking back from the last page, then, covers exactly the current matches, in order.
    const lastPage: string[] = (bundle.entry ?? []).map((e: any) => e.resource.id);
    const back: string[] = [];
    while (bundle.link.find((l: any) => l.relation === 'previous')) {
      bundle = await h.client.prevPage({ bundle });
      back.unshift(...bundle.entry.map((e: any) => e.resource.id));
    }
    const now = (await h.search('Patient', { ...params, _count: '100' })).entry.map((e: any) => e.resource.id);
    t.strictSame([...back, ...lastPage], now, `previous links lead back through the current matches (sort ${sort})`);
    await h.put({ resourceType: 'Patient', id: seen[0], name: [{ family: 'Stable' }], ...(born[Number(seen[0].slice(2))] ? { birthDate: born[Number(seen[0].slice(2))] } : {}) });
    await h.client.delete({ resourceType: 'Patient', id: `new-${(sort ?? 'none').replace(/_/g, '')}` });
  }

  // Without criteria or _sort, pages follow the internal order just as well.
  let plain: any = await h.search('Patient', { _count: '4' });
  const everyone: string[] = plain.entry.map((e: any) => e.resource.id);
  while (plain.link.find((l: any) => l.relation === 'next')) {
    plain = await h.client.nextPage({ bundle: plain });
    everyone.push(...(plain.entry ?? []).map((e: any) => e.resource.id));
  }
  t.strictSame([...everyone].sort(), (await h.find('Patient', { _count: '100' })), 'no criteria: every patient once across the pages');

  // An empty last page (everything after the cursor deleted) still leads back.
  const p1: any = await h.search('Patient', { family: 'stable', _count: '9', _sort: '_id' });
  t.equal(p1.entry.length, 9);
  await h.client.delete({ resourceType: 'Patient', id: 'st9' });
  const empty: any = await h.client.nextPage({ bundle: p1 });
  t.equal(empty.entry, undefined, 'the next page is empty once its only match is deleted');
  t.notOk(empty.link.find((l: any) => l.relation === 'next'), 'no next link from an empty page');
  const backAgain: any = await h.client.prevPage({ bundle: empty });
  t.strictSame(backAgain.entry.map((e: any) => e.resource.id), p1.entry.map((e: any) => e.resource.id), 'previous of the empty page is the first page again');

  // Tokens are checked.
  const next = new URL(p1.link.find((l: any) => l.relation === 'next').url);
  const token = next.searchParams.get('_page')!;
  t.equal((await http('GET', `${h.s.url}/Patient?family=stable&_sort=_id&_page=garbage`)).status, 400, 'a malformed _page is a 400');
  const otherSort = await http('GET', `${h.s.url}/Patient?family=stable&_sort=birthdate&_page=${token}`);
  t.equal(otherSort.status, 400, '_page under another _sort is a 400');
  t.match(JSON.stringify(otherSort.body.issue), /another _sort/, "and says why");
  t.equal((await http('GET', `${h.s.url}/Patient?family=stable&_sort=_id&_page=${token}&_offset=2`)).status, 400, '_page with _offset is a 400');
  const offset: any = await h.search('Patient', { family: 'stable', _sort: '_id', _count: '3', _offset: '3' });
  t.strictSame(offset.entry.map((e: any) => e.resource.id), ['st3', 'st4', 'st5'], '_offset still selects a starting point');
  const fromOffset: any = await h.client.nextPage({ bundle: offset });
  t.strictSame(fromOffset.entry.map((e: any) => e.resource.id), ['st6', 'st7', 'st8'], 'and its next link continues after it');
});

// ---------------------------------------------------------------- _summary, _elements

t.test('_summary=true/text/data and _elements subset the resources and tag them SUBSETTED', async (t) => {
  const h = await harness(t);
  await h.put({
    resourceType: 'Patient', id: 'sum',
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Hélène Lefèvre</div>' },
    name: [{ family: 'Lefèvre' }], birthDate: '1950-03-04', gender: 'female',
    maritalStatus: { text: 'Mariée' }, deceasedBoolean: false, multipleBirthInteger: 2,
  });
  await h.put({
    resourceType: 'Observation', id: 'obs', status: 'final', code: { text: 'Poids' }, subject: { reference: 'Patient/sum' },
    effectiveDateTime: '2024-01-01T10:00:00Z', valueQuantity: { value: 70, unit: 'kg' }, note: [{ text: 'à jeun' }],
  });
  const get = async (params: Params) => (await h.search('Patient', { _id: 'sum', ...params })).entry[0].resource;
  const tagged = (r: any) => (r.meta?.tag ?? []).some((x: any) => x.code === SUBSETTED);

  const full = await get({});
  t.ok(full.text && full.maritalStatus && full.name, 'no _summary: the whole resource');
  t.notOk(tagged(full), 'the whole resource is not tagged');

  const sTrue = await get({ _summary: 'true' });
  t.strictSame(Object.keys(sTrue).sort(), ['birthDate', 'deceasedBoolean', 'gender', 'id', 'meta', 'name', 'resourceType'], '_summary=true keeps summary elements, choice elements included');
  t.ok(tagged(sTrue), '_summary=true is SUBSETTED');
  t.equal(sTrue.meta.versionId, '1', 'meta is kept');

  const sText = await get({ _summary: 'text' });
  t.strictSame(Object.keys(sText).sort(), ['id', 'meta', 'resourceType', 'text'], '_summary=text keeps text, id, meta');
  t.ok(tagged(sText));

  const sData = await get({ _summary: 'data' });
  t.strictSame(
    Object.keys(sData).sort(),
    ['birthDate', 'deceasedBoolean', 'gender', 'id', 'maritalStatus', 'meta', 'multipleBirthInteger', 'name', 'resourceType'],
    '_summary=data drops text only'
  );
  t.ok(tagged(sData));

  const sFalse = await get({ _summary: 'false' });
  t.ok(sFalse.text && sFalse.maritalStatus && !tagged(sFalse), '_summary=false: the whole resource');

  const el = await get({ _elements: 'birthDate,gender' });
  t.strictSame(Object.keys(el).sort(), ['birthDate', 'gender', 'id', 'meta', 'resourceType'], '_elements keeps the elements asked for');
  t.ok(tagged(el), '_elements is SUBSETTED');
  const elChoice = await get({ _elements: 'deceased,Patient.multipleBirth' });
  t.strictSame(Object.keys(elChoice).sort(), ['deceasedBoolean', 'id', 'meta', 'multipleBirthInteger', 'resourceType'], '_elements names a choice element without its type');

  const obs = async (params: Params) => (await h.search('Observation', { _id: 'obs', ...params })).entry[0].resource;
  t.strictSame(
    Object.keys(await obs({ _summary: 'true' })).sort(),
    ['code', 'effectiveDateTime', 'id', 'meta', 'resourceType', 'status', 'subject', 'valueQuantity'],
    'Observation _summary=true keeps effective[x] and value[x], drops note'
  );
  t.strictSame(Object.keys(await obs({ _summary: 'text' })).sort(), ['code', 'id', 'meta', 'resourceType', 'status'], '_summary=text keeps mandatory elements');
  t.strictSame(Object.keys(await obs({ _elements: 'value' })).sort(), ['code', 'id', 'meta', 'resourceType', 'status', 'valueQuantity'], '_elements=value, with mandatory elements');
  const read = await http('GET', `${h.s.url}/Observation/obs?_elements=value`);
  t.strictSame(Object.keys(read.body).sort(), ['code', 'id', 'meta', 'resourceType', 'status', 'valueQuantity'], 'read with _elements subsets the same way');
});

// ---------------------------------------------------------------- _include, _revinclude

t.test('_include (target type, *, :iterate) and _revinclude, with search.mode include', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Organization', id: 'org', name: 'Clinique' },
    { resourceType: 'Patient', id: 'pa', managingOrganization: { reference: 'Organization/org' } },
    { resourceType: 'Patient', id: 'pb' },
    { resourceType: 'Group', id: 'grp', type: 'person', actual: true },
    { resourceType: 'Practitioner', id: 'dr' }
  );
  const obs = (id: string, subject: string, extra: Record<string, unknown> = {}): Resource => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] }, subject: { reference: subject }, ...extra,
  });
  await h.put(
    obs('o1', 'Patient/pa', { performer: [{ reference: 'Practitioner/dr' }] }),
    obs('o2', 'Patient/pa'),
    obs('o3', 'Group/grp'),
    obs('o4', 'Patient/pb'),
    { resourceType: 'Provenance', id: 'prov', target: [{ reference: 'Observation/o1' }], recorded: '2024-01-01T00:00:00Z', agent: [{ who: { reference: 'Practitioner/dr' } }] }
  );
  const run = (type: string, params: Params) => h.search(type, params);

  let b = await run('Observation', { _id: 'o1,o2,o3', _include: 'Observation:subject' });
  t.strictSame(refsOf(b), ['Observation/o1', 'Observation/o2', 'Observation/o3'], 'matches');
  t.strictSame(refsOf(b, 'include'), ['Group/grp', 'Patient/pa'], '_include=Observation:subject, each target once');
  t.equal(b.total, 3, 'included resources are not counted in the total');

  b = await run('Observation', { _id: 'o1,o3', _include: 'Observation:subject:Patient' });
  t.strictSame(refsOf(b, 'include'), ['Patient/pa'], '_include with a target type');

  b = await run('Observation', { _id: 'o1', _include: 'Observation:*' });
  t.strictSame(refsOf(b, 'include'), ['Patient/pa', 'Practitioner/dr'], '_include=Observation:* follows every reference parameter');

  b = await run('Observation', { _id: 'o1', _include: ['Observation:subject', 'Observation:performer'] });
  t.strictSame(refsOf(b, 'include'), ['Patient/pa', 'Practitioner/dr'], 'two _include parameters');

  b = await run('Observation', { _id: 'o1', _include: 'Observation:subject', '_include:iterate': 'Patient:organization' });
  t.strictSame(refsOf(b, 'include'), ['Organization/org', 'Patient/pa'], '_include:iterate follows the included patients');
  t.equal(idsOf(b, 'outcome').length, 0, '_include:iterate is not an unknown parameter');

  b = await run('Observation', { _id: 'o1', _include: ['Observation:subject', 'Patient:organization'] });
  t.strictSame(refsOf(b, 'include'), ['Patient/pa'], 'without :iterate, Patient:organization applies to the matches only');

  b = await run('Patient', { _id: 'pa', _revinclude: 'Observation:subject' });
  t.strictSame(refsOf(b), ['Patient/pa']);
  t.strictSame(refsOf(b, 'include'), ['Observation/o1', 'Observation/o2'], '_revinclude=Observation:subject');

  b = await run('Patient', { _id: 'pa,pb', _revinclude: 'Observation:patient', '_revinclude:iterate': 'Provenance:target' });
  t.strictSame(refsOf(b, 'include'), ['Observation/o1', 'Observation/o2', 'Observation/o4', 'Provenance/prov'], '_revinclude:iterate');

  b = await run('Organization', { _id: 'org', _revinclude: 'Patient:organization', '_include:iterate': 'Patient:organization' });
  t.strictSame(refsOf(b, 'include'), ['Patient/pa'], 'a match is never repeated as an include');

  b = await run('Practitioner', { _id: 'dr', _revinclude: ['Observation:performer', 'Provenance:agent'] });
  t.strictSame(refsOf(b, 'include'), ['Observation/o1', 'Provenance/prov'], 'two _revinclude parameters');

  b = await run('Observation', { _id: 'o4', _include: 'Observation:performer' });
  t.strictSame(refsOf(b, 'include'), [], 'nothing to include');
  for (const e of (await run('Observation', { _id: 'o1,o2', _include: 'Observation:subject' })).entry) {
    t.equal(e.fullUrl, `${h.s.url}/${e.resource.resourceType}/${e.resource.id}`, `fullUrl of ${e.resource.id}`);
  }
});

// ---------------------------------------------------------------- GET vs POST, system, compartment

t.test('GET and POST _search agree; system search with _type; compartment search', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Patient', id: 'pa', name: [{ family: 'Lefèvre', given: ['Hélène'] }], birthDate: '1950-03-04', identifier: [{ system: 'urn:x', value: 'a,b' }] },
    { resourceType: 'Patient', id: 'pb', name: [{ family: 'Martin' }], birthDate: '1960-01-01' },
    { resourceType: 'Patient', id: 'pc', name: [{ family: 'Lefort' }], birthDate: '1970-01-01' },
    { resourceType: 'Practitioner', id: 'dr', name: [{ family: 'Lefebvre' }] },
    { resourceType: 'Observation', id: 'oa', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pa' } },
    { resourceType: 'Observation', id: 'oa2', status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] }, subject: { reference: 'Patient/pa' } },
    { resourceType: 'Observation', id: 'ob', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pb' } },
    { resourceType: 'Observation', id: 'operf', status: 'final', code: { text: 'x' }, performer: [{ reference: 'Patient/pa' }] }
  );
  const queries: Params[] = [
    { family: 'lef', birthdate: 'lt1965' },
    { family: 'martin,lefort', _sort: '-birthdate' },
    { identifier: 'urn:x|a\\,b' },
    { birthdate: ['ge1950', 'le1960-12-31'], _count: '1' },
    { given: 'hélène', _elements: 'name' },
  ];
  for (const q of queries) {
    const get: any = await h.client.search({ resourceType: 'Patient', searchParams: q });
    const post: any = await h.client.search({ resourceType: 'Patient', searchParams: q, options: { postSearch: true } as any });
    t.strictSame(post.entry, get.entry, `POST _search = GET for ${JSON.stringify(q)}`);
    t.equal(post.total, get.total);
    t.ok(get.entry?.length, 'non-trivial result');
  }
  // The paging links of a POST search lead through the same result set
  let page: any = await h.client.search({ resourceType: 'Patient', searchParams: { family: 'lef,martin', _count: '1', _sort: 'family' }, options: { postSearch: true } as any });
  const paged: string[] = [];
  for (;;) {
    paged.push(...page.entry.map((e: any) => e.resource.id));
    if (!page.link.find((l: any) => l.relation === 'next')) break;
    page = await h.client.nextPage({ bundle: page });
  }
  t.strictSame(paged, ['pa', 'pc', 'pb'], 'POST _search paging: every match once, in order');
  const utf8 = await http('POST', `${h.s.url}/Patient/_search`, new URLSearchParams({ given: 'HÉLÈNE' }).toString(), {
    'content-type': 'application/x-www-form-urlencoded; charset=UTF-8',
  });
  t.equal(utf8.status, 200);
  t.strictSame(idsOf(utf8.body), ['pa'], 'form body in UTF-8 with a charset parameter');
  // Raw form POST, with parameters split between the URL and the body
  const form = await http('POST', `${h.s.url}/Patient/_search?family=lef`, 'birthdate=lt1965&_sort=family', {
    'content-type': 'application/x-www-form-urlencoded',
  });
  t.equal(form.status, 200);
  t.strictSame(idsOf(form.body), ['pa'], 'URL and body parameters are combined');

  // system search
  t.strictSame(refsOf(await h.search(undefined, { _type: 'Patient,Practitioner', family: 'lef' })), ['Patient/pa', 'Patient/pc', 'Practitioner/dr'], '_type with a common parameter');
  t.strictSame(refsOf(await h.search(undefined, { _type: 'Practitioner,Patient', family: 'lef' })), ['Patient/pa', 'Patient/pc', 'Practitioner/dr'], 'the order of _type does not matter');
  t.strictSame(refsOf(await h.search(undefined, { _id: 'pa,oa,dr' })), ['Observation/oa', 'Patient/pa', 'Practitioner/dr'], 'system search on _id');
  t.strictSame(refsOf(await h.search(undefined, { _type: 'Observation', _id: 'pa,oa,dr' })), ['Observation/oa'], '_type restricts the types');
  const notCommon: any = await h.search(undefined, { _type: 'Patient,Observation', code: '8867-4' });
  t.strictSame(idsOf(notCommon, 'outcome').length, 1, 'a parameter not common to all _type types is reported');
  t.strictSame(
    refsOf(notCommon),
    ['Observation/oa', 'Observation/oa2', 'Observation/ob', 'Observation/operf', 'Patient/pa', 'Patient/pb', 'Patient/pc'],
    '...and ignored'
  );
  const strict = await http('GET', `${h.s.url}?_type=Patient,Observation&code=8867-4`, undefined, { prefer: 'handling=strict' });
  t.equal(strict.status, 400, '...or rejected with handling=strict');

  // parameters every resource has
  await h.put(
    { resourceType: 'Patient', id: 'tagged', meta: { tag: [{ system: 'urn:test:tags', code: 'vip' }], profile: ['http://example.org/StructureDefinition/my-patient'] } },
    { resourceType: 'Practitioner', id: 'tagged', meta: { tag: [{ system: 'urn:test:tags', code: 'vip' }] } },
    { resourceType: 'Organization', id: 'untagged', name: 'x', meta: { tag: [{ system: 'urn:test:tags', code: 'other' }] } }
  );
  t.strictSame(refsOf(await h.search(undefined, { _tag: 'urn:test:tags|vip' })), ['Patient/tagged', 'Practitioner/tagged'], 'system search on _tag');
  t.strictSame(refsOf(await h.search(undefined, { _tag: 'urn:test:tags|', _type: 'Organization,Practitioner' })), ['Organization/untagged', 'Practitioner/tagged'], '_tag with _type');
  t.strictSame(idsOf(await h.search('Patient', { _profile: 'http://example.org/StructureDefinition/my-patient' })), ['tagged'], '_profile');
  t.strictSame(idsOf(await h.search('Patient', { '_tag:not': 'urn:test:tags|vip', _id: 'tagged,pa' })), ['pa'], '_tag:not');
  const unknownSystem: any = await h.search(undefined, { family: 'lef' });
  t.strictSame(idsOf(unknownSystem, 'outcome').length, 1, 'a system search without _type reports parameters not common to all types');

  // compartment search
  const comp = (type: string, params: Params = {}) => h.client.search({ resourceType: type, compartment: { resourceType: 'Patient', id: 'pa' }, searchParams: params });
  t.strictSame(refsOf(await comp('Observation')), ['Observation/oa', 'Observation/oa2', 'Observation/operf'], 'Patient/pa/Observation');
  t.strictSame(refsOf(await comp('Observation', { code: '8867-4' })), ['Observation/oa2'], 'compartment search with criteria');
  t.strictSame(refsOf(await comp('Patient')), ['Patient/pa'], 'Patient/pa/Patient');
  t.equal((await comp('Observation', { _summary: 'count' })).total, 3);
});

// ---------------------------------------------------------------- errors and unknown parameters

t.test('unknown parameters are reported (lenient) or rejected (strict); malformed values are 400', async (t) => {
  const h = await harness(t);
  await h.put({ resourceType: 'Patient', id: 'pa', name: [{ family: 'Lefèvre' }] }, { resourceType: 'Patient', id: 'pb', name: [{ family: 'Martin' }] });

  const lenient: any = await h.search('Patient', { family: 'lef', foo: 'bar' });
  t.strictSame(idsOf(lenient), ['pa'], 'the unknown parameter is ignored');
  const outcomes = lenient.entry.filter((e: any) => e.search.mode === 'outcome');
  t.equal(outcomes.length, 1, 'one outcome entry');
  t.equal(outcomes[0].resource.resourceType, 'OperationOutcome');
  t.match(JSON.stringify(outcomes[0].resource.issue), /foo/, 'the outcome names the parameter');
  t.notMatch(lenient.link.find((l: any) => l.relation === 'self').url, /foo/, 'the self link leaves out what was ignored');

  const notContained: any = await h.search('Patient', { family: 'lef', _contained: 'false' });
  t.strictSame(idsOf(notContained, 'outcome'), [], '_contained is a result parameter (search-contained.test.ts)');
  t.strictSame(idsOf(notContained), ['pa']);

  const strict = await http('GET', `${h.s.url}/Patient?family=lef&foo=bar`, undefined, { prefer: 'handling=strict' });
  t.equal(strict.status, 400, 'Prefer: handling=strict → 400');
  t.equal(strict.body.resourceType, 'OperationOutcome');
  t.match(JSON.stringify(strict.body.issue), /foo/, 'the OperationOutcome names the parameter');
  const strictOk = await http('GET', `${h.s.url}/Patient?family=lef`, undefined, { prefer: 'handling=strict' });
  t.equal(strictOk.status, 200, 'strict handling with known parameters works');

  const bad: [string, RegExp][] = [
    ['birthdate=1950-13', /1950-13/],
    ['birthdate=1950-02-30', /1950-02-30/],
    ['birthdate=yesterday', /yesterday/],
    ['birthdate=gte1950', /gte1950/],
    ['birthdate=gt', /birthdate/],
    ['_lastUpdated=gt2024-01-01T25:00:00Z', /_lastUpdated/],
    ['family:foo=x', /foo/],
    ['gender:exact=male', /exact/],
    ['subject:Nonsense=1', /Nonsense/],
    ['family:missing=maybe', /maybe/],
    ['_count=abc', /_count/],
    ['_count=-1', /_count/],
    ['_summary=maybe', /_summary/],
    ['_total=some', /_total/],
    ['_sort=nonsense', /nonsense/],
    ['_include=Nonsense:subject', /Nonsense/],
    ['_include=Observation:status', /status/],
    ['name.family=x', /name/],
    ['_has:Observation:patient', /_has/],
    ['_has:Observation:patient:nonsense=x', /nonsense/],
    ['_has:Nonsense:patient:code=x', /Nonsense/],
    ['_has:Observation:status:code=x', /status/],
    ['identifier:of-type=a|b', /of-type/],
    ['identifier=a|b|c', /a\|b\|c/],
    ['organization=Organization/', /Organization\//],
    ['organization=/', /not a reference/],
    ['organization=organization/org', /organization\/org/],
    ['organization=Nonsense/org', /Nonsense/],
    ['organization=two words', /two words/],
  ];
  for (const [q, re] of bad) {
    const type = q.startsWith('subject') ? 'Observation' : 'Patient';
    const r = await http('GET', `${h.s.url}/${type}?${q}`);
    t.equal(r.status, 400, `${type}?${q} → 400`);
    t.equal(r.body?.resourceType, 'OperationOutcome', `${q}: OperationOutcome`);
    t.match(JSON.stringify(r.body?.issue ?? ''), re, `${q}: the outcome says what is wrong`);
  }
  await h.put({ resourceType: 'RiskAssessment', id: 'r', status: 'final', subject: { reference: 'Patient/pa' }, prediction: [{ probabilityDecimal: 5 }] });
  for (const q of ['probability=abc', 'probability=gt', 'probability=xx5', 'probability=5..1', 'probability=1,2x', 'probability=1e99999']) {
    const r = await http('GET', `${h.s.url}/RiskAssessment?${q}`);
    t.equal(r.status, 400, `RiskAssessment?${q} → 400`);
  }
  for (const q of ['value-quantity=zz5', 'value-quantity=5|a|b|c', 'code=a|b|c']) {
    const r = await http('GET', `${h.s.url}/Observation?${q}`);
    t.equal(r.status, 400, `Observation?${q} → 400`);
  }
});

// ---------------------------------------------------------------- nothing hidden shows

t.test('deleted resources never show; an updated resource is found by its new values only', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Organization', id: 'org', name: 'Clinique' },
    { resourceType: 'Patient', id: 'keep', name: [{ family: 'Keep' }], managingOrganization: { reference: 'Organization/org' } },
    { resourceType: 'Patient', id: 'gone', name: [{ family: 'Gone' }], birthDate: '1950-01-01', managingOrganization: { reference: 'Organization/org' } },
    { resourceType: 'Patient', id: 'moved', name: [{ family: 'Oldname' }], birthDate: '1950-01-01' },
    { resourceType: 'Observation', id: 'o-gone', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/gone' } },
    { resourceType: 'Observation', id: 'o-keep', status: 'final', code: { text: 'y' }, subject: { reference: 'Patient/keep' } },
    { resourceType: 'Observation', id: 'o-del', status: 'final', code: { coding: [{ system: LOINC, code: '1-8' }] }, subject: { reference: 'Patient/keep' } }
  );
  await h.client.delete({ resourceType: 'Patient', id: 'gone' });
  await h.client.delete({ resourceType: 'Observation', id: 'o-del' });
  const [moved] = await h.put({ resourceType: 'Patient', id: 'moved', name: [{ family: 'Newname' }], birthDate: '1980-01-01' });
  t.equal(moved.meta.versionId, '2');

  await h.matrix(t, 'Patient', [
    [{}, ['keep', 'moved']],
    [{ family: 'gone' }, []],
    [{ _id: 'gone,keep' }, ['keep']],
    [{ birthdate: '1950-01-01' }, []],
    [{ family: 'oldname' }, []],
    [{ family: 'newname' }, ['moved']],
    [{ birthdate: '1980' }, ['moved']],
    [{ organization: 'Organization/org' }, ['keep']],
    [{ '_has:Observation:patient:code': `${LOINC}|1-8` }, []],
    [{ '_has:Observation:patient:code:text': 'x' }, []],
  ]);
  await h.matrix(t, 'Observation', [
    [{ 'subject:Patient.name': 'gone' }, []],
    [{ subject: 'Patient/gone' }, ['o-gone']], // the reference is still there; the chain needs the target
    [{ 'subject:Patient.name': 'keep' }, ['o-keep']],
  ]);
  t.equal((await h.search('Patient', { _summary: 'count' })).total, 2, 'totals leave deleted resources out');
  t.equal((await h.search('Patient', { _count: '1' })).total, 2, 'total with paging');
  const inc: any = await h.search('Observation', { _id: 'o-gone', _include: 'Observation:subject' });
  t.strictSame(refsOf(inc, 'include'), [], 'a deleted target is not included');
  const rev: any = await h.search('Patient', { _id: 'keep', _revinclude: 'Observation:subject' });
  t.strictSame(refsOf(rev, 'include'), ['Observation/o-keep'], 'a deleted source is not revincluded');
  const revOrg: any = await h.search('Organization', { _revinclude: 'Patient:organization' });
  t.strictSame(refsOf(revOrg, 'include'), ['Patient/keep']);
  t.strictSame(refsOf(await h.search(undefined, { _type: 'Patient,Observation', _id: 'gone,o-del,keep' })), ['Patient/keep'], 'system search');
  const comp: any = await h.client.search({ resourceType: 'Observation', compartment: { resourceType: 'Patient', id: 'keep' } });
  t.strictSame(refsOf(comp), ['Observation/o-keep'], 'compartment search');
  // a resource created with a server-assigned id, then deleted
  const created: any = await h.client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Keep' }] } as any });
  t.strictSame(await h.find('Patient', { family: 'keep' }), ['keep', created.id].sort(), 'a created resource is found at once');
  await h.client.delete({ resourceType: 'Patient', id: created.id });
  t.strictSame(await h.find('Patient', { family: 'keep' }), ['keep'], 'and not after its deletion');
  // a re-created resource is found again
  await h.put({ resourceType: 'Patient', id: 'gone', name: [{ family: 'Back' }] });
  await h.matrix(t, 'Patient', [
    [{ family: 'back' }, ['gone']],
    [{ family: 'gone' }, []],
  ]);
});
