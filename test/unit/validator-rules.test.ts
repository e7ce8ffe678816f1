// Rules of the R4 specification the validator (src/fhir/validation/) applies beyond the
// StructureDefinitions: each case walks a small resource against its base definition and checks
// the errors found (their FHIRPath expression and a word of their message), and that the valid
// variant has none. The walk is synchronous: no terminology, no database.
import t from 'tap';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { catalog } from '../../src/fhir/conformance/catalog.ts';
import { loadDefinitions } from '../../src/fhir/definitions.ts';
import { Walker } from '../../src/fhir/validation/validator.ts';

await loadDefinitions();
catalog.loadPackages(new URL('../../profiles', import.meta.url).pathname);

function errors(resource: Resource): OperationOutcomeIssue[] {
  const sd = catalog.structure(`http://hl7.org/fhir/StructureDefinition/${resource.resourceType}`)!.sd;
  const w = new Walker({ unknownExtensions: 'error' });
  w.walkResource(resource, sd, resource.resourceType);
  return w.issues.filter((i) => i.severity === 'error');
}

/** "expression: text" of each error, for readable assertions. */
const shown = (resource: Resource) => errors(resource).map((i) => `${i.expression?.[0]}: ${i.details?.text}`);

function hasError(t: { ok: (value: unknown, message: string) => unknown }, resource: Resource, expression: string, word: RegExp): void {
  const found = shown(resource);
  t.ok(found.some((s) => s.startsWith(`${expression}: `) && word.test(s)), `an error at ${expression} matching ${word} (found: ${found.join(' | ') || 'none'})`);
}

const patient = (id?: string): Resource => ({ resourceType: 'Patient', ...(id ? { id } : {}) }) as Resource;
const composition = (id: string, refs: Record<string, unknown> = {}): Resource =>
  ({ resourceType: 'Composition', id, status: 'final', type: { text: 'note' }, date: '2024-01-01', author: [{ display: 'x' }], title: 't', ...refs }) as Resource;
const bundle = (type: string, entry: unknown[], extra: Record<string, unknown> = {}): Resource =>
  ({ resourceType: 'Bundle', type, ...(type === 'document' ? { identifier: { system: 'urn:ietf:rfc:3986', value: 'urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0' }, timestamp: '2024-01-01T00:00:00Z' } : {}), entry, ...extra }) as Resource;

t.test('Bundle: fullUrl is absolute and agrees with the resource id (bundle.html)', async (t) => {
  hasError(t, bundle('collection', [{ fullUrl: 'Patient/1', resource: patient('1') }]), 'Bundle.entry[0].fullUrl', /absolute/);
  hasError(t, bundle('collection', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('2') }]), 'Bundle.entry[0]', /type and id/);
  hasError(t, bundle('collection', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient() }]), 'Bundle.entry[0]', /no id/);
  t.same(shown(bundle('collection', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1') }, { fullUrl: 'urn:uuid:5d9588d8-3cd6-4b32-8fb7-ad13694e069d', resource: patient() }])), []);
  // A POST's resource gets its id from the server.
  t.same(shown(bundle('transaction', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient(), request: { method: 'POST', url: 'Patient' } }])), []);
});

t.test('Bundle: links and search results', async (t) => {
  const link = [{ relation: 'self', url: 'http://x.org/fhir/Patient?name=a' }];
  hasError(t, bundle('searchset', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1') }], { link: [...link, ...link] }), 'Bundle.link[1]', /only occur once/);
  hasError(t, bundle('searchset', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient(), search: { mode: 'match' } }], { link }), 'Bundle.entry[0].resource', /must have ids/);
  const obs = { resourceType: 'Observation', id: '1', status: 'final', code: { text: 'x' } };
  hasError(t, bundle('searchset', [{ fullUrl: 'http://x.org/fhir/Observation/1', resource: obs, search: { mode: 'match' } }], { link }), 'Bundle.entry[0].resource', /not a match/);
  hasError(t, bundle('searchset', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1'), search: { mode: 'outcome' } }], { link }), 'Bundle.entry[0].resource', /OperationOutcome/);
  t.same(shown(bundle('searchset', [{ fullUrl: 'http://x.org/fhir/Observation/1', resource: obs, search: { mode: 'include' } }, { fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1'), search: { mode: 'match' } }], { link })), []);
});

t.test('Bundle: references resolve by fullUrl (bundle.html, resolving references)', async (t) => {
  // Relative to the base of the referring entry's RESTful fullUrl: Patient/1 is http://x.org/fhir/Patient/1.
  const good = bundle('document', [
    { fullUrl: 'http://x.org/fhir/Composition/c', resource: composition('c', { subject: { reference: 'Patient/1' } }) },
    { fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1') },
  ]);
  t.same(shown(good), []);
  // A urn:uuid fullUrl has no base: the relative reference does not resolve in the document.
  const uuid = bundle('document', [
    { fullUrl: 'urn:uuid:10a67a86-a9ec-427e-ba3f-f042cef21733', resource: composition('c', { subject: { reference: 'Patient/1' } }) },
    { fullUrl: 'urn:uuid:2aaf815f-3ebe-4a03-9b87-05d0700313b2', resource: patient('1') },
  ]);
  hasError(t, uuid, 'Bundle.entry[0].resource.subject', /Can't find 'Patient\/1'/);
  hasError(t, uuid, 'Bundle.entry[1]', /cannot be reached/);
  // A reference whose type disagrees with the entry it resolves to.
  const org = { resourceType: 'Organization', id: 'o', name: 'o' };
  hasError(t, bundle('collection', [
    { fullUrl: 'urn:uuid:54fc3e09-e279-4b74-a8ff-2649ec968642', resource: { resourceType: 'Patient', managingOrganization: { reference: 'urn:uuid:5d9588d8-3cd6-4b32-8fb7-ad13694e069d', type: 'Organization' }, generalPractitioner: [{ reference: 'urn:uuid:5d9588d8-3cd6-4b32-8fb7-ad13694e069d' }] } },
    { fullUrl: 'urn:uuid:5d9588d8-3cd6-4b32-8fb7-ad13694e069d', resource: patient() },
  ]), 'Bundle.entry[0].resource.managingOrganization.reference', /not allowed here/);
  // Two versions of one resource: a version-specific reference picks one, a plain one is ambiguous.
  const v = (versionId: string) => ({ fullUrl: 'http://x.org/fhir/Organization/o', resource: { ...org, meta: { versionId } } });
  const versions = (reference: string) => bundle('collection', [{ fullUrl: 'http://x.org/fhir/Patient/1', resource: { ...patient('1'), managingOrganization: { reference } } }, v('1'), v('2')]);
  t.same(shown(versions('Organization/o/_history/2')), []);
  hasError(t, versions('Organization/o'), 'Bundle.entry[0].resource.managingOrganization.reference', /matches 2 entries/);
});

t.test('Bundle: a message holds its focus', async (t) => {
  const header = (reference: string) => ({ resourceType: 'MessageHeader', id: 'h', eventCoding: { system: 'http://x.org', code: 'e' }, source: { endpoint: 'http://x.org' }, focus: [{ reference }] });
  const msg = (reference: string) => bundle('message', [{ fullUrl: 'http://x.org/fhir/MessageHeader/h', resource: header(reference) }, { fullUrl: 'http://x.org/fhir/Patient/1', resource: patient('1') }], { identifier: { value: '1' }, timestamp: '2024-01-01T00:00:00Z' });
  t.same(shown(msg('Patient/1')), []);
  hasError(t, msg('Patient/2'), 'Bundle.entry[0].resource.focus[0]', /Can't find/);
});

t.test('Resources and datatypes: ids, type invariants, corrected invariants, extension urls, JSON properties', async (t) => {
  hasError(t, { resourceType: 'Location', id: 'a/b==' } as Resource, 'Location.id', /Invalid resource id/);
  hasError(t, { resourceType: 'Location', id: 'x'.repeat(65) } as Resource, 'Location.id', /Invalid resource id/);
  hasError(t, { resourceType: 'Location', id: 'l', contained: [{ resourceType: 'Organization', id: 'org_1', name: 'o' }], managingOrganization: { reference: '#org_1' } } as Resource, 'Location.contained[0].id', /Invalid resource id/);
  // per-1 sits on Period itself, not on Encounter.period.
  const encounter = (end: string) => ({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, period: { start: '2024-01-02', end } }) as Resource;
  hasError(t, encounter('2024-01-01'), 'Encounter.period', /per-1/);
  t.same(shown(encounter('2024-01-03')), []);
  // que-12 as its text says: more than one enableWhen needs enableBehavior.
  const q = (enableBehavior?: string) => ({ resourceType: 'Questionnaire', status: 'draft', item: [{ linkId: 'a', type: 'boolean' }, { linkId: 'b', type: 'string', ...(enableBehavior ? { enableBehavior } : {}), enableWhen: [{ question: 'a', operator: '=', answerBoolean: true }, { question: 'a', operator: 'exists', answerBoolean: true }] }] }) as Resource;
  hasError(t, q(), 'Questionnaire.item[1]', /que-12/);
  t.same(shown(q('any')), []);
  hasError(t, { resourceType: 'Patient', extension: [{ url: 'patient-x', valueString: 'x' }] } as Resource, 'Patient.extension[0].url', /absolute/);
  hasError(t, { resourceType: 'Patient', fhir_comments: ['DSTU2 only'] } as Resource, 'Patient.fhir_comments', /Unrecognized/);
  // Domains reserved for examples name illustrative extensions: a warning, even for a modifier.
  t.same(shown({ resourceType: 'Patient', modifierExtension: [{ url: 'http://example.org/fhir/StructureDefinition/x', valueBoolean: true }] } as Resource), []);
});

t.test('Datatypes and narrative: system URIs, canonicals, XHTML entities and links, extension contexts', async (t) => {
  hasError(t, { resourceType: 'Patient', identifier: [{ system: 'Location!', value: '1' }] } as Resource, 'Patient.identifier[0].system', /absolute URI/);
  hasError(t, { resourceType: 'Patient', maritalStatus: { coding: [{ system: 'v3-MaritalStatus', code: 'M' }] } } as Resource, 'Patient.maritalStatus.coding[0].system', /absolute URI/);
  const measure = (library: string) => ({ resourceType: 'Measure', status: 'draft', library: [library] }) as Resource;
  hasError(t, measure('Library/library-cms146-example'), 'Measure.library[0]', /absolute URL/);
  t.same(shown(measure('http://x.org/fhir/Library/l')), []);
  const narrative = (div: string) => ({ resourceType: 'Patient', text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${div}</div>` } }) as Resource;
  hasError(t, narrative('<p>Brand&reg;</p>'), 'Patient.text.div', /entity &reg;/);
  hasError(t, narrative('<p><a href="urn:uuid:7221aa91-d9e1-44fa-8b90-c5a8c7caeade">x</a></p>'), 'Patient.text.div', /scheme 'urn'/);
  t.same(shown(narrative('<p>A&amp;B &#174; <a href="https://x.org">x</a> <a href="#p1">y</a> <a href="Patient/1">z</a></p>')), []);
  // R4's own snapshots put structuredefinition-fhir-type on ElementDefinition.type, beyond its declared context.
  const fhirType = { url: 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type', valueUrl: 'string' };
  const sd = { resourceType: 'StructureDefinition', url: 'http://x.org/fhir/StructureDefinition/e', name: 'E', status: 'draft', kind: 'complex-type', abstract: false, type: 'Extension', context: [{ type: 'element', expression: 'Element' }], baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Extension', derivation: 'constraint', differential: { element: [{ id: 'Extension.id', path: 'Extension.id', type: [{ extension: [fhirType], code: 'http://hl7.org/fhirpath/System.String' }] }] } } as Resource;
  t.same(shown(sd), []);
});

t.test('Questionnaire: enableWhen names another question of the Questionnaire, outside the item', async (t) => {
  const q = (question: string) => ({ resourceType: 'Questionnaire', status: 'draft', item: [{ linkId: 'a', type: 'boolean' }, { linkId: 'g', type: 'group', enableWhen: [{ question, operator: '=', answerBoolean: true }], item: [{ linkId: 'c', type: 'boolean' }] }] }) as Resource;
  t.same(shown(q('a')), []);
  hasError(t, q('c'), 'Questionnaire.item[1].enableWhen[0].question', /one of its own items/);
  hasError(t, q('zz'), 'Questionnaire.item[1].enableWhen[0].question', /not an item/);
});
