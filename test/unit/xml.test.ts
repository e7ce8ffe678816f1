// FHIR XML → FHIR JSON (src/fhir/xml.ts), without a database: the official test cases' XML/JSON
// twins, every valid official JSON example sent through XML and back, every official XML case
// either read or refused with a 400, then the XML and JSON representation rules one by one.
import t, { type Test } from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { Resource } from '@medplum/fhirtypes';
import { loadDefinitions } from '../../src/fhir/definitions.ts';
import { FhirError } from '../../src/fhir/outcome.ts';
import { validateBase } from '../../src/fhir/validate.ts';
import { parseFhirXml, parseXml, serializeXhtml } from '../../src/fhir/xml.ts';
import { thrown } from '../helpers/thrown.ts';

const CASES = new URL('../../../shared/conformance/fhir-test-cases/', import.meta.url);
const R4_DIR = new URL('r4/', CASES);
const VALIDATOR_DIR = new URL('validator/', CASES);
const FHIR = 'xmlns="http://hl7.org/fhir"';
const XHTML = 'xmlns="http://www.w3.org/1999/xhtml"';

type Json = Record<string, any>;

await loadDefinitions();

/** Files under dir (a URL ending in /) with this extension, as paths relative to CASES. */
function files(dir: URL, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const url = new URL(name, dir);
    if (statSync(url).isDirectory()) out.push(...files(new URL(`${name}/`, dir), ext));
    else if (name.endsWith(ext)) out.push(url.pathname.slice(CASES.pathname.length));
  }
  return out;
}

function readJson(path: string): Json {
  return JSON.parse(readFileSync(new URL(path, CASES), 'utf8').replace(/^\uFEFF/, '')) as Json;
}


/** The same XHTML, serialized the one way (attribute quoting, escapes, empty elements). */
function canonicalXhtml(div: string): string {
  return serializeXhtml(parseXml(div));
}

/** Narratives reformatted by a publisher differ in whitespace only: compare them without it. */
function looseXhtml(div: string): string {
  return canonicalXhtml(div).replace(/\s+/g, ' ').replace(/> </g, '><').replace(/ </g, '<').replace(/> /g, '>');
}

/** Leaf paths where a and b differ (divs compared by looseXhtml). */
function differences(a: unknown, b: unknown, path = ''): string[] {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => differences((a as Json)[k], (b as Json)[k], Array.isArray(a) ? `${path}[${k}]` : path ? `${path}.${k}` : k));
  }
  if (path.endsWith('.div') && typeof a === 'string' && typeof b === 'string' && looseXhtml(a) === looseXhtml(b)) return [];
  return a === b ? [] : [path];
}

t.test('official XML/JSON twins read the same', async (t) => {
  // The r4 folder has no twin pair (each example is published in one format only); the validator
  // folder has four, each different on purpose or by revision. Every pair found is compared:
  // equal, or listed here with what differs and why.
  const knownDifferences: Record<string, { reason: string; xmlError?: RegExp; paths?: string[] }> = {
    'validator/Observation-ex-pain': {
      reason: 'a deliberately invalid case, differently in each format: the XML has an undefined attribute and a <value> element inside valueInteger',
      xmlError: /Observation\.status: unknown attribute "something"/,
    },
    'validator/xml-bad-entities': {
      reason: 'the case checks that an undeclared entity (&reg;) is refused: the XML is not well-formed',
      xmlError: /The entity "reg" was referenced, but not declared/,
    },
    'validator/bundle-signed-good': {
      reason: 'a signature is made per format (its time and data differ); the JSON narrative has an extra anchor',
      paths: ['entry[0].resource.text.div', 'signature.when', 'signature.data'],
    },
    'validator/ips-link': {
      reason: 'two revisions of the example: timestamps, narrative, narrative-link extensions and an entry id differ',
      paths: [
        'timestamp',
        'entry[0].resource.text.extension[0].extension[1].valueUri',
        'entry[0].resource.text.extension[1].extension[0].valueString',
        'entry[0].resource.text.extension[1].extension[1].valueUri',
        'entry[0].resource.text.extension[1].extension[2]',
        'entry[0].resource.text.div',
        'entry[1].id',
        'entry[8].resource.effectiveDateTime',
      ],
    },
  };
  const twins = [...files(R4_DIR, '.xml'), ...files(VALIDATOR_DIR, '.xml')]
    .map((f) => f.slice(0, -4))
    .filter((base) => statSync(new URL(`${base}.json`, CASES), { throwIfNoEntry: false })?.isFile());
  t.equal(twins.filter((b) => b.startsWith('r4/')).length, 0, 'r4: no XML example has a JSON twin');
  t.ok(twins.length >= 4, `${twins.length} twin pairs in all`);
  let equal = 0;
  for (const base of twins) {
    const known = knownDifferences[base];
    const json = readJson(`${base}.json`);
    let xml: Resource | undefined;
    const error = thrown(() => (xml = parseFhirXml(readFileSync(new URL(`${base}.xml`, CASES)))));
    if (known?.xmlError) {
      t.equal(error?.status, 400, `${base}: the XML is refused (${known.reason})`);
      t.match(error?.message, known.xmlError, `${base}: ${error?.message}`);
      continue;
    }
    t.notOk(error, `${base}: the XML is read${error ? `: ${error.message}` : ''}`);
    const paths = differences(xml, json);
    if (known) t.strictSame(paths.sort(), [...known.paths!].sort(), `${base}: differs exactly where listed (${known.reason})`);
    else {
      t.strictSame(paths, [], `${base}: XML and JSON read the same`);
      equal++;
    }
  }
  for (const base of Object.keys(knownDifferences)) t.ok(twins.includes(base), `${base} is still a twin pair`);
  t.comment(`${twins.length} twin pairs: ${equal} equal, ${twins.length - equal} with listed differences`);
});

// A JSON → XML writer from xml.html and json.html alone (no definitions): what it writes, the
// converter must read back into the same JSON, which takes the definitions to get right.
function escapeAttribute(v: string): string {
  return v.replace(/[&<"\t\n\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' })[c]!);
}

function resourceToXml(resource: Json): string {
  return `<${resource.resourceType} ${FHIR}>${propertiesToXml(resource, true, false)}</${resource.resourceType}>`;
}

function propertiesToXml(object: Json, isResource: boolean, isExtension: boolean): string {
  let out = '';
  for (const name of new Set(Object.keys(object).map((k) => (k.startsWith('_') ? k.slice(1) : k)))) {
    if (name === 'resourceType' || (!isResource && name === 'id') || (isExtension && name === 'url')) continue;
    const values = [object[name] ?? []].flat();
    const extras = [object[`_${name}`] ?? []].flat();
    for (let i = 0; i < Math.max(values.length, extras.length); i++) out += elementToXml(name, values[i] ?? null, extras[i] ?? null);
  }
  return out;
}

function elementToXml(name: string, value: any, extra: Json | null): string {
  if (value !== null && typeof value === 'object') {
    if (typeof value.resourceType === 'string') return `<${name}>${resourceToXml(value)}</${name}>`;
    const isExtension = name === 'extension' || name === 'modifierExtension';
    const attributes = (typeof value.id === 'string' ? ` id="${escapeAttribute(value.id)}"` : '') + (isExtension ? ` url="${escapeAttribute(value.url)}"` : '');
    return `<${name}${attributes}>${propertiesToXml(value, false, isExtension)}</${name}>`;
  }
  if (name === 'div') return value; // the XHTML itself
  const attributes = (typeof extra?.id === 'string' ? ` id="${escapeAttribute(extra.id)}"` : '') + (value === null ? '' : ` value="${escapeAttribute(String(value))}"`);
  return `<${name}${attributes}>${extra ? propertiesToXml(extra, false, false) : ''}</${name}>`;
}

/** JSON as the converter writes it: companion arrays as long as their values, no empty arrays (XML cannot say []), one XHTML serialization. */
function normalizeJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeJson);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = k === 'div' && typeof v === 'string' ? canonicalXhtml(v) : normalizeJson(v);
  }
  for (const k of Object.keys(out)) {
    const companion = k.startsWith('_') ? k.slice(1) : `_${k}`;
    if (Array.isArray(out[k]) && Array.isArray(out[companion])) while (out[k].length < out[companion].length) out[k].push(null);
  }
  return out;
}

t.test('every valid official JSON example, written as XML, reads back the same', async (t) => {
  let same = 0;
  let skipped = 0;
  let refused = 0;
  for (const path of [...files(R4_DIR, '.json'), ...files(VALIDATOR_DIR, '.json')]) {
    let json: Json;
    try {
      json = readJson(path);
      if (typeof json.resourceType !== 'string') throw new Error('not a resource');
      validateBase(structuredClone(json) as Resource);
    } catch {
      skipped++; // not a resource, or invalid (many validator cases are, on purpose)
      continue;
    }
    const xml = resourceToXml(json);
    let expected: unknown;
    try {
      expected = normalizeJson(json);
    } catch {
      // Its narrative is not well-formed XHTML (xml-bad-entities.json): as XML, it is refused.
      t.equal(thrown(() => parseFhirXml(xml))?.status, 400, `${path}: refused as XML, like its narrative`);
      refused++;
      continue;
    }
    let actual: Resource | undefined;
    const error = thrown(() => (actual = parseFhirXml(xml)));
    if (error) t.fail(`${path}: ${error.message}`);
    else if (isDeepStrictEqual(actual, expected)) same++;
    else t.strictSame(actual, expected, `${path} reads back the same`);
  }
  t.ok(same > 900, `${same} examples read back the same (${skipped} not valid resources, ${refused} refused)`);
});

t.test('every official XML case is read, or refused with a 400 OperationOutcome (never another error)', async (t) => {
  const index = readJson('validator/r4-validator-cases.derived.json') as { cases: { file: string; expected: string; name: string }[] };
  const expected = new Map(index.cases.map((c) => [`validator/${c.file}`, c.expected]));
  let read = 0;
  const refusedCases: string[] = [];
  for (const path of [...files(R4_DIR, '.xml'), ...files(VALIDATOR_DIR, '.xml')]) {
    let error: unknown;
    try {
      parseFhirXml(readFileSync(new URL(path, CASES)));
      read++;
      continue;
    } catch (e) {
      error = e;
    }
    if (!(error instanceof FhirError)) {
      t.fail(`${path}: ${String(error)}`);
      continue;
    }
    t.equal(error.status, 400, `${path}: 400`);
    t.equal(error.outcome.resourceType, 'OperationOutcome');
    t.equal(error.issues[0].code, 'structure');
    // A validator case the XML reader refuses must be one the reference validator finds invalid.
    if (expected.has(path)) {
      t.equal(expected.get(path), 'invalid', `${path} is an invalid case: ${error.message}`);
      refusedCases.push(path);
    }
  }
  t.ok(read > 250, `${read} XML files read`);
  t.ok(refusedCases.length >= 5, `refused validator cases, all expected invalid: ${refusedCases.join(', ')}`);
});

t.test('XML representation rules', async (t) => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!-- comments are not content -->
<Patient ${FHIR} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://hl7.org/fhir patient.xsd">
  <id value="p1"/>
  <meta><versionId value="3"/><profile value="http://example.org/a"/></meta>
  <text>
    <status value="generated"/>
    <div ${XHTML} xml:lang="fr"><!-- dropped --><p class="a&quot;b">Tom &amp; Jerry &lt;3<br/>caf&#233; <b>x</b></p></div>
  </text>
  <contained><Organization><id value="o1"/><name value="Line 1&#10;Line 2"/></Organization></contained>
  <extension url="http://example.org/age"><valueAge><value value="42.50"/><system value="http://unitsofmeasure.org"/><code value="a"/></valueAge></extension>
  <modifierExtension url="http://example.org/flag"><valueBoolean value="true"/></modifierExtension>
  <identifier id="i1"><system value="urn:x"/><value value="  padded  "/></identifier>
  <active value=" true "/>
  <name>
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given id="g2"><extension url="http://example.org/x"><valueString value="second"/></extension></given>
    <given value="James"><!-- a comment inside --></given>
  </name>
  <telecom><system value="phone"/><value value="a
b	c"/><rank value=" 1 "/></telecom>
  <birthDate value="1974-12-25">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime"><valueDateTime value="1974-12-25T14:35:45-05:00"/></extension>
  </birthDate>
  <deceasedBoolean value="false"/>
  <multipleBirthInteger value="-0"/>
  <contact><name><text value="Contact"/></name></contact>
  <managingOrganization><reference value="#o1"/></managingOrganization>
</Patient>
<?trailing processing-instruction?>
`;
  t.strictSame(parseFhirXml(xml), {
    resourceType: 'Patient',
    id: 'p1',
    meta: { versionId: '3', profile: ['http://example.org/a'] },
    text: { status: 'generated', div: `<div ${XHTML} xml:lang="fr"><p class="a&quot;b">Tom &amp; Jerry &lt;3<br/>café <b>x</b></p></div>` },
    contained: [{ resourceType: 'Organization', id: 'o1', name: 'Line 1\nLine 2' }],
    extension: [{ url: 'http://example.org/age', valueAge: { value: 42.5, system: 'http://unitsofmeasure.org', code: 'a' } }],
    modifierExtension: [{ url: 'http://example.org/flag', valueBoolean: true }],
    identifier: [{ id: 'i1', system: 'urn:x', value: '  padded  ' }],
    active: true,
    name: [
      {
        family: 'Chalmers',
        given: ['Peter', null, 'James'],
        _given: [null, { id: 'g2', extension: [{ url: 'http://example.org/x', valueString: 'second' }] }, null],
      },
    ],
    telecom: [{ system: 'phone', value: 'a b c', rank: 1 }],
    birthDate: '1974-12-25',
    _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1974-12-25T14:35:45-05:00' }] },
    deceasedBoolean: false,
    multipleBirthInteger: -0,
    contact: [{ name: { text: 'Contact' } }],
    managingOrganization: { reference: '#o1' },
  });

  t.test('resources in Bundle entries and Parameters, numbers, nested backbone elements', async (t) => {
    const bundle = parseFhirXml(`<Bundle ${FHIR}><type value="transaction"/>
      <entry><fullUrl value="urn:uuid:1"/><resource><Observation><status value="final"/><code><text value="w"/></code>
        <valueQuantity><value value="72.0"/><unit value="kg"/></valueQuantity>
        <component><code><text value="a"/></code><valueInteger value="3"/></component>
        <component><code><text value="b"/></code><valueRatio><numerator><value value="1e3"/></numerator></valueRatio></component>
      </Observation></resource><request><method value="POST"/><url value="Observation"/></request></entry>
      <entry><resource><Parameters><parameter><name value="r"/><resource><Patient><active value="false"/></Patient></resource></parameter>
        <parameter><name value="p"/><part><name value="n"/><valuePositiveInt value="+5"/></part><part><name value="u"/><valueUnsignedInt value="0"/></part></parameter>
      </Parameters></resource></entry>
    </Bundle>`);
    t.strictSame(bundle, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:1',
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { text: 'w' },
            valueQuantity: { value: 72, unit: 'kg' },
            component: [
              { code: { text: 'a' }, valueInteger: 3 },
              { code: { text: 'b' }, valueRatio: { numerator: { value: 1000 } } },
            ],
          },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: {
            resourceType: 'Parameters',
            parameter: [
              { name: 'r', resource: { resourceType: 'Patient', active: false } },
              { name: 'p', part: [{ name: 'n', valuePositiveInt: 5 }, { name: 'u', valueUnsignedInt: 0 }] },
            ],
          },
        },
      ],
    });
  });

  t.test('elements defined by reference (Questionnaire.item.item) and profiled types keep their base cardinality', async (t) => {
    const q = parseFhirXml(`<Questionnaire ${FHIR}><status value="draft"/>
      <item><linkId value="1"/><type value="group"/><item><linkId value="1.1"/><type value="decimal"/><initial><valueDecimal value="0.10"/></initial></item></item>
    </Questionnaire>`);
    t.strictSame(q, {
      resourceType: 'Questionnaire',
      status: 'draft',
      item: [{ linkId: '1', type: 'group', item: [{ linkId: '1.1', type: 'decimal', initial: [{ valueDecimal: 0.1 }] }] }],
    });
    const dose = parseFhirXml(`<MedicationRequest ${FHIR}><status value="active"/><intent value="order"/><subject><reference value="Patient/1"/></subject>
      <medicationCodeableConcept><text value="m"/></medicationCodeableConcept>
      <dosageInstruction><doseAndRate><doseQuantity><value value="2"/></doseQuantity></doseAndRate></dosageInstruction>
    </MedicationRequest>`) as Json;
    t.strictSame(dose.dosageInstruction, [{ doseAndRate: [{ doseQuantity: { value: 2 } }] }], 'SimpleQuantity reads as Quantity; Dosage.doseAndRate repeats');
  });

  t.test('namespaces: prefixes, a prefixed XHTML div, foreign attributes ignored', async (t) => {
    const r = parseFhirXml(`<f:Patient xmlns:f="http://hl7.org/fhir" xmlns:o="urn:other" o:note="ignored"><f:text><f:status value="generated"/>
      <h:div xmlns:h="http://www.w3.org/1999/xhtml"><h:p>hi<h:span xml:lang="en" o:x="1">!</h:span></h:p></h:div></f:text><f:active value="true"/></f:Patient>`);
    t.strictSame(r, {
      resourceType: 'Patient',
      text: { status: 'generated', div: `<div ${XHTML}><p>hi<span xmlns:o="urn:other" xml:lang="en" o:x="1">!</span></p></div>` },
      active: true,
    });
  });

  t.test('whitespace: attribute values as XML normalizes them, never trimmed', async (t) => {
    const r = parseFhirXml(`<Patient ${FHIR}>\r\n<name><text value=" a\r\nb &#13;&#10;c&#9;d "/></name><gender value="\tmale"/></Patient>`) as Json;
    t.equal(r.name[0].text, ' a b \r\nc\td ', 'literal line breaks and tabs become spaces; character references stay');
    t.equal(r.gender, ' male', 'a code keeps its (invalid) whitespace for validation to judge');
  });

  t.test('a UTF-8 byte order mark and bytes are accepted', async (t) => {
    const bytes = new TextEncoder().encode(`\uFEFF<Patient ${FHIR}><name><family value="Müller"/></name></Patient>`);
    t.strictSame(parseFhirXml(bytes), { resourceType: 'Patient', name: [{ family: 'Müller' }] });
  });
});

/** Asserts a 400 OperationOutcome issue of code `structure` whose text matches, optionally with its expression. */
function refused(t: Test, xml: string | Uint8Array, message: RegExp, expression?: string): void {
  const error = thrown(() => parseFhirXml(xml));
  t.equal(error?.status, 400, `400 for ${message}`);
  t.equal(error?.issues[0].code, 'structure');
  t.equal(error?.outcome.resourceType, 'OperationOutcome');
  t.match(error?.message, message);
  if (expression !== undefined) t.strictSame(error?.issues[0].expression, [expression]);
}

t.test('malformed XML is a 400 naming the problem and where', async (t) => {
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['empty', '', /has no root element/],
    ['plain text', 'hello', /text is not allowed before the root element/],
    ['JSON', '{"resourceType":"Patient"}', /text is not allowed before the root element/],
    ['unclosed', `<Patient ${FHIR}>`, /<Patient> \(line 1, column 1\) is not closed/],
    ['mismatched end tag', `<Patient ${FHIR}><name></Name></Patient>`, /end tag <\/Name> does not match the start tag <name>/],
    ['two roots', `<Patient ${FHIR}/><Patient ${FHIR}/>`, /only comments and processing instructions may follow the root element/],
    ['text after the root', `<Patient ${FHIR}/>x`, /may follow the root element \(line 1, column 39\)/],
    ['undeclared entity', `<Patient ${FHIR}><text><status value="generated"/><div ${XHTML}>&nbsp;</div></text></Patient>`, /The entity "nbsp" was referenced, but not declared/],
    ['bare ampersand', `<Patient ${FHIR}><name><text value="a & b"/></name></Patient>`, /malformed reference/],
    ['DOCTYPE', `<!DOCTYPE Patient [<!ENTITY x "y">]><Patient ${FHIR}/>`, /DOCTYPE declarations are not allowed/],
    ['unquoted attribute', `<Patient ${FHIR}><active value=true/></Patient>`, /attribute values must be quoted/],
    ['duplicate attribute', `<Patient ${FHIR}><active value="true" value="false"/></Patient>`, /the attribute value appears twice/],
    ['< in an attribute', `<Patient ${FHIR}><name><text value="a<b"/></name></Patient>`, /'<' is not allowed in an attribute value/],
    ['invalid character reference', `<Patient ${FHIR}><name><text value="&#0;"/></name></Patient>`, /&#0; is not a character allowed in XML/],
    ['control character', `<Patient ${FHIR}>\u0001</Patient>`, /character U\+0001 is not allowed/],
    ['an entity named like an Object property', `<Patient ${FHIR}><name><text value="&constructor;"/></name></Patient>`, /The entity "constructor" was referenced, but not declared/],
    ['undeclared prefix', '<f:Patient/>', /the namespace prefix "f" of f:Patient is not declared/],
    ["'--' in a comment", `<Patient ${FHIR}><!-- a -- b --></Patient>`, /'--' is not allowed inside a comment/],
    ['not UTF-8', Uint8Array.from([...new TextEncoder().encode(`<Patient ${FHIR}><name><family value="M`), 0xfc, ...new TextEncoder().encode('ller"/></name></Patient>')]), /not valid UTF-8/],
    ['another encoding', `<?xml version="1.0" encoding="ISO-8859-1"?><Patient ${FHIR}/>`, /declares encoding "ISO-8859-1"; FHIR XML is always UTF-8/],
    ['declaration not first', ` <?xml version="1.0"?><Patient ${FHIR}/>`, /the XML declaration is only allowed at the very start/],
    ['nesting too deep', `<Patient ${FHIR}>${'<x>'.repeat(1200)}`, /nested more than 1000 deep/],
  ];
  for (const [name, xml, message] of cases) t.test(name, async (t) => refused(t, xml, message));

  t.test('any truncation of a valid document is a 400, never another error', async (t) => {
    const doc = `<?xml version="1.0"?><Patient ${FHIR}><!--c--><text><status value="generated"/><div ${XHTML}><p a="1">x&amp;<![CDATA[<y>]]></p></div></text><name><given value="A&#233;"/></name></Patient>`;
    t.ok(parseFhirXml(doc));
    let statuses = 0;
    for (let i = 0; i < doc.length - 1; i++) {
      const error = thrown(() => parseFhirXml(doc.slice(0, i)));
      if (error?.status === 400) statuses++;
    }
    t.equal(statuses, doc.length - 1, 'every prefix refused with 400');
  });
});

t.test('XML that is not FHIR is a 400 naming the element and its path', async (t) => {
  refused(t, '<Patient/>', /<Patient> \(no namespace\) is not a FHIR resource: resources are in the namespace http:\/\/hl7\.org\/fhir/);
  refused(t, '<Patient xmlns="http://hl7.org/fhir/"/>', /in the namespace http:\/\/hl7\.org\/fhir\/ is not a FHIR resource/);
  refused(t, `<Patient ${XHTML}/>`, /is not a FHIR resource/);
  refused(t, `<Unicorn ${FHIR}/>`, /<Unicorn> is not a FHIR R4 resource type/);
  refused(t, `<HumanName ${FHIR}/>`, /<HumanName> is not a FHIR R4 resource type/);
  refused(t, `<Patient ${FHIR} id="x"/>`, /Patient: unknown attribute "id" on <Patient> .*no attributes are allowed here/, 'Patient');

  refused(t, `<Patient ${FHIR}><foo value="1"/></Patient>`, /Patient\.foo: unknown element <foo>: Patient has no element "foo" \(line 1, column 38\)/, 'Patient.foo');
  refused(t, `<Patient ${FHIR}><constructor value="1"/></Patient>`, /Patient\.constructor: unknown element <constructor>/, 'Patient.constructor');
  refused(t, `<Patient ${FHIR}><name><__proto__/></name></Patient>`, /Patient\.name\[0\]\.__proto__: unknown element <__proto__>/);
  refused(t, `<Patient ${FHIR}><name><family value="X"/><foo value="1"/></name></Patient>`, /Patient\.name\[0\]\.foo: unknown element <foo>: HumanName has no element "foo"/, 'Patient.name[0].foo');
  refused(
    t,
    `<Bundle ${FHIR}><type value="collection"/><entry><resource><Patient><name><bar/></name></Patient></resource></entry></Bundle>`,
    /Bundle\.entry\[0\]\.resource\.name\[0\]\.bar: unknown element <bar>/,
    'Bundle.entry[0].resource.name[0].bar'
  );
  refused(t, `<Patient ${FHIR}><contained><Organization><nom value="x"/></Organization></contained></Patient>`, /Patient\.contained\[0\]\.nom: unknown element/, 'Patient.contained[0].nom');
  refused(t, `<Patient ${FHIR}><deceasedString value="x"/></Patient>`, /Patient\.deceasedString: unknown element/, 'Patient.deceasedString');
  refused(t, `<Patient ${FHIR}><deceased value="true"/></Patient>`, /Patient\.deceased: unknown element/, 'Patient.deceased');
  refused(t, `<Patient ${FHIR}><birthDate value="2000-01-01"><foo/></birthDate></Patient>`, /Patient\.birthDate\.foo: unknown element/, 'Patient.birthDate.foo');
  refused(t, `<Patient ${FHIR}><x:foo xmlns:x="urn:x"/></Patient>`, /Patient\.foo: <foo> in the namespace urn:x is not a FHIR element/, 'Patient.foo');
  refused(t, `<Patient ${FHIR}><name><id value="n1"/></name></Patient>`, /Patient\.name\[0\]\.id: id is written as an attribute in XML/, 'Patient.name[0].id');
  refused(t, `<Patient ${FHIR}><extension><url value="http://x"/></extension></Patient>`, /Patient\.extension\[0\]\.url: url is written as an attribute in XML/, 'Patient.extension[0].url');
  refused(t, `<Patient ${FHIR}><text><status value="generated"/><div>x</div></text></Patient>`, /Patient\.text\.div: <div> must be an XHTML div/, 'Patient.text.div');
  refused(t, `<Patient ${FHIR}><p ${XHTML}/></Patient>`, /Patient\.p: <p> in the namespace http:\/\/www\.w3\.org\/1999\/xhtml is not a FHIR element/);
  refused(t, `<Patient ${FHIR}><active value="true" foo="bar"/></Patient>`, /Patient\.active: unknown attribute "foo" on <active> .*only value and id attributes are allowed here/, 'Patient.active');
  refused(t, `<Patient ${FHIR}><active value="true">yes</active></Patient>`, /Patient\.active: text is not allowed in <active> \(line 1, column 59\), found "yes"/, 'Patient.active');
  refused(t, `<Patient ${FHIR}>text</Patient>`, /Patient: text is not allowed in <Patient>/, 'Patient');
  refused(t, `<Patient ${FHIR}><gender value="male"/><gender value="female"/></Patient>`, /Patient\.gender: the element appears more than once, but it does not repeat/, 'Patient.gender');
  refused(t, `<Patient ${FHIR}><deceasedBoolean value="true"/><deceasedDateTime value="2020"/></Patient>`, /deceasedBoolean and deceasedDateTime are both present, but deceased\[x\] takes one type/);
  refused(t, `<Patient ${FHIR}><active value="yes"/></Patient>`, /Patient\.active: "yes" is not a valid boolean/, 'Patient.active');
  refused(t, `<Patient ${FHIR}><multipleBirthInteger value="1.5"/></Patient>`, /"1\.5" is not a valid integer/);
  refused(t, `<Patient ${FHIR}><multipleBirthInteger value="007"/></Patient>`, /"007" is not a valid integer/);
  refused(t, `<Observation ${FHIR}><valueQuantity><value value="NaN"/></valueQuantity></Observation>`, /Observation\.valueQuantity\.value: "NaN" is not a valid decimal/);
  refused(t, `<Observation ${FHIR}><valueQuantity><value value=""/></valueQuantity></Observation>`, /"" is not a valid decimal/);
  refused(t, `<Patient ${FHIR}><active/></Patient>`, /Patient\.active: the element is empty/, 'Patient.active');
  refused(t, `<Patient ${FHIR}><contained/></Patient>`, /Patient\.contained\[0\]: must contain exactly one resource, found 0/);
  refused(t, `<Patient ${FHIR}><contained><Patient/><Patient/></contained></Patient>`, /must contain exactly one resource, found 2/);
  refused(t, `<Patient ${FHIR}><contained><Patient xmlns=""/></contained></Patient>`, /Patient\.contained\[0\]: <Patient> \(no namespace\) is not a FHIR resource/);
});
