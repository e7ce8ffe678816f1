// Token modifiers that need terminology (terminology/*): :in and :not-in against ValueSets
// stored on this server (FR Core ValueSets and CodeSystems from ../shared/spec, and test ones:
// explicit concepts, whole CodeSystems, is-a / descendent-of filters, excludes, included value
// sets, pre-expanded value sets, versions), :below and :above in a CodeSystem hierarchy (nested
// concepts and `parent` properties), in searches, _has and conditional interactions, and the
// errors: unknown ValueSet or CodeSystem, a ValueSet that cannot be expanded, too many codes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { idsOf } from './helpers/search.ts';
import { http, startServer } from './helpers/server.ts';

const FR_CORE = new URL('../../shared/spec/fr-core/package-2.1.0/', import.meta.url);
const frCore = (file: string) => JSON.parse(readFileSync(new URL(file, FR_CORE), 'utf8'));

const SOINS = 'https://example.org/fhir/CodeSystem/soins';
const LOINC = 'http://loinc.org';
const VS = 'https://example.org/fhir/ValueSet/';
const ORG_TYPE_VS = 'https://hl7.fr/ig/fhir/core/ValueSet/fr-core-vs-organization-type';
const FR_3307 = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307';
const FR_TYPE_ORG = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-type-organisation';
const RELIABILITY_VS = 'https://hl7.fr/ig/fhir/core/ValueSet/fr-core-vs-identity-reliability';
const FR_0445 = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445';

// A care-act hierarchy: SOIN > SOIN-INF > (SOIN-INF-PANS, SOIN-INF-INJ), SOIN > SOIN-KINE by
// nesting; SOIN-INF-PERF under SOIN-INF through a `parent` property; ADM at the top.
const soins = {
  resourceType: 'CodeSystem', id: 'soins', url: SOINS, version: '1', name: 'Soins', status: 'active', content: 'complete', hierarchyMeaning: 'is-a',
  property: [{ code: 'parent', type: 'code' }],
  concept: [
    {
      code: 'SOIN', display: 'Soins',
      concept: [
        { code: 'SOIN-INF', display: 'Soins infirmiers', concept: [{ code: 'SOIN-INF-PANS', display: 'Pansement' }, { code: 'SOIN-INF-INJ', display: 'Injection' }] },
        { code: 'SOIN-KINE', display: 'Kinésithérapie' },
      ],
    },
    { code: 'SOIN-INF-PERF', display: 'Perfusion', property: [{ code: 'parent', valueCode: 'SOIN-INF' }] },
    { code: 'ADM', display: 'Acte administratif' },
  ],
};

function valueSet(id: string, body: object) {
  return { resourceType: 'ValueSet', id, url: VS + id, name: id.replace(/-/g, ''), status: 'active', ...body };
}

const valueSets = [
  valueSet('explicit', { compose: { include: [{ system: SOINS, concept: [{ code: 'SOIN-INF-PANS' }, { code: 'SOIN-KINE' }] }, { system: LOINC, concept: [{ code: '8867-4' }] }] } }),
  valueSet('isa', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'is-a', value: 'SOIN-INF' }] }] } }),
  valueSet('descendent', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'descendent-of', value: 'SOIN-INF' }] }] } }),
  valueSet('all-but-inj', { compose: { include: [{ system: SOINS }], exclude: [{ system: SOINS, concept: [{ code: 'SOIN-INF-INJ' }] }] } }),
  valueSet('nested', { compose: { include: [{ valueSet: [VS + 'isa'] }, { system: LOINC, concept: [{ code: '29463-7' }] }] } }),
  valueSet('intersection', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'is-a', value: 'SOIN' }], valueSet: [VS + 'explicit'] }] } }),
  valueSet('expanded', {
    expansion: {
      timestamp: '2026-01-01T00:00:00Z',
      contains: [
        { system: SOINS, code: 'SOIN', abstract: true, display: 'Soins (navigation)', contains: [{ system: SOINS, code: 'ADM' }] },
        { system: LOINC, code: '29463-7' },
      ],
    },
  }),
  { ...valueSet('versioned-1', { version: '1', compose: { include: [{ system: SOINS, concept: [{ code: 'ADM' }] }] } }), url: VS + 'versioned' },
  { ...valueSet('versioned-2', { version: '2', compose: { include: [{ system: SOINS, concept: [{ code: 'SOIN-KINE' }] }] } }), url: VS + 'versioned' },
  valueSet('snomed', { compose: { include: [{ system: 'http://snomed.info/sct', filter: [{ property: 'concept', op: 'is-a', value: '71388002' }] }] } }),
];

function obs(id: string, codings: [string, string][], subject?: string) {
  const r: any = { resourceType: 'Observation', id, status: 'final', code: codings.length ? { coding: codings.map(([system, code]) => ({ system, code })) } : { text: 'texte libre' } };
  if (subject) r.subject = { reference: subject };
  return r;
}

const observations = [
  obs('soin', [[SOINS, 'SOIN']]),
  obs('inf', [[SOINS, 'SOIN-INF']]),
  obs('pans', [[SOINS, 'SOIN-INF-PANS']], 'Patient/pat1'),
  obs('inj', [[SOINS, 'SOIN-INF-INJ']]),
  obs('perf', [[SOINS, 'SOIN-INF-PERF']]),
  obs('kine', [[SOINS, 'SOIN-KINE']], 'Patient/pat2'),
  obs('adm', [[SOINS, 'ADM']]),
  obs('two', [[SOINS, 'ADM'], [LOINC, '8867-4']]),
  obs('loinc', [[LOINC, '29463-7']]),
  obs('other-system', [['https://example.org/other', 'SOIN-KINE']]),
  obs('free-text', []),
];
const ALL = observations.map((o) => o.id).sort();

t.test('token :in, :not-in, :below, :above against stored ValueSets and CodeSystems', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const put = async (r: any) => client.update({ resourceType: r.resourceType, id: r.id, body: r });
  for (const p of ['pat1', 'pat2']) await put({ resourceType: 'Patient', id: p, name: [{ family: p }] });
  await put(soins);
  for (const v of valueSets) await put(v);
  for (const o of observations) await put(o);

  const find = async (params: Record<string, string>, type = 'Observation') => idsOf(await client.search({ resourceType: type, searchParams: params }));
  const cases: [Record<string, string>, string[]][] = [
    // :in with explicit concepts, by canonical URL and by reference
    [{ 'code:in': VS + 'explicit' }, ['kine', 'pans', 'two']],
    [{ 'code:in': 'ValueSet/explicit' }, ['kine', 'pans', 'two']],
    // filters on the CodeSystem hierarchy (nested concepts and the parent property)
    [{ 'code:in': VS + 'isa' }, ['inf', 'inj', 'pans', 'perf']],
    [{ 'code:in': VS + 'descendent' }, ['inj', 'pans', 'perf']],
    // a whole CodeSystem minus an exclude (the same code in another system is not in it)
    [{ 'code:in': VS + 'all-but-inj' }, ['adm', 'inf', 'kine', 'pans', 'perf', 'soin', 'two']],
    // an included ValueSet, and an include that intersects a filter with a ValueSet
    [{ 'code:in': VS + 'nested' }, ['inf', 'inj', 'loinc', 'pans', 'perf']],
    [{ 'code:in': VS + 'intersection' }, ['kine', 'pans']],
    // a ValueSet that comes expanded: its contains (nested), abstract entries excluded
    [{ 'code:in': VS + 'expanded' }, ['adm', 'loinc', 'two']],
    // versions: url|version, else the most recent active one
    [{ 'code:in': VS + 'versioned|1' }, ['adm', 'two']],
    [{ 'code:in': VS + 'versioned|2' }, ['kine']],
    [{ 'code:in': VS + 'versioned' }, ['kine']],
    // OR of value sets, AND with another criterion
    [{ 'code:in': `${VS}explicit,${VS}expanded` }, ['adm', 'kine', 'loinc', 'pans', 'two']],
    [{ 'code:in': VS + 'isa', _id: 'pans,kine' }, ['pans']],
    // :not-in: resources with no coding in the value set (those without codings too)
    [{ 'code:not-in': VS + 'explicit' }, ALL.filter((x) => !['kine', 'pans', 'two'].includes(x))],
    [{ 'code:not-in': VS + 'all-but-inj' }, ['free-text', 'inj', 'loinc', 'other-system']],
    // :below: the code and what it subsumes
    [{ 'code:below': `${SOINS}|SOIN-INF` }, ['inf', 'inj', 'pans', 'perf']],
    [{ 'code:below': `${SOINS}|SOIN` }, ['inf', 'inj', 'kine', 'pans', 'perf', 'soin']],
    [{ 'code:below': `${SOINS}|SOIN-KINE` }, ['kine']],
    [{ 'code:below': `${SOINS}|NOT-A-CODE` }, []],
    // :above: the code and what subsumes it
    [{ 'code:above': `${SOINS}|SOIN-INF-PERF` }, ['inf', 'perf', 'soin']],
    [{ 'code:above': `${SOINS}|SOIN-INF-PANS` }, ['inf', 'pans', 'soin']],
    [{ 'code:above': `${SOINS}|ADM` }, ['adm', 'two']],
    [{ 'code:below': `${SOINS}|SOIN-INF`, 'code:above': `${SOINS}|SOIN-INF-INJ` }, ['inf', 'inj']],
  ];
  for (const [params, expected] of cases) t.same(await find(params), expected, decodeURIComponent(new URLSearchParams(params).toString()));

  // Elements of type code are indexed without a system: the system their binding implies (R4's own ValueSets).
  t.same(await find({ 'status:in': 'http://hl7.org/fhir/ValueSet/observation-status' }), ALL, ':in on a code element (Observation.status)');
  await put({ resourceType: 'Patient', id: 'pat3', gender: 'female', name: [{ family: 'pat3' }] });
  await put({ resourceType: 'Patient', id: 'pat4', gender: 'other', name: [{ family: 'pat4' }] });
  t.same(await find({ 'gender:in': VS + 'explicit' }, 'Patient'), [], 'a code element matches the codes of the value set only');
  t.same(await find({ 'gender:in': 'http://hl7.org/fhir/ValueSet/administrative-gender' }, 'Patient'), ['pat3', 'pat4']);
  t.same(await find({ 'gender:not-in': 'http://hl7.org/fhir/ValueSet/administrative-gender' }, 'Patient'), ['pat1', 'pat2'], ':not-in on a code element');
  t.same(await find({ '_has:Observation:subject:code:in': VS + 'isa' }, 'Patient'), ['pat1'], '_has with :in');
  t.same(await find({ '_has:Observation:subject:code:below': `${SOINS}|SOIN-KINE` }, 'Patient'), ['pat2'], '_has with :below');

  // No caching of expansions or hierarchies across changes.
  await put(valueSet('explicit', { compose: { include: [{ system: SOINS, concept: [{ code: 'ADM' }] }] } }));
  t.same(await find({ 'code:in': VS + 'explicit' }), ['adm', 'two'], 'an updated ValueSet is used at once');
  await put({ ...soins, version: '2', concept: [...soins.concept, { code: 'SOIN-KINE-RESP', display: 'Kinésithérapie respiratoire', property: [{ code: 'parent', valueCode: 'SOIN-KINE' }] }] });
  await put(obs('resp', [[SOINS, 'SOIN-KINE-RESP']]));
  t.same(await find({ 'code:below': `${SOINS}|SOIN-KINE` }), ['kine', 'resp'], 'an updated CodeSystem is used at once');

  // Conditional interactions resolve the modifiers too (matchIds).
  const del = await http('DELETE', `${s.url}/Observation?${new URLSearchParams({ 'code:in': VS + 'descendent' })}`);
  t.equal(del.status, 200, 'conditional delete with :in');
  t.same(await find({ 'code:below': `${SOINS}|SOIN-INF` }), ['inf'], 'it deleted the three matches');

  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const code = cs.rest[0].resource.find((r: any) => r.type === 'Observation').searchParam.find((p: any) => p.name === 'code');
  t.match(code.documentation, /:in\b.*:not-in\b.*:below\b.*:above\b/, 'the CapabilityStatement states the token modifiers');
});

t.test('FR Core ValueSets and CodeSystems: explicit concepts, and a whole CodeSystem include', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const put = async (r: any) => client.update({ resourceType: r.resourceType, id: r.id, body: r });
  await put(frCore('ValueSet-fr-core-vs-organization-type.json'));
  const org = (id: string, system?: string, code?: string) => ({
    resourceType: 'Organization', id, name: `Organisation ${id}`, ...(system ? { type: [{ coding: [{ system, code }] }] } : {}),
  });
  for (const o of [org('ght', FR_3307, 'GHT'), org('uf', FR_3307, 'UF'), org('same-code-other-system', FR_TYPE_ORG, 'GHT'), org('untyped')]) await put(o);
  const find = async (type: string, params: Record<string, string>) => idsOf(await client.search({ resourceType: type, searchParams: params }));
  t.same(await find('Organization', { 'type:in': ORG_TYPE_VS }), ['ght', 'uf'], 'FR Core organisation types (explicit concepts, no CodeSystem needed)');
  t.same(await find('Organization', { 'type:not-in': ORG_TYPE_VS }), ['same-code-other-system', 'untyped']);
  t.same(await find('Organization', { 'type:in': `${ORG_TYPE_VS}|2.1.0` }), ['ght', 'uf'], 'with its version');
  t.equal((await http('GET', `${s.url}/Organization?type:in=${encodeURIComponent(ORG_TYPE_VS + '|9.9.9')}`)).status, 400, 'another version is unknown');

  // fr-core-vs-identity-reliability includes the whole fr-core-cs-v2-0445, which the server ships
  // (FR Core packages in profiles/): no need to store it.
  await put(frCore('ValueSet-fr-core-vs-identity-reliability.json'));
  const basic = (id: string, system: string, code: string) => ({ resourceType: 'Basic', id, code: { coding: [{ system, code }] } });
  for (const b of [basic('vali', FR_0445, 'VALI'), basic('prov', FR_0445, 'PROV'), basic('other', FR_3307, 'VALI')]) await put(b);
  t.same(await find('Basic', { 'code:in': RELIABILITY_VS }), ['prov', 'vali'], 'the shipped FR Core CodeSystem expands the ValueSet');
  // A ValueSet that includes a whole CodeSystem nobody has cannot be expanded.
  const unknownSystem = 'https://example.org/fhir/CodeSystem/not-shipped';
  await put({ resourceType: 'ValueSet', id: 'needs-unknown', url: 'https://example.org/fhir/ValueSet/needs-unknown', status: 'active', compose: { include: [{ system: unknownSystem }] } });
  const missing = await http('GET', `${s.url}/Basic?code:in=${encodeURIComponent('https://example.org/fhir/ValueSet/needs-unknown')}`);
  t.equal(missing.status, 400, 'a ValueSet whose CodeSystem is not available cannot be expanded');
  t.match(missing.body.issue[0].details.text, /not-shipped.*not available/);
  t.same(await find('Basic', { 'code:below': `${FR_0445}|VALI` }), ['vali'], ':below in a flat CodeSystem is the code itself');
});

t.test('terminology errors: unknown ValueSet or CodeSystem, malformed values, too many codes', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  await client.update({ resourceType: 'CodeSystem', id: 'soins', body: soins as any });
  const snomed = valueSets.find((v) => v.id === 'snomed')!;
  await client.update({ resourceType: 'ValueSet', id: 'snomed', body: snomed as any });
  const big = valueSet('big', { compose: { include: [{ system: SOINS, concept: Array.from({ length: 10_001 }, (_, i) => ({ code: `C${i}` })) }] } });
  t.equal((await http('PUT', `${s.url}/ValueSet/big`, big)).status, 201);
  await client.update({ resourceType: 'Observation', id: 'o1', body: obs('o1', [[SOINS, 'ADM']]) });

  const expectError = async (query: string, status: number, code: string, text: RegExp, label: string) => {
    const r = await http('GET', `${s.url}/Observation?${query}`);
    t.equal(r.status, status, `${label}: ${status}`);
    t.equal(r.body?.resourceType, 'OperationOutcome', `${label}: OperationOutcome`);
    t.equal(r.body?.issue?.[0]?.code, code, `${label}: issue code ${code}`);
    t.match(r.body?.issue?.[0]?.details?.text ?? '', text, `${label}: message`);
  };
  const q = (params: Record<string, string>) => new URLSearchParams(params).toString();
  await expectError(q({ 'code:in': VS + 'nope' }), 400, 'not-found', /Unknown ValueSet "https:\/\/example.org\/fhir\/ValueSet\/nope"/, 'unknown ValueSet URL');
  await expectError(q({ 'code:in': 'ValueSet/nope' }), 400, 'not-found', /Unknown ValueSet "ValueSet\/nope"/, 'unknown ValueSet id');
  await expectError(q({ 'code:not-in': VS + 'nope' }), 400, 'not-found', /Unknown ValueSet/, 'unknown ValueSet with :not-in');
  await expectError(q({ 'code:in': VS + 'snomed' }), 400, 'not-found', /snomed.*not available/, 'a ValueSet on a CodeSystem this server does not hold');
  await expectError(q({ 'code:in': VS + 'big' }), 400, 'too-costly', /more than 10000 codes/, 'more than 10,000 codes');
  await expectError(q({ 'code:below': 'http://snomed.info/sct|71388002' }), 400, 'not-found', /Unknown CodeSystem "http:\/\/snomed.info\/sct"/, 'unknown CodeSystem with :below');
  await expectError(q({ 'code:above': 'SOIN' }), 400, 'invalid', /system\|code/, ':above without a system');
  await expectError(q({ 'code:below': `${SOINS}|` }), 400, 'invalid', /system\|code/, ':below without a code');
  const conditional = await http('PUT', `${s.url}/Observation?${q({ 'code:in': VS + 'nope' })}`, obs('x', [[SOINS, 'ADM']]));
  t.equal(conditional.status, 400, 'a conditional update with an unknown ValueSet fails the same way');
  t.equal((await http('GET', `${s.url}/Observation?_summary=count`)).body.total, 1, 'and writes nothing');
});
