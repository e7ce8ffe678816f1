// FHIR XML request bodies over HTTP (application/fhir+xml, application/xml, text/xml): read into
// the same JSON resource a JSON body gives; answers stay JSON; XML that cannot be read is a 400
// OperationOutcome. Through fetch and through a third-party client (fhir-kit-client).
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';

const FHIR = 'xmlns="http://hl7.org/fhir"';
const XHTML = 'xmlns="http://www.w3.org/1999/xhtml"';

function patientXml(value: string, extra = ''): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Patient ${FHIR}>
  ${extra}
  <text><status value="generated"/><div ${XHTML}><p>Hélène Lefèvre &amp; co</p></div></text>
  <identifier><system value="urn:oid:1.2.250.1.213.1.4.8"/><value value="${value}"/></identifier>
  <active value="true"/>
  <name><family value="Lefèvre"/><given value="Hélène"/><given value="Marie"/></name>
  <birthDate value="1950-01-01">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime"><valueDateTime value="1950-01-01T10:00:00+01:00"/></extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
</Patient>`;
}

function patientJson(value: string): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    text: { status: 'generated', div: `<div ${XHTML}><p>Hélène Lefèvre &amp; co</p></div>` },
    identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value }],
    active: true,
    name: [{ family: 'Lefèvre', given: ['Hélène', 'Marie'] }],
    birthDate: '1950-01-01',
    _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1950-01-01T10:00:00+01:00' }] },
    multipleBirthInteger: 2,
  };
}

function withoutServerFields(resource: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, meta: _meta, ...rest } = resource;
  return rest;
}

t.test('a Patient posted as XML is stored as the JSON resource; answers are JSON', async (t) => {
  const s = await startServer(t);
  const created = await http('POST', `${s.url}/Patient`, patientXml('xml-1'), { 'content-type': 'application/fhir+xml' });
  t.equal(created.status, 201, created.text);
  t.match(created.headers.get('content-type'), /^application\/fhir\+json/, 'the answer is JSON');
  t.match(created.headers.get('location'), new RegExp(`/Patient/${created.body.id}/_history/1$`));
  t.strictSame(withoutServerFields(created.body), patientJson('xml-1'), 'the created resource is the JSON form of the XML');

  const read = await http('GET', `${s.url}/Patient/${created.body.id}`);
  t.equal(read.status, 200);
  t.strictSame(read.body, created.body, 'reading it back as JSON gives the same content');

  const fromJson = await http('POST', `${s.url}/Patient`, patientJson('json-1'));
  t.strictSame(withoutServerFields(fromJson.body), patientJson('json-1'), 'the same content posted as JSON is stored the same way');

  const found = await http('GET', `${s.url}/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|xml-1`);
  t.strictSame(found.body.entry?.map((e: { resource: { id: string } }) => e.resource.id), [created.body.id], 'indexed for search like a JSON body');

  for (const type of ['application/xml', 'text/xml', 'application/fhir+xml; charset=UTF-8', 'application/xml;charset=utf-8']) {
    const res = await http('POST', `${s.url}/Patient`, patientXml(`xml-${type}`), { 'content-type': type });
    t.equal(res.status, 201, `Content-Type: ${type}`);
    t.equal(res.body.identifier[0].value, `xml-${type}`);
  }
});

t.test('update and FHIRPath Patch with XML bodies', async (t) => {
  const s = await startServer(t);
  const created = await http('POST', `${s.url}/Patient`, patientXml('xml-2'), { 'content-type': 'application/fhir+xml' });
  const id = created.body.id as string;
  const updated = await http('PUT', `${s.url}/Patient/${id}`, patientXml('xml-2', `<id value="${id}"/>`).replace('<active value="true"/>', '<active value="false"/><gender value="female"/>'), {
    'content-type': 'application/fhir+xml',
  });
  t.equal(updated.status, 200, updated.text);
  t.equal(updated.body.meta.versionId, '2');
  t.equal(updated.body.active, false);
  t.equal(updated.body.gender, 'female');

  const patch = `<Parameters ${FHIR}>
    <parameter><name value="operation"/>
      <part><name value="type"/><valueCode value="replace"/></part>
      <part><name value="path"/><valueString value="Patient.birthDate"/></part>
      <part><name value="value"/><valueDate value="1951-02-03"/></part>
    </parameter>
  </Parameters>`;
  const patched = await http('PATCH', `${s.url}/Patient/${id}`, patch, { 'content-type': 'application/fhir+xml' });
  t.equal(patched.status, 200, patched.text);
  t.equal(patched.body.birthDate, '1951-02-03');
  t.equal(patched.body.meta.versionId, '3');
});

t.test('XML bodies through fhir-kit-client: create and a transaction', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const xmlHeaders = { headers: { 'content-type': 'application/fhir+xml' } };
  const created: any = await client.create({ resourceType: 'Patient', body: patientXml('kit-1') as never, options: xmlHeaders });
  t.equal(created.resourceType, 'Patient');
  t.strictSame(withoutServerFields(created), patientJson('kit-1'));

  const bundle = `<Bundle ${FHIR}>
    <type value="transaction"/>
    <entry>
      <fullUrl value="urn:uuid:6b7d3d1e-0c3a-4d55-9c55-8b0c1b6c2f01"/>
      <resource>${patientXml('kit-2').replace(/<\?xml[^>]*>/, '').replace(` ${FHIR}`, '')}</resource>
      <request><method value="POST"/><url value="Patient"/></request>
    </entry>
    <entry>
      <resource><Observation><status value="final"/><code><text value="weight"/></code>
        <subject><reference value="urn:uuid:6b7d3d1e-0c3a-4d55-9c55-8b0c1b6c2f01"/></subject>
        <valueQuantity><value value="72.5"/><unit value="kg"/><system value="http://unitsofmeasure.org"/><code value="kg"/></valueQuantity>
      </Observation></resource>
      <request><method value="POST"/><url value="Observation"/></request>
    </entry>
  </Bundle>`;
  const response: any = await client.transaction({ body: bundle as never, options: xmlHeaders });
  t.equal(response.type, 'transaction-response');
  t.strictSame(response.entry.map((e: any) => e.response.status.slice(0, 3)), ['201', '201']);
  const idOf = (location: string): string => /\/(?:Patient|Observation)\/([^/]+)\//.exec(location)![1];
  const patientId = idOf(response.entry[0].response.location);
  const observation: any = await client.read({ resourceType: 'Observation', id: idOf(response.entry[1].response.location) });
  t.equal(observation.subject.reference, `Patient/${patientId}`, 'the urn:uuid reference is rewritten, as in a JSON transaction');
  t.equal(observation.valueQuantity.value, 72.5, 'a decimal is a JSON number');
});

t.test('XML that cannot be read is a 400 OperationOutcome; XML answers are not served', async (t) => {
  const s = await startServer(t);
  const xml = { 'content-type': 'application/fhir+xml' };
  const cases: [string, BodyInit, RegExp, string[] | undefined][] = [
    ['malformed XML', `<Patient ${FHIR}><active value="true"></Patient>`, /not well-formed XML: the end tag <\/Patient> does not match the start tag <active>/, undefined],
    ['undeclared entity', `<Patient ${FHIR}><name><text value="&eacute;"/></name></Patient>`, /The entity "eacute" was referenced, but not declared/, undefined],
    ['wrong namespace', '<Patient xmlns="urn:not-fhir"><active value="true"/></Patient>', /is not a FHIR resource: resources are in the namespace http:\/\/hl7\.org\/fhir/, undefined],
    ['no namespace', '<Patient><active value="true"/></Patient>', /\(no namespace\) is not a FHIR resource/, undefined],
    ['unknown element', `<Patient ${FHIR}><name><family value="X"/><nickname value="Y"/></name></Patient>`, /Patient\.name\[0\]\.nickname: unknown element <nickname>/, ['Patient.name[0].nickname']],
    ['bad value', `<Patient ${FHIR}><active value="yes"/></Patient>`, /Patient\.active: "yes" is not a valid boolean/, ['Patient.active']],
    ['not UTF-8', Buffer.concat([Buffer.from(`<Patient ${FHIR}><name><family value="Lef`), Buffer.from([0xe8]), Buffer.from('vre"/></name></Patient>')]), /not valid UTF-8/, undefined],
  ];
  for (const [name, body, message, expression] of cases) {
    const res = await fetch(`${s.url}/Patient`, { method: 'POST', headers: { ...xml, accept: 'application/fhir+json' }, body });
    const outcome = (await res.json()) as any;
    t.equal(res.status, 400, name);
    t.equal(outcome.resourceType, 'OperationOutcome', `${name}: OperationOutcome`);
    t.equal(outcome.issue[0].code, 'structure', `${name}: issue code structure`);
    t.match(outcome.issue[0].details.text, message, `${name}: ${outcome.issue[0].details.text}`);
    if (expression) t.strictSame(outcome.issue[0].expression, expression, `${name}: expression`);
    t.notMatch(JSON.stringify(outcome), /at .*\.ts:\d+/, `${name}: no stack trace`);
  }

  const invalid = await http('POST', `${s.url}/Patient`, `<Patient ${FHIR}><birthDate value="1950-13-45"/></Patient>`, xml);
  t.equal(invalid.status, 400, 'well-formed FHIR XML is validated like JSON');
  t.match(invalid.body.issue[0].expression, ['Patient.birthDate']);

  const empty = await http('POST', `${s.url}/Patient`, '  \n', xml);
  t.equal(empty.status, 400, 'an empty XML body is no resource');
  t.equal(empty.body.resourceType, 'OperationOutcome');

  const wantsXml = await http('POST', `${s.url}/Patient`, patientXml('xml-406'), { ...xml, accept: 'application/fhir+xml' });
  t.equal(wantsXml.status, 406, 'a client posting XML must accept JSON');
  t.equal(wantsXml.body?.resourceType, 'OperationOutcome');
  t.equal((await http('POST', `${s.url}/Patient?_format=xml`, patientXml('xml-406'), xml)).status, 406);
  t.equal((await http('GET', `${s.url}/Patient`, undefined, { accept: 'application/xml' })).status, 406);
});
