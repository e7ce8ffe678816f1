// Profile validation, $validate and enforcement on write, over real HTTP:
// - every example shipped with the French packages in ../shared/spec validates against the
//   profiles it declares, except the listed examples that are themselves wrong (each with the
//   error the reference validator gives too, and why);
// - mutations of valid examples give an error at the right expression, for each French profile;
// - $validate (type and instance level, profile parameter, modes) never stores anything;
// - writes are refused with 422 when they fail a declared or mandatory profile, transactions
//   whole; a profile created through the API takes effect without restart.
import t, { type Test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import type { OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { readTarGz } from '../src/fhir/conformance/tar.ts';
import { dbKind, freshDatabase, http, startServer, startServerProcess } from './helpers/server.ts';

const SPEC = new URL('../../shared/spec/', import.meta.url);
const FR_CORE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';
const ANS = 'https://interop.esante.gouv.fr/ig/fhir/';

/** The example resources of a package archive (package/example/*.json). */
function examples(archive: string): Map<string, Resource> {
  const out = new Map<string, Resource>();
  for (const [name, content] of readTarGz(readFileSync(new URL(archive, SPEC)))) {
    if (/^package\/example\/[^/]+\.json$/.test(name)) out.set(name.slice('package/example/'.length), JSON.parse(content.toString('utf8')) as Resource);
  }
  return out;
}

const ARCHIVES = readdirSync(SPEC, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tgz')).sort();

/**
 * Examples that are wrong against the packages as published and shipped together, with the
 * error they get (the reference validator reports the same rule) and why.
 */
const INSEE = {
  error: /TRE-R13-Commune#\d+ is not in the required value set https:\/\/hl7\.fr\/ig\/fhir\/core\/ValueSet\/fr-core-vs-insee-code/,
  why: 'the INSEE code of a commune uses TRE-R13-Commune; FR Core binds fr-core-vs-insee-code, which includes only TRE-R13-CommuneOM',
};
const MSS = { error: /mailbox-mss\.extension/, why: "an email telecom matches the slice mailbox-mss, whose emailType extension (1..1) is missing" };
const EMPTY_STRING = { error: /must not be empty/, why: 'a translation extension carries valueString "" (a primitive may not be empty, R4 json.html)' };
const NDE_RPPS = {
  error: /Practitioner\.identifier:rpps\.type: minimum required = 1/,
  why: "the contained Practitioner declares fr-core-practitioner without a version, which resolves to the newest shipped (FR Core 2.2.0); its rpps slice requires identifier.type (1..1), optional in FR Core 2.1.0 that NdE was written against",
};
const PDSM_SIZE = {
  error: /Attachment\.size says 250000 bytes, but the data has/,
  why: 'the attachment gives the size of a real document (250000 bytes) beside placeholder base64 data (the reference validator checks size against data too)',
};
const ANNUAIRE_META = {
  error: /annuaire\.esante\.gouv\.fr|canonical/,
  why: "written for Annuaire 1.1.0: meta.source is https://annuaire.sante.fr and meta.profile lacks the canonicals Annuaire 1.2.0 (shipped) fixes",
};
const SAS_SPECIALTY = { error: /no code provided, and a code is required/, why: 'a Slot specialty has only text where FR Core 1.1.0 requires a code (required binding)' };

const WRONG_EXAMPLES: Record<string, { error: RegExp; why: string }> = {
  'ans-annuaire/Organization-158480.json': INSEE,
  'ans-annuaire/Organization-158480DP.json': INSEE,
  'ans-annuaire/Person-pp16dr-person.json': INSEE,
  'ans-annuaire/Person-pp19dr-person.json': INSEE,
  'ans-annuaire/Organization-example-organization-fictive.json': MSS,
  'ans-annuaire/Organization-example-organization-nancy.json': MSS,
  'ans-annuaire/Practitioner-334081.json': MSS,
  'ans-annuaire/Practitioner-3719500.json': MSS,
  'ans-cdl/Bundle-cdl-bundle-creation-note.json': INSEE,
  'ans-cdl/Patient-0d920958-b596-4b91-af67-9bafc707820b.json': INSEE,
  'ans-cds/Bundle-cds-bundle-transaction-creation-example.json': EMPTY_STRING,
  'ans-cds/CareTeam-cds-careteam-example.json': EMPTY_STRING,
  'ans-cds/Organization-cds-organization-example.json': EMPTY_STRING,
  'ans-cds/Patient-cds-patient-example.json': INSEE,
  'ans-nde/CommunicationRequest-com1.json': NDE_RPPS,
  'ans-nde/Subscription-sub1.json': NDE_RPPS,
  'ans-pdsm/DocumentReference-PDSmSimplifiedExample.json': PDSM_SIZE,
  'ans-pdsm/DocumentReference-exemple-pdsm-documentreference.json': ANNUAIRE_META,
  'ans-pdsm/List-ExampleSubmissionSet.json': ANNUAIRE_META,
  'ans-pdsm/Organization-org-example.json': ANNUAIRE_META,
  'ans-sas/Bundle-ExampleBundlePSIndiv.json': SAS_SPECIALTY,
  'ans-sas/Slot-ExampleSlotPSIndiv3.json': SAS_SPECIALTY,
  'ans-sas/Slot-ExampleSlotPSIndiv5.json': SAS_SPECIALTY,
  'fr-core/Patient-ExampleFRCorePatient001.json': INSEE,
};

const value = (p: { parameter?: { name: string; valueBoolean?: boolean }[] }, name: string) => p.parameter?.find((x) => x.name === name)?.valueBoolean;
const errorsOf = (oo: OperationOutcome) => (oo.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
const show = (issues: OperationOutcomeIssue[]) => issues.map((i) => `${i.expression?.[0] ?? ''}: ${i.details?.text ?? ''}`).join('\n');

t.test('validation', async (t) => {
  const s = await startServer(t, { REQUIRED_PROFILES: 'default' });
  const client = new Client({ baseUrl: s.url });
  const post = async (path: string, body: unknown, contentType = 'application/fhir+json') => {
    const res = await fetch(`${s.url}/${path}`, { method: 'POST', headers: { 'content-type': contentType, accept: 'application/fhir+json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as OperationOutcome & Resource };
  };
  const validate = async (resource: Resource, profile?: string) => {
    const r = await post(`${resource.resourceType}/$validate${profile ? `?profile=${encodeURIComponent(profile)}` : ''}`, resource);
    t.equal(r.status, 200, `$validate answers 200 for ${resource.resourceType}`);
    return errorsOf(r.body);
  };
  const count = async (type: string) => ((await client.search({ resourceType: type, searchParams: { _summary: 'count' } })) as unknown as { total: number }).total;

  t.test('every example of the French packages conforms to what it declares', async (t) => {
    let checked = 0;
    const wrongSeen = new Set<string>();
    for (const archive of ARCHIVES) {
      for (const [file, resource] of examples(archive)) {
        if (['StructureDefinition', 'ValueSet', 'CodeSystem', 'CapabilityStatement', 'SearchParameter', 'ImplementationGuide'].includes(resource.resourceType)) continue;
        const key = `${archive.split('/')[0]}/${file}`;
        const errs = await validate(resource);
        checked++;
        const wrong = WRONG_EXAMPLES[key];
        if (wrong) {
          wrongSeen.add(key);
          t.ok(errs.some((e) => wrong.error.test(e.details?.text ?? '')), `${key} is wrong (${wrong.why}):\n${show(errs)}`);
        } else {
          t.same(show(errs), '', `${key} validates without error`);
        }
      }
    }
    t.same([...wrongSeen].sort(), Object.keys(WRONG_EXAMPLES).sort(), 'every listed wrong example was checked');
    t.ok(checked > 100, `${checked} examples validated`);
  });

  const frCore = examples('fr-core/hl7.fhir.fr.core-2.2.0.tgz');
  const gap = examples('ans-gap/package.tgz');
  const patientIns = frCore.get('Patient-FRCorePatientExample.json') as Resource & Record<string, any>;
  const appointment = gap.get('Appointment-example-req-appointment.json') as Resource & Record<string, any>;
  const copy = <T>(v: T): T => structuredClone(v);
  const expectError = async (t: Test, resource: Resource, expression: string, text: RegExp, profile?: string) => {
    const errs = await validate(resource, profile);
    t.ok(errs.some((e) => e.expression?.[0] === expression && text.test(e.details?.text ?? '')), `an error at ${expression} matching ${text}; got:\n${show(errs)}`);
  };

  t.test('mutations of valid examples fail at the right expression', async (t) => {
    t.same(show(await validate(patientIns)), '', 'the FR Core INS patient example is valid');
    t.same(show(await validate(appointment)), '', 'the GAP appointment example is valid');
    const noBirthDate = copy(patientIns);
    delete noBirthDate.birthDate;
    await expectError(t, noBirthDate, 'Patient.birthDate', /minimum required = 1/);
    const notIns = copy(patientIns);
    notIns.identifier[0].system = 'urn:oid:1.2.250.1.213.1.4.99';
    await expectError(t, notIns, 'Patient', /fr-core-1/);
    const badGender = copy(patientIns);
    badGender.gender = 'inconnu';
    await expectError(t, badGender, 'Patient.gender', /not in the required value set/);
    const badStatus = copy(appointment);
    badStatus.status = 'planned';
    await expectError(t, badStatus, 'Appointment.status', /not in the required value set/);
    const noStatus = copy(appointment);
    delete noStatus.status;
    await expectError(t, noStatus, 'Appointment.status', /minimum required = 1/);
    const badActor = copy(appointment);
    badActor.participant[0].actor.reference = 'Observation/1';
    await expectError(t, badActor, 'Appointment.participant[0].actor.reference', /points to a Observation, which is not allowed/);
    const unknownElement = copy(appointment);
    unknownElement.colour = 'blue';
    await expectError(t, unknownElement, 'Appointment.colour', /Unrecognized property/);
    const badDate = copy(appointment);
    badDate.start = '2024-02-30T10:00:00+01:00';
    await expectError(t, badDate, 'Appointment.start', /day 30 does not exist/);
  });

  // A profile written through the API, as a differential only: closed slicing of identifiers
  // on system, an RPPS slice with its own cardinality, a required birthDate.
  const closedProfile = {
    resourceType: 'StructureDefinition', url: 'https://example.org/fhir/StructureDefinition/patient-closed-identifiers', name: 'PatientClosedIdentifiers',
    status: 'active', kind: 'resource', abstract: false, type: 'Patient', derivation: 'constraint',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    differential: {
      element: [
        { id: 'Patient.identifier', path: 'Patient.identifier', slicing: { discriminator: [{ type: 'value', path: 'system' }], rules: 'closed' }, min: 1 },
        { id: 'Patient.identifier:ins', path: 'Patient.identifier', sliceName: 'ins', min: 1, max: '1' },
        { id: 'Patient.identifier:ins.system', path: 'Patient.identifier.system', min: 1, fixedUri: 'urn:oid:1.2.250.1.213.1.4.8' },
        { id: 'Patient.birthDate', path: 'Patient.birthDate', min: 1 },
      ],
    },
  };

  t.test('a profile created through the API takes effect at once (snapshot generated, closed slicing)', async (t) => {
    const created = await client.create({ resourceType: 'StructureDefinition', body: closedProfile as never });
    t.ok((created as Resource).id, 'the differential-only profile is stored');
    const patient = { resourceType: 'Patient', meta: { profile: [closedProfile.url] }, birthDate: '1950-01-01', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '123456789012345' }] };
    t.same(show(await validate(patient as Resource)), '', 'a conforming patient is valid');
    const extra = copy(patient);
    extra.identifier.push({ system: 'https://example.org/other', value: 'x' });
    await expectError(t, extra as Resource, 'Patient.identifier[1]', /does not match any known slice and the slicing is closed/);
    const noIns = copy(patient);
    noIns.identifier = [];
    const errs = await validate({ ...noIns, identifier: undefined } as unknown as Resource);
    t.ok(errs.some((e) => /minimum required = 1/.test(e.details?.text ?? '') && e.expression?.[0] === 'Patient.identifier'), `identifier 1..1: ${show(errs)}`);
    // Enforced on write: the declared profile is checked, and nothing is stored on failure.
    const before = await count('Patient');
    const refused = await post('Patient', extra);
    t.equal(refused.status, 422, 'a write failing its declared profile is refused');
    t.ok(errorsOf(refused.body).some((e) => /slicing is closed/.test(e.details?.text ?? '')), 'with the full OperationOutcome');
    t.equal(await count('Patient'), before, 'nothing was stored');
    const accepted = await post('Patient', patient);
    t.equal(accepted.status, 201, 'a conforming write is stored');
    // Updating the profile through the API changes what is enforced, without restart.
    const looser = { ...closedProfile, id: (created as Resource).id, differential: { element: closedProfile.differential.element.filter((e) => e.id !== 'Patient.birthDate') } };
    await client.update({ resourceType: 'StructureDefinition', id: (created as Resource).id!, body: looser as never });
    const { birthDate: _b, ...noBirth } = patient;
    t.equal((await post('Patient', noBirth)).status, 201, 'after the update, birthDate is no longer required');
  });

  t.test('mandatory profiles are enforced on every write; a failing transaction stores nothing', async (t) => {
    const before = await count('Patient');
    const bad = await post('Patient', { resourceType: 'Patient', gender: 'femme' });
    t.equal(bad.status, 422, 'a Patient that is not FR Core is refused');
    t.match(bad.body.issue?.[0]?.details?.text ?? '', /must conform to https:\/\/hl7\.fr\/ig\/fhir\/core\/StructureDefinition\/fr-core-patient/);
    t.ok(errorsOf(bad.body).some((e) => e.expression?.[0] === 'Patient.gender'), 'the gender error is reported at Patient.gender');
    const good = await post('Patient', { resourceType: 'Patient', gender: 'female', name: [{ family: 'Martin', given: ['Hélène'] }] });
    t.equal(good.status, 201, 'a plain FR Core patient is accepted');
    const txn = await post('', {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0a4c1d5e-0000-4000-8000-000000000001', resource: { resourceType: 'Patient', name: [{ family: 'Durand' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Appointment', status: 'booked', start: '2026-12-01T10:00:00+01:00', end: '2026-12-01T10:30:00+01:00', participant: [{ actor: { reference: 'urn:uuid:0a4c1d5e-0000-4000-8000-000000000001' }, status: 'accepted' }, { actor: { reference: 'Observation/1' }, status: 'accepted' }] }, request: { method: 'POST', url: 'Appointment' } },
      ],
    });
    t.equal(txn.status, 422, 'a transaction with one failing entry is refused');
    t.ok(errorsOf(txn.body).some((e) => /Bundle\.entry\[1\]/.test(e.expression?.[0] ?? '')), `the failing entry is named: ${show(errorsOf(txn.body))}`);
    t.equal(await count('Patient'), before + 1, 'the transaction stored nothing');
    t.equal(await count('Appointment'), 0, 'no appointment either');
    // A liaison note (a DocumentReference typed with the ANS note types) must be CdL; other documents need not.
    const TYPE_NOTE = 'https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote';
    const note = { resourceType: 'DocumentReference', status: 'current', type: { coding: [{ system: TYPE_NOTE, code: 'DEM-AVIS' }] }, content: [{ attachment: { contentType: 'text/plain', data: 'Qm9uam91cg==' } }] };
    const refusedNote = await post('DocumentReference', note);
    t.equal(refusedNote.status, 422, 'a liaison note that is not CdL is refused');
    t.match(refusedNote.body.issue?.[0]?.details?.text ?? '', /cdl-document-reference/, 'naming the CdL profile');
    t.ok(errorsOf(refusedNote.body).some((e) => e.expression?.[0] === 'DocumentReference.subject'), 'CdL requires its patient');
    const other = { ...note, type: { coding: [{ system: 'http://loinc.org', code: '11488-4' }] } };
    t.equal((await post('DocumentReference', other)).status, 201, 'another document is not held to CdL');
  });

  t.test('$validate: instance level, profile parameter, modes, through a FHIR client; never stores', async (t) => {
    const before = await count('Appointment');
    const oo = (await client.operation({ name: '$validate', resourceType: 'Appointment', method: 'POST', input: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: appointment }, { name: 'mode', valueCode: 'create' }] } })) as unknown as OperationOutcome;
    t.equal(oo.resourceType, 'OperationOutcome');
    t.same(show(errorsOf(oo)), '', 'a valid appointment gets no error through the client');
    t.equal(await count('Appointment'), before, '$validate stored nothing');
    const stored = (await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Petit' }] } as never })) as Resource;
    const asked = await fetch(`${s.url}/Patient/${stored.id}/$validate?profile=${encodeURIComponent(FR_CORE + 'fr-core-patient-ins')}`, { headers: { accept: 'application/fhir+json' } });
    const body = (await asked.json()) as OperationOutcome;
    t.equal(asked.status, 200);
    t.ok(errorsOf(body).some((e) => e.expression?.[0] === 'Patient.identifier'), 'the stored patient is checked against the INS profile asked for');
    const unknown = await validate(patientIns, 'https://example.org/no-such-profile');
    t.ok(unknown.some((e) => /not known to this server/.test(e.details?.text ?? '')), 'an unknown profile asked for is an error');
    const updateMode = await post(`Patient/${stored.id}/$validate`, { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: { resourceType: 'Patient', id: 'other' } }, { name: 'mode', valueCode: 'update' }] });
    t.ok(errorsOf(updateMode.body).some((e) => /id must be/.test(e.details?.text ?? '')), 'mode=update checks the id');
    const notResource = await post('Patient/$validate', { hello: 'world' });
    t.equal(notResource.status, 400, 'a body that is not a resource is a 400');
    t.equal(notResource.body.resourceType, 'OperationOutcome');
    const careTeam = await validate({ resourceType: 'CareTeam', status: 'active' } as Resource, ANS + 'cds/StructureDefinition/cds-ihe-careteam');
    t.ok(careTeam.some((e) => e.expression?.[0] === 'CareTeam.subject'), 'CDS: a care team needs its patient');
  });
});

// ---------------------------------------------------------------- profiles written elsewhere

const birthDateProfile = (url: string) => ({
  resourceType: 'StructureDefinition', url, name: 'PatientWithBirthDate', status: 'active', kind: 'resource', abstract: false, type: 'Patient',
  derivation: 'constraint', baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
  differential: { element: [{ id: 'Patient.birthDate', path: 'Patient.birthDate', min: 1 }] },
});
const validateAgainst = async (base: string, profile: string) => {
  const r = await http('POST', `${base}/Patient/$validate?profile=${encodeURIComponent(profile)}`, { resourceType: 'Patient', name: [{ family: 'Roux' }] });
  return errorsOf(r.body).map((e) => `${e.expression?.[0] ?? ''}: ${e.details?.text ?? ''}`).join('\n');
};

t.test('a profile stored by a transaction that fails is not used (nothing of it stays in the catalog)', async (t) => {
  const s = await startServer(t);
  const url = 'https://example.org/fhir/StructureDefinition/rolled-back';
  const txn = await http('POST', s.url, {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { resource: birthDateProfile(url), request: { method: 'POST', url: 'StructureDefinition' } },
      { resource: { resourceType: 'Patient', birthDate: 'yesterday' }, request: { method: 'POST', url: 'Patient' } },
    ],
  });
  t.equal(txn.status >= 400, true, `the transaction is refused (${txn.status})`);
  t.match(await validateAgainst(s.url, url), /not known to this server/, 'the profile it would have stored is unknown');
  const committed = await http('POST', s.url, {
    resourceType: 'Bundle', type: 'transaction',
    entry: [{ resource: birthDateProfile(url), request: { method: 'POST', url: 'StructureDefinition' } }],
  });
  t.equal(committed.status, 200, 'stored by a transaction that commits');
  t.match(await validateAgainst(s.url, url), /Patient\.birthDate: minimum required = 1/, 'then used');
});

if (dbKind === 'postgres') {
  t.test('two server processes on one PostgreSQL: a profile stored or changed through one is used by the other', async (t) => {
    const db = await freshDatabase();
    t.teardown(db.cleanup);
    const [a, b] = await Promise.all([startServerProcess(db.env), startServerProcess(db.env)]);
    t.teardown(() => {
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
    });
    const url = 'https://example.org/fhir/StructureDefinition/shared-profile';
    t.match(await validateAgainst(b.url, url), /not known to this server/, 'unknown before');
    const created = await http('POST', `${a.url}/StructureDefinition`, birthDateProfile(url));
    t.equal(created.status, 201, 'stored through the first process');
    t.match(await validateAgainst(b.url, url), /Patient\.birthDate: minimum required = 1/, 'the second process validates against it at once');
    const looser = { ...birthDateProfile(url), id: created.body.id, differential: { element: [{ id: 'Patient.gender', path: 'Patient.gender', min: 1 }] } };
    t.equal((await http('PUT', `${a.url}/StructureDefinition/${created.body.id}`, looser)).status, 200, 'changed through the first process');
    t.match(await validateAgainst(b.url, url), /^Patient\.gender: Patient\.gender: minimum required = 1, but only found 0$/, 'the second process follows the change');
    const vs = { resourceType: 'ValueSet', url: 'https://example.org/fhir/ValueSet/shared', status: 'active', compose: { include: [{ system: 'http://hl7.org/fhir/administrative-gender', concept: [{ code: 'male' }] }] } };
    const check = async () => (await http('GET', `${b.url}/ValueSet/$validate-code?url=${encodeURIComponent(vs.url)}&system=http://hl7.org/fhir/administrative-gender&code=female`)).body;
    const stored = await http('POST', `${a.url}/ValueSet`, vs);
    t.equal(value(await check(), 'result'), false, "a ValueSet stored through the first: 'female' is not in it");
    vs.compose.include[0].concept.push({ code: 'female' });
    t.equal((await http('PUT', `${a.url}/ValueSet/${stored.body.id}`, { ...vs, id: stored.body.id })).status, 200);
    t.equal(value(await check(), 'result'), true, 'the second process follows its change (its cached lookups are dropped)');
  });
}
