// The terminology service: ValueSet $expand and $validate-code, CodeSystem $validate-code,
// $lookup and $subsumes (type and instance level, GET and POST), over stored ValueSets and
// CodeSystems (explicit concepts, whole CodeSystems, is-a / = / regex / in filters, excludes,
// nested value sets, a CodeSystem too large to expand), FR Core ones, and the R4 base
// terminology served without storing anything; validateCodeInValueSet, the function the
// validator calls (three-valued: true, false, cannot tell); errors (404, 400, never 500); the
// CapabilityStatement. Part of it goes through fhir-kit-client's operation(), the rest fetch.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';
import { validateCodeInValueSet } from '../src/fhir/terminology/index.ts';

const FR_CORE = new URL('../../shared/spec/fr-core/package-2.1.0/', import.meta.url);
const frCore = (file: string) => JSON.parse(readFileSync(new URL(file, FR_CORE), 'utf8'));

const SOINS = 'https://example.org/fhir/CodeSystem/soins';
const OTHER = 'https://example.org/fhir/CodeSystem/autre';
const BIG = 'https://example.org/fhir/CodeSystem/big';
const LOINC = 'http://loinc.org';
const VS = 'https://example.org/fhir/ValueSet/';
const GENDER_VS = 'http://hl7.org/fhir/ValueSet/administrative-gender';
const GENDER = 'http://hl7.org/fhir/administrative-gender';
const RELIABILITY_VS = 'https://hl7.fr/ig/fhir/core/ValueSet/fr-core-vs-identity-reliability';
const FR_0445 = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445';

// SOIN > SOIN-INF > (SOIN-INF-PANS, SOIN-INF-INJ), SOIN > SOIN-KINE by nesting; SOIN-INF-PERF
// under SOIN-INF by a `parent` property; ADM at the top. A `famille` property on each code.
const fam = (v: string) => [{ code: 'famille', valueCode: v }];
const soins = {
  resourceType: 'CodeSystem', id: 'soins', url: SOINS, version: '1', name: 'Soins', status: 'active', content: 'complete', hierarchyMeaning: 'is-a',
  property: [{ code: 'parent', type: 'code' }, { code: 'famille', type: 'code' }],
  concept: [
    {
      code: 'SOIN', display: 'Soins', definition: 'Tout acte de soin', property: fam('GEN'),
      concept: [
        {
          code: 'SOIN-INF', display: 'Soins infirmiers', property: fam('INF'),
          designation: [{ language: 'en', use: { system: 'http://snomed.info/sct', code: '900000000000013009' }, value: 'Nursing care' }],
          concept: [{ code: 'SOIN-INF-PANS', display: 'Pansement', property: fam('INF') }, { code: 'SOIN-INF-INJ', display: 'Injection', property: fam('INF') }],
        },
        { code: 'SOIN-KINE', display: 'Kinésithérapie', property: fam('KINE') },
      ],
    },
    { code: 'SOIN-INF-PERF', display: 'Perfusion', property: [{ code: 'parent', valueCode: 'SOIN-INF' }, ...fam('INF')] },
    { code: 'ADM', display: 'Acte administratif', property: fam('ADM') },
  ],
};
// Another system sharing the code SOIN-KINE.
const autre = { resourceType: 'CodeSystem', id: 'autre', url: OTHER, name: 'Autre', status: 'active', content: 'complete', concept: [{ code: 'SOIN-KINE', display: 'Autre kiné' }, { code: 'X1', display: 'Un' }] };
// A CodeSystem larger than any expansion the server makes (10,000 codes).
const big = {
  resourceType: 'CodeSystem', id: 'big', url: BIG, name: 'Big', status: 'active', content: 'complete',
  concept: Array.from({ length: 30_000 }, (_, i) => ({ code: `B${i}`, display: `Code ${i}` })),
};

function valueSet(id: string, body: object) {
  return { resourceType: 'ValueSet', id, url: VS + id, name: id.replace(/-/g, ''), status: 'active', ...body };
}

const valueSets = [
  // explicit concepts; SOIN-KINE without display (the CodeSystem's is used)
  valueSet('explicit', { compose: { include: [{ system: SOINS, concept: [{ code: 'SOIN-INF-PANS', display: 'Pansement simple' }, { code: 'SOIN-KINE' }] }, { system: LOINC, concept: [{ code: '8867-4', display: 'Heart rate' }] }] } }),
  valueSet('isa', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'is-a', value: 'SOIN-INF' }] }] } }),
  valueSet('famille-eq', { compose: { include: [{ system: SOINS, filter: [{ property: 'famille', op: '=', value: 'KINE' }] }] } }),
  valueSet('famille-in', { compose: { include: [{ system: SOINS, filter: [{ property: 'famille', op: 'in', value: 'ADM,KINE' }] }] } }),
  valueSet('regex', { compose: { include: [{ system: SOINS, filter: [{ property: 'code', op: 'regex', value: 'SOIN-INF-P.*' }] }] } }),
  valueSet('all-but-inf', { compose: { include: [{ system: SOINS }], exclude: [{ system: SOINS, filter: [{ property: 'concept', op: 'is-a', value: 'SOIN-INF' }] }] } }),
  valueSet('nested', { compose: { include: [{ valueSet: [VS + 'isa'] }, { system: LOINC, concept: [{ code: '29463-7' }] }], exclude: [{ system: SOINS, concept: [{ code: 'SOIN-INF-INJ' }] }] } }),
  valueSet('two-systems', { compose: { include: [{ system: SOINS, concept: [{ code: 'SOIN-KINE' }, { code: 'ADM' }] }, { system: OTHER }] } }),
  valueSet('big-all', { compose: { include: [{ system: BIG }] } }),
  valueSet('snomed', { compose: { include: [{ system: 'http://snomed.info/sct', filter: [{ property: 'concept', op: 'is-a', value: '71388002' }] }, { system: SOINS, concept: [{ code: 'ADM' }] }] } }),
  valueSet('unsupported-filter', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'child-of', value: 'SOIN' }] }] } }),
];

const codes = (vs: any) => (vs.expansion?.contains ?? []).map((c: any) => `${c.system === SOINS ? '' : c.system + '|'}${c.code}`);
const param = (p: any, name: string) => p.parameter?.find((x: any) => x.name === name);
const value = (p: any, name: string) => {
  const x = param(p, name);
  return x && (x.valueBoolean ?? x.valueString ?? x.valueCode ?? x.valueInteger);
};

async function setup(t: any) {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const put = async (r: any) => {
    const res = await http('PUT', `${s.url}/${r.resourceType}/${r.id}`, r);
    if (res.status >= 300) throw new Error(`PUT ${r.resourceType}/${r.id}: ${res.status} ${res.text}`);
  };
  for (const r of [soins, autre, big, ...valueSets]) await put(r);
  const get = (path: string, params: Record<string, string> = {}) => http('GET', `${s.url}/${path}?${new URLSearchParams(params)}`);
  const post = (path: string, parameter: any[]) => http('POST', `${s.url}/${path}`, { resourceType: 'Parameters', parameter });
  return { s, client, put, get, post };
}

t.test('ValueSet $expand: includes, excludes, filters, nested value sets, text filter, paging', async (t) => {
  const { s, client, get, post } = await setup(t);
  const expand = async (params: Record<string, string>) => (await client.operation({ name: '$expand', resourceType: 'ValueSet', method: 'GET', input: params })) as any;

  const explicit = await expand({ url: VS + 'explicit' });
  t.equal(explicit.resourceType, 'ValueSet');
  t.equal(explicit.url, VS + 'explicit');
  t.same(codes(explicit), ['SOIN-INF-PANS', 'SOIN-KINE', `${LOINC}|8867-4`], 'explicit concepts, in order');
  t.equal(explicit.expansion.total, 3);
  t.same(explicit.expansion.contains.map((c: any) => c.display), ['Pansement simple', 'Kinésithérapie', 'Heart rate'], 'displays: the ValueSet\'s, else the CodeSystem\'s');
  t.match(explicit.expansion.identifier, /^urn:uuid:/);

  const cases: [string, string[]][] = [
    ['isa', ['SOIN-INF', 'SOIN-INF-PANS', 'SOIN-INF-INJ', 'SOIN-INF-PERF']],
    ['famille-eq', ['SOIN-KINE']],
    ['famille-in', ['SOIN-KINE', 'ADM']],
    ['regex', ['SOIN-INF-PANS', 'SOIN-INF-PERF']],
    ['all-but-inf', ['SOIN', 'SOIN-KINE', 'ADM']],
    ['nested', ['SOIN-INF', 'SOIN-INF-PANS', 'SOIN-INF-PERF', `${LOINC}|29463-7`]],
    ['two-systems', ['SOIN-KINE', 'ADM', `${OTHER}|SOIN-KINE`, `${OTHER}|X1`]],
  ];
  for (const [id, expected] of cases) t.same(codes(await expand({ url: VS + id })).sort(), expected.sort(), `${id}`);

  // Text filter: case- and accent-insensitive, on code and display; total counts the filtered codes.
  const kine = await expand({ url: VS + 'all-but-inf', filter: 'KINESI' });
  t.same(codes(kine), ['SOIN-KINE'], 'filter on display, accents and case ignored');
  t.equal(kine.expansion.total, 1);
  t.same(kine.expansion.parameter.find((p: any) => p.name === 'filter'), { name: 'filter', valueString: 'KINESI' }, 'the filter is echoed');
  t.same(codes(await expand({ url: VS + 'isa', filter: 'inf-p' })).sort(), ['SOIN-INF-PANS', 'SOIN-INF-PERF'], 'filter on code');
  t.same(codes(await expand({ url: VS + 'isa', filter: 'zzz' })), [], 'nothing matches');

  // Paging: offset and count; total stays the size of the whole expansion.
  const all = codes(await expand({ url: VS + 'isa' }));
  const pages: string[] = [];
  for (let offset = 0; offset < 4; offset += 3) {
    const page = await expand({ url: VS + 'isa', count: '3', offset: String(offset) });
    t.equal(page.expansion.total, 4, `total on the page at ${offset}`);
    t.equal(page.expansion.offset, offset);
    t.same(page.expansion.parameter.filter((p: any) => p.name === 'count' || p.name === 'offset'), [{ name: 'count', valueInteger: 3 }, { name: 'offset', valueInteger: offset }]);
    pages.push(...codes(page));
  }
  t.same(pages, all, 'the pages make the whole expansion');
  const sized = await expand({ url: VS + 'isa', count: '0' });
  t.equal(sized.expansion.total, 4, 'count=0: the size only');
  t.notOk(sized.expansion.contains, 'and no codes');

  // includeDesignations
  const withDesignations = await expand({ url: VS + 'isa', includeDesignations: 'true', filter: 'nursing' });
  t.same(codes(withDesignations), ['SOIN-INF'], 'a designation matches the filter when designations are included');
  t.equal(withDesignations.expansion.contains[0].designation[0].value, 'Nursing care');
  t.notOk((await expand({ url: VS + 'isa' })).expansion.contains[0].designation, 'no designations unless asked for');

  // Instance level, POST with url, POST with a ValueSet resource.
  const instance = (await get('ValueSet/regex/$expand')).body;
  t.same(codes(instance), ['SOIN-INF-PANS', 'SOIN-INF-PERF'], 'ValueSet/[id]/$expand');
  t.equal(instance.id, 'regex');
  const byPost = await post('ValueSet/$expand', [{ name: 'url', valueUri: VS + 'famille-in' }, { name: 'count', valueInteger: 1 }]);
  t.equal(byPost.status, 200);
  t.same(codes(byPost.body), ['SOIN-KINE'], 'POST with url and count');
  t.equal(byPost.body.expansion.total, 2);
  const inline = await client.operation({
    name: '$expand', resourceType: 'ValueSet', method: 'POST',
    input: { resourceType: 'Parameters', parameter: [{ name: 'valueSet', resource: { resourceType: 'ValueSet', status: 'draft', compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'descendent-of', value: 'SOIN' }] }], exclude: [{ valueSet: [VS + 'isa'] }] } } }] },
  }) as any;
  t.same(codes(inline), ['SOIN-KINE'], 'a ValueSet given in the request: descendent-of, minus an excluded value set');
  t.equal((await post('ValueSet/isa/$expand', [{ name: 'filter', valueString: 'pans' }])).body.expansion.contains[0].code, 'SOIN-INF-PANS', 'POST at instance level');

  // A form body works like the query string.
  const form = await http('POST', `${s.url}/ValueSet/$expand`, `url=${encodeURIComponent(VS + 'famille-eq')}`, { 'content-type': 'application/x-www-form-urlencoded' });
  t.same(codes(form.body), ['SOIN-KINE'], 'form-encoded POST');

  // Too large, or not expandable.
  const tooBig = await get('ValueSet/$expand', { url: VS + 'big-all' });
  t.equal(tooBig.status, 400);
  t.equal(tooBig.body.issue[0].code, 'too-costly', 'a whole 30,000-code CodeSystem: too costly');
  const snomed = await get('ValueSet/$expand', { url: VS + 'snomed' });
  t.equal(snomed.status, 400, 'a CodeSystem this server does not have');
  t.match(snomed.body.issue[0].details.text, /snomed.*not available/);
  const unsupported = await get('ValueSet/$expand', { url: VS + 'unsupported-filter' });
  t.equal(unsupported.status, 400);
  t.match(unsupported.body.issue[0].details.text, /child-of.*not supported/);
});

t.test('ValueSet $validate-code and validateCodeInValueSet: concepts, whole CodeSystems, filters, excludes, codes without system', async (t) => {
  const { s, client, put, get, post } = await setup(t);
  const validate = async (params: Record<string, string>) => (await get('ValueSet/$validate-code', params)).body;
  const check = async (label: string, vs: string, system: string | undefined, code: string, expected: boolean, display?: string) => {
    const params: Record<string, string> = { url: VS + vs, code };
    if (system) params.system = system;
    if (display) params.display = display;
    const r = await validate(params);
    t.equal(value(r, 'result'), expected, `${label}: ${expected}`);
    if (!expected) t.match(value(r, 'message'), /.+/, `${label}: a message says why`);
    return r;
  };
  // Explicit concepts
  const pans = await check('explicit concept', 'explicit', SOINS, 'SOIN-INF-PANS', true);
  t.equal(value(pans, 'display'), 'Pansement simple', 'the display is returned');
  await check('explicit concept, LOINC (no CodeSystem needed)', 'explicit', LOINC, '8867-4', true);
  await check('a code not listed', 'explicit', SOINS, 'SOIN-INF-INJ', false);
  await check('the same code in another system', 'explicit', OTHER, 'SOIN-KINE', false);
  await check('an unknown system', 'explicit', 'http://example.org/unknown', 'SOIN-KINE', false);
  await check('the right display', 'explicit', SOINS, 'SOIN-KINE', true, 'kinésithérapie');
  const wrong = await check('a wrong display', 'explicit', SOINS, 'SOIN-KINE', false, 'Massage');
  t.match(value(wrong, 'message'), /Wrong display 'Massage'.*'Kinésithérapie'/);
  t.equal(value(wrong, 'display'), 'Kinésithérapie', 'with the right display');
  // Whole CodeSystems, filters, excludes
  await check('whole CodeSystem minus an is-a exclude', 'all-but-inf', SOINS, 'ADM', true);
  await check('excluded by is-a', 'all-but-inf', SOINS, 'SOIN-INF-PERF', false);
  await check('not in the CodeSystem', 'all-but-inf', SOINS, 'NOPE', false);
  await check('is-a through a parent property', 'isa', SOINS, 'SOIN-INF-PERF', true);
  await check('is-a: the code itself', 'isa', SOINS, 'SOIN-INF', true);
  await check('is-a: a sibling branch', 'isa', SOINS, 'SOIN-KINE', false);
  await check('= on a property', 'famille-eq', SOINS, 'SOIN-KINE', true);
  await check('= on a property, other value', 'famille-eq', SOINS, 'ADM', false);
  await check('in on a property', 'famille-in', SOINS, 'ADM', true);
  await check('regex', 'regex', SOINS, 'SOIN-INF-PERF', true);
  await check('regex, no match', 'regex', SOINS, 'SOIN-INF-INJ', false);
  await check('nested value set', 'nested', SOINS, 'SOIN-INF-PANS', true);
  await check('nested value set minus an exclude', 'nested', SOINS, 'SOIN-INF-INJ', false);
  await check('nested, its other include', 'nested', LOINC, '29463-7', true);
  await check('a 30,000-code CodeSystem, not expanded', 'big-all', BIG, 'B29999', true);
  await check('a 30,000-code CodeSystem, a code not in it', 'big-all', BIG, 'B30000', false);
  // Codes without system (type `code` elements)
  await check('no system, one system has it', 'explicit', undefined, 'SOIN-KINE', true);
  await check('no system, none has it', 'explicit', undefined, 'NOPE', false);
  const ambiguous = await check('no system, two systems have it', 'two-systems', undefined, 'SOIN-KINE', false);
  t.match(value(ambiguous, 'message'), /ambiguous/);
  await check('no system, one of two systems has it', 'two-systems', undefined, 'X1', true);
  // Cannot tell: the operation answers false and says why.
  const unknown = await check('a CodeSystem this server does not have', 'snomed', 'http://snomed.info/sct', '22298006', false);
  t.match(value(unknown, 'message'), /Cannot validate.*snomed.*not available/);
  await check('... but the explicit part of that ValueSet is known', 'snomed', SOINS, 'ADM', true);
  await check('... and a system it does not name is surely out', 'snomed', OTHER, 'X1', false);

  // POST: coding, codeableConcept (one valid coding is enough), instance level; fhir-kit-client.
  const coding = await client.operation({
    name: '$validate-code', resourceType: 'ValueSet', method: 'POST',
    input: { resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: VS + 'isa' }, { name: 'coding', valueCoding: { system: SOINS, code: 'SOIN-INF-INJ', display: 'Injection' } }] },
  }) as any;
  t.equal(value(coding, 'result'), true, 'POST coding');
  const cc = await post('ValueSet/isa/$validate-code', [{ name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: SOINS, code: 'ADM' }, { system: SOINS, code: 'SOIN-INF-PANS' }] } }]);
  t.equal(value(cc.body, 'result'), true, 'a CodeableConcept with one coding in the value set');
  t.equal(value(cc.body, 'display'), 'Pansement');
  const ccNo = await post('ValueSet/isa/$validate-code', [{ name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: SOINS, code: 'ADM' }, { system: SOINS, code: 'SOIN-KINE' }] } }]);
  t.equal(value(ccNo.body, 'result'), false, 'a CodeableConcept with none');
  const instanceGet = await client.operation({ name: '$validate-code', resourceType: 'ValueSet', id: 'regex', method: 'GET', input: { system: SOINS, code: 'SOIN-INF-PANS' } }) as any;
  t.equal(value(instanceGet, 'result'), true, 'ValueSet/[id]/$validate-code');

  // validateCodeInValueSet, as the validator calls it: three-valued, never throws.
  const tc = { ex: s.db };
  const api = (vs: string, coding: { system?: string; code: string; display?: string }) => validateCodeInValueSet(tc, vs, coding);
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'SOIN-INF-PERF' })).result, true);
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'ADM' })).result, false);
  t.equal((await api(VS + 'snomed', { system: 'http://snomed.info/sct', code: '22298006' })).result, undefined, 'a CodeSystem not available: cannot tell');
  t.equal((await api(VS + 'unsupported-filter', { system: SOINS, code: 'SOIN-KINE' })).result, undefined, 'a filter it cannot evaluate: cannot tell');
  t.equal((await api(VS + 'unsupported-filter', { system: OTHER, code: 'X1' })).result, false, '... unless the system is not the filtered one');
  const missing = await api(VS + 'nope', { system: SOINS, code: 'ADM' });
  t.equal(missing.result, undefined, 'an unknown ValueSet: cannot tell');
  t.ok(missing.valueSetUnknown);
  const inferred = await api(VS + 'two-systems', { code: 'X1' });
  t.same([inferred.result, inferred.system, inferred.display], [true, OTHER, 'Un'], 'a code without system: its system is found');
  const wrongDisplay = await api(VS + 'isa', { system: SOINS, code: 'SOIN-INF', display: 'Autre chose' });
  t.same([wrongDisplay.result, wrongDisplay.wrongDisplay], [false, true], 'a wrong display is flagged');
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'SOIN-INF', display: 'nursing care' })).result, true, 'a designation is a valid display');
  t.equal((await api('ValueSet/isa', { system: SOINS, code: 'SOIN-INF' })).result, true, 'by reference ValueSet/id');
  t.equal((await validateCodeInValueSet(tc, { resourceType: 'ValueSet', status: 'active', compose: { include: [{ system: SOINS, concept: [{ code: 'ADM' }] }] } } as any, { system: SOINS, code: 'ADM' })).result, true, 'a ValueSet resource');

  // What is cached follows changes at once (ValueSet, then CodeSystem).
  await put(valueSet('isa', { compose: { include: [{ system: SOINS, filter: [{ property: 'concept', op: 'is-a', value: 'SOIN-KINE' }] }] } }));
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'SOIN-INF-PERF' })).result, false, 'an updated ValueSet is used at once');
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'SOIN-KINE' })).result, true);
  await put({ ...soins, version: '2', concept: [...soins.concept, { code: 'SOIN-KINE-RESP', display: 'Kiné respiratoire', property: [{ code: 'parent', valueCode: 'SOIN-KINE' }] }] });
  t.equal((await api(VS + 'isa', { system: SOINS, code: 'SOIN-KINE-RESP' })).result, true, 'an updated CodeSystem is used at once');
  t.equal((await api(VS + 'nested', { system: SOINS, code: 'SOIN-KINE-RESP' })).result, true, 'through a nested value set too');
});

t.test('a ValueSet that includes a whole CodeSystem, before and after the CodeSystem is stored; FR Core', async (t) => {
  const { s, put, get } = await setup(t);
  const LATER = 'https://example.org/fhir/CodeSystem/later';
  await put(valueSet('later', { compose: { include: [{ system: LATER }] } }));
  const tc = { ex: s.db };
  const later = await validateCodeInValueSet(tc, VS + 'later', { system: LATER, code: 'L1' });
  t.equal(later.result, undefined, 'its CodeSystem is not available: cannot tell');
  t.match(later.message, /later, which is not available/);
  const before = await get('ValueSet/$validate-code', { url: VS + 'later', system: LATER, code: 'L1' });
  t.equal(before.status, 200);
  t.equal(value(before.body, 'result'), false, 'the operation says false...');
  t.match(value(before.body, 'message'), /Cannot validate.*CodeSystem\/later.*not available/, '... and why');
  await put({ resourceType: 'CodeSystem', id: 'later', url: LATER, status: 'active', content: 'complete', concept: [{ code: 'L1', display: 'Un' }] });
  t.equal((await validateCodeInValueSet(tc, VS + 'later', { system: LATER, code: 'L1' })).result, true, 'stored: L1 is in it');
  t.equal((await validateCodeInValueSet(tc, VS + 'later', { system: LATER, code: 'L2' })).result, false, 'and another code is not');

  // FR Core identity reliability: the whole fr-core-cs-v2-0445 (21 codes).
  await put(frCore('ValueSet-fr-core-vs-identity-reliability.json'));
  await put(frCore('CodeSystem-fr-core-cs-v2-0445.json'));
  t.equal((await validateCodeInValueSet(tc, RELIABILITY_VS, { system: FR_0445, code: 'VALI' })).result, true, 'FR Core: VALI is in it');
  t.equal((await validateCodeInValueSet(tc, RELIABILITY_VS, { system: FR_0445, code: 'NOPE' })).result, false, 'FR Core: an unknown code is not');
  const expanded = (await get('ValueSet/$expand', { url: RELIABILITY_VS })).body;
  t.equal(expanded.expansion.total, 21, 'its 21 codes');
  t.ok(codes(expanded).includes(`${FR_0445}|VALI`));
});

t.test('CodeSystem $lookup, $validate-code, $subsumes', async (t) => {
  const { client, get, post } = await setup(t);
  const lookup = (await client.operation({ name: '$lookup', resourceType: 'CodeSystem', method: 'GET', input: { system: SOINS, code: 'SOIN-INF' } })) as any;
  t.equal(value(lookup, 'name'), 'Soins');
  t.equal(value(lookup, 'version'), '1');
  t.equal(value(lookup, 'display'), 'Soins infirmiers');
  const designation = param(lookup, 'designation');
  t.same(designation.part, [
    { name: 'language', valueCode: 'en' },
    { name: 'use', valueCoding: { system: 'http://snomed.info/sct', code: '900000000000013009' } },
    { name: 'value', valueString: 'Nursing care' },
  ]);
  const props = (p: any) => p.parameter.filter((x: any) => x.name === 'property').map((x: any) => `${x.part[0].valueCode}=${x.part[1].valueCode ?? x.part[1].valueString}`);
  t.same(props(lookup).sort(), ['child=SOIN-INF-INJ', 'child=SOIN-INF-PANS', 'child=SOIN-INF-PERF', 'famille=INF', 'parent=SOIN'], 'properties, parent and children');
  const perf = (await get('CodeSystem/soins/$lookup', { code: 'SOIN-INF-PERF' })).body;
  t.equal(value(perf, 'display'), 'Perfusion', 'instance level');
  t.same(props(perf).sort(), ['famille=INF', 'parent=SOIN-INF'], 'the parent as the CodeSystem states it');
  const root = (await post('CodeSystem/$lookup', [{ name: 'coding', valueCoding: { system: SOINS, code: 'SOIN' } }, { name: 'property', valueCode: 'definition' }])).body;
  t.same(props(root), ['definition=Tout acte de soin'], 'POST with a coding, only the property asked for');
  const unknownCode = await get('CodeSystem/$lookup', { system: SOINS, code: 'NOPE' });
  t.equal(unknownCode.status, 404);
  t.match(unknownCode.body.issue[0].details.text, /'NOPE'.*soins/);
  const unknownSystem = await get('CodeSystem/$lookup', { system: 'http://example.org/unknown', code: 'X' });
  t.equal(unknownSystem.status, 404);
  t.match(unknownSystem.body.issue[0].details.text, /CodeSystem http:\/\/example.org\/unknown is not known/);

  // $validate-code on a CodeSystem
  const csValidate = async (params: Record<string, string>, path = 'CodeSystem/$validate-code') => (await get(path, params)).body;
  t.equal(value(await csValidate({ url: SOINS, code: 'SOIN-KINE' }), 'result'), true);
  t.equal(value(await csValidate({ url: SOINS, code: 'NOPE' }), 'result'), false);
  const badDisplay = await csValidate({ url: SOINS, code: 'SOIN-KINE', display: 'Massage' });
  t.same([value(badDisplay, 'result'), value(badDisplay, 'display')], [false, 'Kinésithérapie'], 'a wrong display');
  t.equal(value(await csValidate({ code: 'ADM' }, 'CodeSystem/soins/$validate-code'), 'result'), true, 'instance level');
  const ccCs = await post('CodeSystem/$validate-code', [{ name: 'url', valueUri: OTHER }, { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: SOINS, code: 'ADM' }, { system: OTHER, code: 'X1' }] } }]);
  t.equal(value(ccCs.body, 'result'), true, 'a CodeableConcept: its coding of this CodeSystem');
  t.equal((await get('CodeSystem/$validate-code', { url: 'http://example.org/unknown', code: 'X' })).status, 404, 'an unknown CodeSystem');

  // $subsumes
  const subsumes = async (a: string, b: string) => value((await get('CodeSystem/$subsumes', { system: SOINS, codeA: a, codeB: b })).body, 'outcome');
  t.equal(await subsumes('SOIN', 'SOIN-INF-PANS'), 'subsumes', 'nesting, two levels');
  t.equal(await subsumes('SOIN-INF-PERF', 'SOIN'), 'subsumed-by', 'through a parent property');
  t.equal(await subsumes('SOIN-KINE', 'SOIN-INF'), 'not-subsumed');
  t.equal(await subsumes('ADM', 'ADM'), 'equivalent');
  const byCodings = await client.operation({
    name: '$subsumes', resourceType: 'CodeSystem', method: 'POST',
    input: { resourceType: 'Parameters', parameter: [{ name: 'codingA', valueCoding: { system: SOINS, code: 'SOIN-INF-INJ' } }, { name: 'codingB', valueCoding: { system: SOINS, code: 'SOIN-INF' } }] },
  }) as any;
  t.equal(value(byCodings, 'outcome'), 'subsumed-by', 'codingA / codingB');
  t.equal(value((await get('CodeSystem/soins/$subsumes', { codeA: 'SOIN-INF', codeB: 'SOIN-INF-PERF' })).body, 'outcome'), 'subsumes', 'instance level');
  const badCode = await get('CodeSystem/$subsumes', { system: SOINS, codeA: 'SOIN', codeB: 'NOPE' });
  t.equal(badCode.status, 400, 'an unknown code');
  t.match(badCode.body.issue[0].details.text, /'NOPE'/);
  t.equal((await get('CodeSystem/$subsumes', { system: 'http://example.org/unknown', codeA: 'A', codeB: 'B' })).status, 404, 'an unknown CodeSystem');
  const mixed = await post('CodeSystem/$subsumes', [{ name: 'codingA', valueCoding: { system: SOINS, code: 'SOIN' } }, { name: 'codingB', valueCoding: { system: OTHER, code: 'X1' } }]);
  t.equal(mixed.status, 400, 'codings of two systems');
});

t.test('the R4 base terminology, without storing anything', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const get = (path: string, params: Record<string, string>) => http('GET', `${s.url}/${path}?${new URLSearchParams(params)}`);
  const gender = (await client.operation({ name: '$expand', resourceType: 'ValueSet', method: 'GET', input: { url: GENDER_VS } })) as any;
  t.same(codes(gender), ['male', 'female', 'other', 'unknown'].map((c) => `${GENDER}|${c}`), 'AdministrativeGender expands');
  t.equal(gender.expansion.contains[1].display, 'Female');
  t.same(codes((await get('ValueSet/$expand', { url: `${GENDER_VS}|4.0.1` })).body).length, 4, 'with its version, as R4 bindings name it');
  t.equal((await get('ValueSet/$expand', { url: GENDER_VS, valueSetVersion: '9.9' })).status, 404, 'another version is unknown');
  const validate = async (vs: string, params: Record<string, string>) => value((await get('ValueSet/$validate-code', { url: vs, ...params })).body, 'result');
  t.equal(await validate(GENDER_VS, { system: GENDER, code: 'female' }), true);
  t.equal(await validate(GENDER_VS, { system: GENDER, code: 'F' }), false);
  t.equal(await validate(GENDER_VS, { code: 'female' }), true, 'a code without system (Patient.gender is a code)');
  const OBS_STATUS = 'http://hl7.org/fhir/ValueSet/observation-status|4.0.1';
  t.equal(await validate(OBS_STATUS, { system: 'http://hl7.org/fhir/observation-status', code: 'final' }), true, 'ObservationStatus');
  t.equal(await validate(OBS_STATUS, { system: 'http://hl7.org/fhir/observation-status', code: 'done' }), false);
  // HL7 v2 and v3 terminologies are there too.
  t.equal(await validate('http://terminology.hl7.org/ValueSet/v2-0203', { system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }), true, 'v2 table 0203');
  t.equal(await validate('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode', { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }), true, 'v3 ActEncounterCode');
  t.equal(await validate('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode', { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' }), true);
  t.equal(await validate('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode', { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: '_ActAccountCode' }), false);
  const tc = { ex: s.db };
  t.equal((await validateCodeInValueSet(tc, `${GENDER_VS}|4.0.1`, { code: 'unknown' })).result, true, 'validateCodeInValueSet on a base binding');
  const amb = (await get('CodeSystem/$lookup', { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' })).body;
  t.equal(value(amb, 'display'), 'ambulatory', '$lookup in a v3 CodeSystem');
  t.equal(value((await get('CodeSystem/$subsumes', { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', codeA: '_ActEncounterCode', codeB: 'AMB' })).body, 'outcome'), 'subsumes');
  // A stored ValueSet with the same URL overrides the base one.
  await http('PUT', `${s.url}/ValueSet/my-gender`, { resourceType: 'ValueSet', id: 'my-gender', url: GENDER_VS, status: 'active', compose: { include: [{ system: GENDER, concept: [{ code: 'female' }] }] } });
  t.same(codes((await get('ValueSet/$expand', { url: GENDER_VS })).body), [`${GENDER}|female`], 'a stored ValueSet overrides the base one');
  // And search uses them: token :in with a base ValueSet (observation-category, a whole CodeSystem).
  const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
  const observation = (id: string, system: string, code: string) =>
    http('PUT', `${s.url}/Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { text: 'mesure' }, category: [{ coding: [{ system, code }] }] });
  for (const [id, system, code] of [['vital', CATEGORY, 'vital-signs'], ['lab', CATEGORY, 'laboratory'], ['other', 'https://example.org/categorie', 'laboratory']]) {
    t.equal((await observation(id, system, code)).status, 201, `Observation ${id}`);
  }
  const bundle = (await get('Observation', { 'category:in': 'http://hl7.org/fhir/ValueSet/observation-category' })).body;
  t.same((bundle.entry ?? []).map((e: any) => e.resource.id).sort(), ['lab', 'vital'], 'search :in with a base ValueSet');
});

t.test('errors: 404 naming what is unknown, 400 for missing or contradictory parameters, never 500', async (t) => {
  const { get, post, s } = await setup(t);
  const expectError = async (res: Promise<{ status: number; body: any }>, status: number, text: RegExp, label: string) => {
    const r = await res;
    t.equal(r.status, status, `${label}: ${status}`);
    t.equal(r.body?.resourceType, 'OperationOutcome', `${label}: an OperationOutcome`);
    t.match(r.body?.issue?.[0]?.details?.text ?? '', text, `${label}: message`);
  };
  await expectError(get('ValueSet/$expand', { url: VS + 'nope' }), 404, /ValueSet https:\/\/example.org\/fhir\/ValueSet\/nope is not known/, 'unknown ValueSet');
  await expectError(get('ValueSet/nope/$expand'), 404, /ValueSet\/nope/, 'unknown ValueSet id');
  await expectError(get('ValueSet/$validate-code', { url: VS + 'nope', system: SOINS, code: 'ADM' }), 404, /ValueSet.*nope/, '$validate-code on an unknown ValueSet');
  await expectError(get('ValueSet/nope/$validate-code', { system: SOINS, code: 'ADM' }), 404, /ValueSet\/nope/, '$validate-code on an unknown id');
  await expectError(get('CodeSystem/nope/$lookup', { code: 'ADM' }), 404, /CodeSystem\/nope/, '$lookup on an unknown id');
  await expectError(get('ValueSet/$expand'), 400, /needs the ValueSet/, '$expand without a ValueSet');
  await expectError(post('ValueSet/$expand', [{ name: 'url', valueUri: VS + 'isa' }, { name: 'valueSet', resource: { resourceType: 'ValueSet', status: 'active' } }]), 400, /not both/, 'url and valueSet');
  await expectError(get('ValueSet/$expand', { url: `${VS}isa|1`, valueSetVersion: '2' }), 400, /version/, 'contradictory versions');
  await expectError(get('ValueSet/isa/$expand', { url: VS + 'isa' }), 400, /type level/, 'url at instance level');
  await expectError(get('ValueSet/$expand', { url: VS + 'isa', count: '-1' }), 400, /count must be a non-negative integer/, 'a negative count');
  await expectError(get('ValueSet/$expand', { url: VS + 'isa', context: 'http://x' }), 400, /context is not supported/, 'an unsupported parameter');
  await expectError(get('ValueSet/$validate-code', { url: VS + 'isa' }), 400, /one \(and only one\) of code, coding or codeableConcept/, 'no code');
  await expectError(post('ValueSet/$validate-code', [{ name: 'url', valueUri: VS + 'isa' }, { name: 'code', valueCode: 'ADM' }, { name: 'coding', valueCoding: { system: SOINS, code: 'ADM' } }]), 400, /only one/, 'code and coding');
  await expectError(post('ValueSet/$validate-code', [{ name: 'url', valueUri: VS + 'isa' }, { name: 'coding', valueString: 'ADM' }]), 400, /takes a Coding/, 'a coding that is not one');
  await expectError(http('POST', `${s.url}/ValueSet/$expand`, { resourceType: 'Patient' }), 400, /Parameters resource/, 'a body that is not Parameters');
  await expectError(get('CodeSystem/$lookup', { code: 'ADM' }), 400, /needs a system/, '$lookup without system');
  await expectError(get('CodeSystem/$lookup', { system: SOINS }), 400, /needs code or coding/, '$lookup without code');
  await expectError(get('CodeSystem/$subsumes', { system: SOINS, codeA: 'ADM' }), 400, /codeB or codingB/, '$subsumes without B');
  await expectError(get('CodeSystem/$validate-code', { code: 'ADM' }), 400, /needs the CodeSystem/, 'CodeSystem $validate-code without url');
  await expectError(get('CodeSystem/soins/$lookup', { system: OTHER, code: 'X1' }), 400, /is not the CodeSystem/, 'a system that is not the instance');
  t.equal((await http('DELETE', `${s.url}/ValueSet/$expand`)).status, 405, 'DELETE on an operation: 405');
});

t.test('the CapabilityStatement lists the operations on ValueSet and CodeSystem only', async (t) => {
  const s = await startServer(t);
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const ops = (type: string) => (cs.rest[0].resource.find((r: any) => r.type === type).operation ?? []).map((o: any) => `${o.name} ${o.definition}`).sort();
  const hl7 = 'http://hl7.org/fhir/OperationDefinition/';
  const terminologyOps = (type: string) => ops(type).filter((o: string) => /^(expand|validate-code|lookup|subsumes) /.test(o));
  t.same(terminologyOps('ValueSet'), [`expand ${hl7}ValueSet-expand`, `validate-code ${hl7}ValueSet-validate-code`]);
  t.same(terminologyOps('CodeSystem'), [`lookup ${hl7}CodeSystem-lookup`, `subsumes ${hl7}CodeSystem-subsumes`, `validate-code ${hl7}CodeSystem-validate-code`]);
  t.same(terminologyOps('Patient'), [], 'not on other types');
});
