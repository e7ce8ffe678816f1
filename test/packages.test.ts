// The shipped FHIR packages' conformance resources as stored resources (conformance/import.ts):
// stored at first start, readable and searchable like any other, their SearchParameters
// searchable, an API change to one taking effect at once, and a restart importing nothing twice.
// The server runs as its own process, as `npm start` does.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { freshDatabase, http, startServerProcess } from './helpers/server.ts';

const FR_CORE_PATIENT = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient';
const GENDER_VS = 'https://hl7.fr/ig/fhir/core/ValueSet/fr-core-vs-patient-gender';
const GENDER_CS = 'http://hl7.org/fhir/administrative-gender';
const EVENT_TYPE = 'https://interop.esante.gouv.fr/ig/fhir/nde/StructureDefinition/event-type';
const IS_ARCHIVED = 'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived';
const TRE_R254 = 'https://mos.esante.gouv.fr/NOS/TRE_R254-TypeEvenement/FHIR/TRE-R254-TypeEvenement';

const ids = (bundle: any): string[] => (bundle.entry ?? []).map((e: any) => e.resource.id).sort();
const total = async (url: string): Promise<number> => (await http('GET', url)).body.total;

t.test('the packages in profiles/ are stored at first start and searchable', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const first = await startServerProcess(db.env, { STORE_PACKAGE_RESOURCES: 'true', LOAD_FIXTURES: 'true' });
  let server = first;
  t.teardown(() => server.child.kill('SIGKILL'));
  const base = first.url;

  // Read and search, with HTTP and a third-party client.
  const sd = await http('GET', `${base}/StructureDefinition/fr-core-patient`);
  t.equal(sd.status, 200, 'a package StructureDefinition is read by its published id');
  t.equal(sd.body.version, '2.2.0', 'the published id goes to the newest version of the package');
  t.ok(sd.body.snapshot.element.length > 50, 'stored as published, snapshot included');
  const client = new Client({ baseUrl: base });
  const byUrl: any = await client.search({ resourceType: 'StructureDefinition', searchParams: { url: FR_CORE_PATIENT } });
  t.same(ids(byUrl), ['fr-core-patient', 'fr-core-patient-2.1.0'], 'both FR Core versions, the earlier one under id-version');
  const older: any = await client.search({ resourceType: 'StructureDefinition', searchParams: { url: FR_CORE_PATIENT, version: '2.1.0' } });
  t.same(older.entry.map((e: any) => e.resource.version), ['2.1.0'], 'a version found by url and version');
  t.equal(await total(`${base}/ImplementationGuide?_summary=count`), 10, 'one ImplementationGuide per package');
  t.equal(await total(`${base}/SearchParameter?base=CareTeam&_summary=count`), 6 - 1, 'the CDS CareTeam SearchParameters (the sixth is on Patient)');
  t.ok((await total(`${base}/CapabilityStatement?_summary=count`)) >= 20, 'the guides\' CapabilityStatements');
  t.ok((await total(`${base}/CodeSystem?url=https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203&_summary=count`)) >= 1, 'CodeSystems');
  t.equal(await total(`${base}/Patient?_summary=count`), 3, 'the database held only package resources: the demo fixtures were loaded too');

  // The profiles' SearchParameters are search parameters.
  const post = async (resource: object) => {
    const r = await http('POST', `${base}/${(resource as any).resourceType}`, resource);
    t.equal(r.status, 201, `${(resource as any).resourceType} created`);
    return r.body.id as string;
  };
  const patient = await post({ resourceType: 'Patient', name: [{ family: 'Martin' }] });
  const early = await post({ resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${patient}` }, period: { start: '2026-01-10' }, participant: [{ period: { start: '2026-01-15' } }] });
  const late = await post({ resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${patient}` }, period: { start: '2026-06-01' }, participant: [{ period: { start: '2026-06-20' } }] });
  const strict = { prefer: 'handling=strict' };
  const search = async (q: string) => {
    const r = await http('GET', `${base}/${q}`, undefined, strict);
    t.equal(r.status, 200, `${q} is understood`);
    return ids(r.body);
  };
  t.same(await search(`CareTeam?subject=Patient/${patient}&participant-start=ge2026-06-01`), [late], "CDS's participant-start");
  t.same(await search(`CareTeam?subject=Patient/${patient}&start=lt2026-02-01`), [early], "CDS's start");
  const appointment = await post({ resourceType: 'Appointment', status: 'booked', start: '2026-03-02T09:00:00Z', end: '2026-03-02T09:30:00Z', participant: [{ actor: { reference: `Patient/${patient}` }, status: 'accepted' }] });
  t.same(await search(`Appointment?patient=Patient/${patient}&start=2026-03-02`), [appointment], "GAP's start");
  const request = await post({
    resourceType: 'CommunicationRequest', status: 'active',
    extension: [{ url: EVENT_TYPE, valueCodeableConcept: { coding: [{ system: TRE_R254, code: 'SOR' }] } }],
  });
  t.same(await search(`CommunicationRequest?event-type=${encodeURIComponent(TRE_R254)}|SOR`), [request], "NdE's event-type");
  const archived = await post({ resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { url: 'urn:x' } }], extension: [{ url: IS_ARCHIVED, valueBoolean: true }] });
  await post({ resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { url: 'urn:y' } }], extension: [{ url: IS_ARCHIVED, valueBoolean: false }] });
  t.same(await search('DocumentReference?isArchived=true'), [archived], "PDSm's isArchived");
  const cs = (await http('GET', `${base}/metadata`)).body;
  const careTeam = cs.rest[0].resource.find((r: any) => r.type === 'CareTeam');
  t.ok(careTeam.searchParam.some((p: any) => p.name === 'participant-start' && p.definition === 'https://interop.esante.gouv.fr/ig/fhir/cds/SearchParameter/cds-careteam-participant-start'),
    'the CapabilityStatement lists them with their canonical');
  // One that names a parameter R4 already has stays stored, and the R4 one keeps the code.
  t.equal((await http('GET', `${base}/SearchParameter/slot-sp-start`)).status, 200, 'a clashing SearchParameter is stored');
  const slot = cs.rest[0].resource.find((r: any) => r.type === 'Slot');
  t.equal(slot.searchParam.find((p: any) => p.name === 'start').definition, 'http://hl7.org/fhir/SearchParameter/Slot-start', 'the R4 Slot start is kept');

  // A change through the API takes effect at once: the stored copy overlays the package's.
  const validateOther = async () =>
    (await http('GET', `${base}/ValueSet/$validate-code?url=${encodeURIComponent(GENDER_VS)}&system=${encodeURIComponent(GENDER_CS)}&code=other`)).body.parameter.find((p: any) => p.name === 'result').valueBoolean;
  t.equal(await validateOther(), false, "'other' is not in FR Core's patient gender ValueSet as published");
  const vs = (await http('GET', `${base}/ValueSet/fr-core-vs-patient-gender`)).body;
  vs.compose.include[0].concept.push({ code: 'other' });
  t.equal((await http('PUT', `${base}/ValueSet/fr-core-vs-patient-gender`, vs)).status, 200, 'the ValueSet updated');
  t.equal(await validateOther(), true, 'the updated ValueSet answers at once');

  // A restart stores nothing twice, loads no fixtures, and keeps the change.
  const before = await total(`${base}/_history?_summary=count`);
  first.child.kill('SIGTERM');
  await first.exited;
  server = await startServerProcess(db.env, { STORE_PACKAGE_RESOURCES: 'true', LOAD_FIXTURES: 'true' });
  const again = server.url;
  t.equal(await total(`${again}/_history?_summary=count`), before, 'nothing written at the second start');
  t.equal(await total(`${again}/Patient?_summary=count`), 4, 'no fixtures loaded again');
  t.equal(
    (await http('GET', `${again}/ValueSet/$validate-code?url=${encodeURIComponent(GENDER_VS)}&system=${encodeURIComponent(GENDER_CS)}&code=other`)).body.parameter.find((p: any) => p.name === 'result').valueBoolean,
    true, 'the changed ValueSet still overlays the package after a restart');
  t.same(ids((await http('GET', `${again}/CareTeam?subject=Patient/${patient}&participant-start=ge2026-06-01`, undefined, strict)).body), [late], 'package SearchParameters still searchable');
});
