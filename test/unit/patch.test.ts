// FHIR PATCH: the official FHIRPath Patch and JSON Patch test cases (fhir-test-cases/r4/patch),
// plus direct unit tests of applyJsonPatch / applyFhirPathPatch.
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Parameters, Patient, Resource } from '@medplum/fhirtypes';
import { applyFhirPathPatch, applyJsonPatch } from '../../src/fhir/patch.ts';
import { loadDefinitions } from '../../src/fhir/definitions.ts';
import { convertResource, elementChildren, parseXml, type XmlElement } from '../../src/fhir/xml.ts';
import { thrown } from '../helpers/thrown.ts';

const CASES_DIR = new URL('../../../shared/conformance/fhir-test-cases/r4/patch/', import.meta.url);

// xml-patch-tests.xml in the same folder is XML Patch (RFC 5261, XPath on XML documents): not a
// patch format this JSON-only server accepts, so it is not run. Every other official case is.

/** Narrative XHTML differs only in insignificant whitespace between the XML and the string forms. */
function normalizeXhtml(xhtml: string): string {
  return xhtml.replace(/\s+/g, ' ').replace(/>\s+</g, '><').trim();
}

function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = k === 'div' && typeof v === 'string' ? normalizeXhtml(v) : normalize(v);
    return out;
  }
  return value;
}


function single(element: XmlElement, name: string): XmlElement | undefined {
  const found = elementChildren(element, name);
  return found[0];
}

t.test('official FHIRPath Patch cases (fhir-patch-tests.xml)', async (t) => {
  await loadDefinitions(); // the XML cases are read as FHIR JSON, typed by the R4 definitions
  const root = parseXml(readFileSync(new URL('fhir-patch-tests.xml', CASES_DIR), 'utf8'));
  const cases = elementChildren(root, 'case');
  t.ok(cases.length > 0, 'found the official cases');
  let passed = 0;
  for (const c of cases) {
    const name = c.getAttribute('name') ?? '(unnamed)';
    await t.test(name, async (t) => {
      const input = convertResource(elementChildren(single(c, 'input')!)[0]);
      const diff = convertResource(elementChildren(single(c, 'diff')!)[0]) as Parameters;
      const before = structuredClone(input);
      const output = single(c, 'output');
      const error = single(c, 'error');
      if (output) {
        const expected = convertResource(elementChildren(output)[0]);
        const actual = applyFhirPathPatch(input, diff);
        t.strictSame(normalize(actual), normalize(expected), 'patched resource equals the expected output');
      } else if (error) {
        const e = thrown(() => applyFhirPathPatch(input, diff));
        t.ok(e, `throws (expected: ${error.getAttribute('msg')})`);
        t.equal(e?.status, 422, 'as 422 Unprocessable Entity');
        t.comment(`message: ${e?.message}`);
      } else {
        t.fail('case has neither output nor error');
      }
      t.strictSame(input, before, 'input not mutated');
      passed++;
    });
  }
  t.comment(`${passed} official FHIRPath Patch cases run`);
});

interface JsonPatchCase {
  comment: string;
  doc: unknown;
  patch: unknown;
  expected?: unknown;
  error?: string;
}

t.test('official JSON Patch cases (json-patch-tests.json)', async (t) => {
  const cases = JSON.parse(readFileSync(new URL('json-patch-tests.json', CASES_DIR), 'utf8')) as JsonPatchCase[];
  t.ok(cases.length > 0, 'found the official cases');
  for (const c of cases) {
    await t.test(c.comment, async (t) => {
      const doc = c.doc as Resource;
      const before = structuredClone(doc);
      if (c.error !== undefined) {
        const e = thrown(() => applyJsonPatch(doc, c.patch));
        t.ok(e, `throws (expected: ${c.error})`);
        t.equal(e?.status, 422, 'as 422 Unprocessable Entity');
      } else {
        t.strictSame(applyJsonPatch(doc, c.patch), c.expected, 'patched document equals the expected one');
      }
      t.strictSame(doc, before, 'input not mutated');
    });
  }
});


const patient: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  active: true,
  name: [{ family: 'Martin', given: ['Anne', 'Marie'] }],
  identifier: [
    { system: 'urn:a', value: '1' },
    { system: 'urn:b', value: '2' },
  ],
};

t.test('applyJsonPatch', async (t) => {
  await t.test('applies operations in order', async (t) => {
    const input = structuredClone(patient);
    const result = applyJsonPatch(input, [
      { op: 'test', path: '/active', value: true },
      { op: 'replace', path: '/active', value: false },
      { op: 'add', path: '/name/0/given/-', value: 'Claire' },
      { op: 'remove', path: '/identifier/0' },
      { op: 'copy', from: '/name/0/family', path: '/name/0/text' },
      { op: 'move', from: '/id', path: '/language' },
    ]);
    t.strictSame(result, {
      resourceType: 'Patient',
      language: 'p1',
      active: false,
      name: [{ family: 'Martin', given: ['Anne', 'Marie', 'Claire'], text: 'Martin' }],
      identifier: [{ system: 'urn:b', value: '2' }],
    });
    t.strictSame(input, patient, 'input not mutated');
    t.not(result, input);
  });

  await t.test('an empty patch returns an equal copy', async (t) => {
    const result = applyJsonPatch(patient, []);
    t.strictSame(result, patient);
    t.not(result, patient);
  });

  await t.test('a failing test operation is 422', async (t) => {
    const e = thrown(() => applyJsonPatch(patient, [{ op: 'test', path: '/active', value: false }]));
    t.equal(e?.status, 422);
    t.equal(e?.issues[0].code, 'processing');
    t.match(e?.message, /test failed/);
  });

  await t.test('a path that does not exist is 422', async (t) => {
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'remove', path: '/gender' }]))?.status, 422);
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'replace', path: '/name/5', value: {} }]))?.status, 422);
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'add', path: '/contact/0/gender', value: 'male' }]))?.status, 422);
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'add', path: '/name/9', value: {} }]))?.status, 422);
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'move', from: '/gender', path: '/x' }]))?.status, 422);
    t.equal(thrown(() => applyJsonPatch(patient, [{ op: 'test', path: '/toString', value: 1 }]))?.status, 422);
  });

  await t.test('a malformed patch document is 400', async (t) => {
    const malformed: unknown[] = [
      { op: 'add', path: '/active', value: true },
      'not an array',
      [{ path: '/active', value: true }],
      [{ op: 'frobnicate', path: '/active' }],
      [{ op: 'add', path: 'active', value: true }],
      [{ op: 'add', path: '/active' }],
      [{ op: 'move', path: '/active' }],
      [{ op: 'remove', path: '/a~2b' }],
      [{ op: 'add', path: '/__proto__/polluted', value: true }],
      [null],
    ];
    for (const ops of malformed) {
      const e = thrown(() => applyJsonPatch(patient, ops));
      t.equal(e?.status, 400, JSON.stringify(ops));
      t.equal(e?.issues[0].code, 'invalid');
    }
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  });

  await t.test('a failed patch leaves the input untouched', async (t) => {
    const input = structuredClone(patient);
    thrown(() => applyJsonPatch(input, [{ op: 'remove', path: '/identifier' }, { op: 'test', path: '/id', value: 'other' }]));
    t.strictSame(input, patient);
  });
});

function operation(parts: Record<string, unknown>[]): Parameters['parameter'] & object {
  return [{ name: 'operation', part: parts as never }];
}

function fhirPathPatch(...ops: Record<string, unknown>[][]): Parameters {
  return { resourceType: 'Parameters', parameter: ops.flatMap((parts) => operation(parts)) };
}

const type = (code: string) => ({ name: 'type', valueCode: code });
const path = (p: string) => ({ name: 'path', valueString: p });

t.test('applyFhirPathPatch', async (t) => {
  await t.test('choice types, primitive extensions, insert into an empty list', async (t) => {
    const input: Patient = { ...structuredClone(patient), deceasedBoolean: false, birthDate: '1970-01-01' };
    const result = applyFhirPathPatch(
      input,
      fhirPathPatch(
        [type('replace'), path('Patient.deceased'), { name: 'value', valueDateTime: '2020-01-01' }],
        [type('add'), path('Patient.birthDate'), { name: 'name', valueString: 'extension' }, {
          name: 'value',
          part: [
            { name: 'url', valueUri: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime' },
            { name: 'value', valueDateTime: '1970-01-01T10:00:00Z' },
          ],
        }],
        [type('insert'), path('Patient.telecom'), { name: 'index', valueInteger: 0 }, { name: 'value', valueContactPoint: { system: 'phone', value: '1' } }],
        [type('insert'), path('Patient.name[0].given'), { name: 'index', valueInteger: 1 }, { name: 'value', valueString: 'B' }],
        [type('delete'), path("Patient.identifier.where(system = 'urn:a')")],
        [type('delete'), path("Patient.identifier.where(system = 'urn:zzz')")]
      )
    ) as Patient;
    t.strictSame(result, {
      resourceType: 'Patient',
      id: 'p1',
      active: true,
      name: [{ family: 'Martin', given: ['Anne', 'B', 'Marie'] }],
      identifier: [{ system: 'urn:b', value: '2' }],
      deceasedDateTime: '2020-01-01',
      birthDate: '1970-01-01',
      _birthDate: {
        extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1970-01-01T10:00:00Z' }],
      },
      telecom: [{ system: 'phone', value: '1' }],
    });
    t.equal(input.deceasedBoolean, false, 'input not mutated');
  });

  await t.test('semantic violations are 422', async (t) => {
    const cases: [string, Parameters][] = [
      ['delete of several elements', fhirPathPatch([type('delete'), path('Patient.identifier')])],
      ['replace of nothing', fhirPathPatch([type('replace'), path('Patient.gender'), { name: 'value', valueCode: 'male' }])],
      ['add to an existing single element', fhirPathPatch([type('add'), path('Patient'), { name: 'name', valueString: 'active' }, { name: 'value', valueBoolean: false }])],
      ['wrong value type', fhirPathPatch([type('replace'), path('Patient.active'), { name: 'value', valueCodeableConcept: { text: 'x' } }])],
      ['unknown element', fhirPathPatch([type('add'), path('Patient'), { name: 'name', valueString: 'colour' }, { name: 'value', valueString: 'x' }])],
      ['insert index out of range', fhirPathPatch([type('insert'), path('Patient.identifier'), { name: 'index', valueInteger: 3 }, { name: 'value', valueIdentifier: { value: 'x' } }])],
      ['move out of range', fhirPathPatch([type('move'), path('Patient.identifier'), { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 2 }])],
      ['insert into part of a list', fhirPathPatch([type('insert'), path("Patient.identifier.where(system = 'urn:a')"), { name: 'index', valueInteger: 0 }, { name: 'value', valueIdentifier: { value: 'x' } }])],
      ['path outside the resource', fhirPathPatch([type('delete'), path("%factory.Identifier('a', 'b')")])],
    ];
    for (const [label, parameters] of cases) {
      const e = thrown(() => applyFhirPathPatch(patient, parameters));
      t.equal(e?.status, 422, label);
      t.match(e?.issues[0].expression, ['Parameters.parameter[0]'], `${label}: points at the operation`);
    }
  });

  await t.test('malformed patches are 400', async (t) => {
    const cases: [string, unknown][] = [
      ['not Parameters', { resourceType: 'Patient' }],
      ['parameter not named operation', { resourceType: 'Parameters', parameter: [{ name: 'op', part: [type('delete'), path('Patient.id')] }] }],
      ['unknown type', fhirPathPatch([type('upsert'), path('Patient.id')])],
      ['missing path', fhirPathPatch([type('delete')])],
      ['missing value', fhirPathPatch([type('replace'), path('Patient.active')])],
      ['missing name', fhirPathPatch([type('add'), path('Patient'), { name: 'value', valueBoolean: true }])],
      ['missing index', fhirPathPatch([type('insert'), path('Patient.identifier'), { name: 'value', valueIdentifier: {} }])],
      ['negative index', fhirPathPatch([type('insert'), path('Patient.identifier'), { name: 'index', valueInteger: -1 }, { name: 'value', valueIdentifier: {} }])],
      ['two values', fhirPathPatch([type('replace'), path('Patient.active'), { name: 'value', valueBoolean: true, valueString: 'x' }])],
      ['unknown part', fhirPathPatch([type('delete'), path('Patient.id'), { name: 'colour', valueString: 'x' }])],
      ['FHIRPath syntax error', fhirPathPatch([type('delete'), path('Patient.name[')])],
    ];
    for (const [label, parameters] of cases) {
      const e = thrown(() => applyFhirPathPatch(patient, parameters as Parameters));
      t.equal(e?.status, 400, label);
      t.equal(e?.issues[0].code, 'invalid', label);
    }
  });
});
