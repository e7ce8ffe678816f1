// Search features beyond the basic parameter types (search.html): composite parameters (the
// components of one item matched together, prefixes on the second), _text and _content (French
// full text, stemming, accents), _list, UCUM unit conversion in quantity search, and the
// access filter applied inside chains, _has and _list. Searches go through fhir-kit-client over
// HTTP; fetch (http()) where the status matters; the access filter test calls search() on the
// server's database, as an authenticated caller's context would.
import t from 'tap';
import { harness, idsOf, type Harness, type Params } from './helpers/search.ts';
import { http } from './helpers/server.ts';
import { search as runSearch, type SearchResult } from '../src/fhir/search/search.ts';

/** search() answers JSON text when no entry is reshaped; the Bundle either way. */
const bundleOf = (r: SearchResult) => r.bundle ?? JSON.parse(r.text!);
import { limitsOf, type FhirContext } from '../src/fhir/context.ts';


const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SNOMED = 'http://snomed.info/sct';
const XHTML = 'http://www.w3.org/1999/xhtml';

/** A Quantity; system null for none (the unit as written only). */
const qty = (value: number, code: string, system: string | null = UCUM, unit = code) => (system ? { value, unit, system, code } : { value, unit });
const narrative = (text: string) => ({ status: 'generated', div: `<div xmlns="${XHTML}"><p>${text}</p></div>` });

/** GET with fetch, for status codes; strict adds Prefer: handling=strict. */
async function get(h: Harness, path: string, strict = false) {
  return http('GET', `${h.s.url}/${path}`, undefined, strict ? { prefer: 'handling=strict' } : {});
}

// ---------------------------------------------------------------- composite

t.test('composite: code-value-*, component and combo (same item), prefixes, OR/AND, escaping, :missing', async (t) => {
  const h = await harness(t);
  const bp = (id: string, sys: number, dia: number) => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code: '85354-9' }] },
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: qty(sys, 'mm[Hg]', UCUM, 'mmHg') },
      { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: qty(dia, 'mm[Hg]', UCUM, 'mmHg') },
    ],
  });
  await h.put(
    bp('bp-high', 150, 95),
    // 160 is the diastolic value here: a systolic search must not pair 8480-6 with it
    bp('bp-inverted', 110, 160),
    { resourceType: 'Observation', id: 'w72', status: 'final', code: { coding: [{ system: LOINC, code: '29463-7' }] }, valueQuantity: qty(72, 'kg') },
    { resourceType: 'Observation', id: 'w68500g', status: 'final', code: { coding: [{ system: LOINC, code: '29463-7' }] }, valueQuantity: qty(68500, 'g') },
    // the value belongs to another code: code-value-quantity pairs code and value of one Observation
    { resourceType: 'Observation', id: 'height', status: 'final', code: { coding: [{ system: LOINC, code: '8302-2' }] }, valueQuantity: qty(72, 'cm') },
    {
      resourceType: 'Observation', id: 'abo', status: 'final',
      code: { coding: [{ system: LOINC, code: '882-1' }, { system: 'urn:oid:1.2.250.1.213.2.12', code: 'ABO' }] },
      valueCodeableConcept: { coding: [{ system: SNOMED, code: '112144000', display: 'Blood group A' }] },
    },
    { resourceType: 'Observation', id: 'str', status: 'final', code: { coding: [{ system: LOINC, code: '5778-6' }] }, valueString: 'Jaune Paille' },
    { resourceType: 'Observation', id: 'dollar', status: 'final', code: { coding: [{ system: LOINC, code: '5778-6' }] }, valueString: 'a$b, c' },
    { resourceType: 'Observation', id: 'dt', status: 'final', code: { coding: [{ system: LOINC, code: '21112-8' }] }, valueDateTime: '2024-03-15' },
    { resourceType: 'Observation', id: 'novalue', status: 'final', code: { coding: [{ system: LOINC, code: '29463-7' }] } }
  );
  await h.matrix(t, 'Observation', [
    // code-value-quantity: token $ quantity, prefixes on the quantity
    [{ 'code-value-quantity': `${LOINC}|29463-7$gt70|${UCUM}|kg` }, ['w72']],
    [{ 'code-value-quantity': `${LOINC}|29463-7$ge68|${UCUM}|kg` }, ['w68500g', 'w72']],
    [{ 'code-value-quantity': `29463-7$lt70000|${UCUM}|g` }, ['w68500g']],
    [{ 'code-value-quantity': '29463-7$72' }, ['w72']],
    [{ 'code-value-quantity': '8302-2$72' }, ['height']],
    [{ 'code-value-quantity': '29463-7$72||cm' }, []],
    [{ 'code-value-quantity': `${LOINC}|8480-6$150` }, []], // components are not the Observation's own code/value
    // component-code-value-quantity: code and value of the SAME component
    [{ 'component-code-value-quantity': `${LOINC}|8480-6$gt140|${UCUM}|mm[Hg]` }, ['bp-high']],
    [{ 'component-code-value-quantity': `${LOINC}|8462-4$gt140` }, ['bp-inverted']],
    [{ 'component-code-value-quantity': `${LOINC}|8480-6$gt155` }, []],
    [{ 'component-code-value-quantity': `${LOINC}|8480-6$110` }, ['bp-inverted']],
    [{ 'component-code-value-quantity': `${LOINC}|8462-4$le95` }, ['bp-high']],
    [{ 'component-code-value-quantity': `${LOINC}|8480-6$ap105` }, ['bp-inverted']],
    // combo: the Observation itself and each of its components
    [{ 'combo-code-value-quantity': `${LOINC}|8480-6$gt140` }, ['bp-high']],
    [{ 'combo-code-value-quantity': '29463-7$72' }, ['w72']],
    [{ 'combo-code-value-quantity': '8462-4$gt90' }, ['bp-high', 'bp-inverted']],
    // token $ token
    [{ 'code-value-concept': `${LOINC}|882-1$${SNOMED}|112144000` }, ['abo']],
    [{ 'code-value-concept': `urn:oid:1.2.250.1.213.2.12|ABO$112144000` }, ['abo']],
    [{ 'code-value-concept': `${LOINC}|882-1$${SNOMED}|112149005` }, []],
    [{ 'code-value-concept': `${LOINC}|29463-7$${SNOMED}|112144000` }, []],
    // token $ string: starts-with, case and accent folded
    [{ 'code-value-string': `${LOINC}|5778-6$jaune` }, ['str']],
    [{ 'code-value-string': `${LOINC}|5778-6$JAUNE PAI` }, ['str']],
    [{ 'code-value-string': `${LOINC}|5778-6$paille` }, []],
    // escaping: \$ and \, belong to the value
    [{ 'code-value-string': `5778-6$a\\$b\\, c` }, ['dollar']],
    [{ 'code-value-string': `5778-6$a\\$c` }, []],
    // token $ date with prefixes and precision
    [{ 'code-value-date': '21112-8$2024-03' }, ['dt']],
    [{ 'code-value-date': '21112-8$gt2024-04' }, []],
    [{ 'code-value-date': '21112-8$lt2024-04' }, ['dt']],
    [{ 'code-value-date': '29463-7$2024-03' }, []],
    // OR with commas (each value a whole tuple), AND by repetition
    [{ 'code-value-quantity': `29463-7$72,8302-2$72` }, ['height', 'w72']],
    [{ 'code-value-quantity': `29463-7$gt60|${UCUM}|kg,29463-7$lt69|${UCUM}|kg` }, ['w68500g', 'w72']],
    [{ 'code-value-quantity': [`29463-7$gt60|${UCUM}|kg`, `29463-7$lt69|${UCUM}|kg`] }, ['w68500g']],
    [{ 'component-code-value-quantity': [`8480-6$gt140`, `8462-4$lt100`] }, ['bp-high']],
    // :missing
    [{ 'code-value-quantity:missing': 'false', code: '29463-7' }, ['w68500g', 'w72']],
    [{ 'code-value-quantity:missing': 'true', code: '29463-7' }, ['novalue']],
  ]);
  // The index follows updates: bp-high's systolic value drops to 130.
  await h.put({ ...bp('bp-high', 130, 95) });
  t.strictSame(await h.find('Observation', { 'component-code-value-quantity': `8480-6$gt140` }), [], 'updated component no longer matches');
  t.strictSame(await h.find('Observation', { 'component-code-value-quantity': `8480-6$130` }), ['bp-high'], 'new component value matches');
});

t.test('composite: Group characteristic-value, DocumentReference relationship, MolecularSequence three components', async (t) => {
  const h = await harness(t);
  await h.put(
    {
      resourceType: 'Group', id: 'g1', type: 'person', actual: true,
      characteristic: [
        { code: { coding: [{ system: SNOMED, code: '73211009' }] }, valueCodeableConcept: { coding: [{ system: SNOMED, code: '44054006' }] }, exclude: false },
        { code: { text: 'suivi DAC' }, valueBoolean: true, exclude: false },
      ],
    },
    {
      resourceType: 'Group', id: 'g2', type: 'person', actual: true,
      characteristic: [{ code: { coding: [{ system: SNOMED, code: '73211009' }] }, valueBoolean: true, exclude: false }],
    },
    { resourceType: 'DocumentReference', id: 'd1', status: 'superseded', content: [{ attachment: { title: 'PPCS v1' } }] },
    {
      resourceType: 'DocumentReference', id: 'd2', status: 'current', content: [{ attachment: { title: 'PPCS v2' } }],
      relatesTo: [{ code: 'replaces', target: { reference: 'DocumentReference/d1' } }],
    },
    {
      resourceType: 'MolecularSequence', id: 'ms1', coordinateSystem: 1,
      referenceSeq: { genomeBuild: 'GRCh38', chromosome: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/chromosome-human', code: '1' }] } },
      variant: [{ start: 100, end: 150 }, { start: 900, end: 950 }],
    }
  );
  await h.matrix(t, 'Group', [
    [{ 'characteristic-value': `${SNOMED}|73211009$${SNOMED}|44054006` }, ['g1']],
    [{ 'characteristic-value': `${SNOMED}|73211009$true` }, ['g2']], // g1's "true" belongs to another characteristic
    [{ 'characteristic-value': `73211009$44054006,73211009$true` }, ['g1', 'g2']],
  ]);
  await h.matrix(t, 'DocumentReference', [
    [{ relationship: 'replaces$DocumentReference/d1' }, ['d2']],
    [{ relationship: 'transforms$DocumentReference/d1' }, []],
    [{ relationship: 'replaces$DocumentReference/d2' }, []],
  ]);
  await h.matrix(t, 'MolecularSequence', [
    [{ 'chromosome-variant-coordinate': '1$ge100$le150' }, ['ms1']],
    [{ 'chromosome-variant-coordinate': '1$ge100$lt900' }, ['ms1']],
    [{ 'chromosome-variant-coordinate': '1$gt100$lt900' }, []], // start and end of the same variant
    [{ 'chromosome-variant-coordinate': '2$ge100$le150' }, []],
  ]);
});

t.test('composite: malformed values are 400, in strict and lenient handling; declared in the CapabilityStatement', async (t) => {
  const h = await harness(t);
  for (const strict of [false, true]) {
    for (const q of [
      'code-value-quantity=29463-7', // one component missing
      'code-value-quantity=29463-7$72$3', // one too many
      'code-value-quantity=$72', // empty component
      'code-value-quantity=29463-7$abc', // not a number
      'code-value-date=21112-8$2024-13-45', // not a date
      'code-value-quantity:exact=29463-7$72', // no such modifier on a composite
    ]) {
      const res = await get(h, `Observation?${q.replace(/\$/g, '%24')}`, strict);
      t.equal(res.status, 400, `${q} (${strict ? 'strict' : 'lenient'})`);
      t.equal(res.body?.resourceType, 'OperationOutcome', `${q}: OperationOutcome`);
    }
  }
  const cs = (await get(h, 'metadata')).body;
  const obs = cs.rest[0].resource.find((r: any) => r.type === 'Observation');
  const param = (name: string) => obs.searchParam.find((p: any) => p.name === name);
  t.equal(param('code-value-quantity')?.type, 'composite', 'code-value-quantity declared');
  t.equal(param('component-code-value-quantity')?.type, 'composite', 'component-code-value-quantity declared');
  t.equal(param('_text')?.type, 'string', '_text declared');
  t.equal(param('_content')?.type, 'string', '_content declared');
  t.ok(param('_list'), '_list declared');
});

// ---------------------------------------------------------------- _text and _content

t.test('_text and _content: French stemming, accents either way, OR, AND, phrases, updates and deletes', async (t) => {
  const h = await harness(t);
  await h.put(
    {
      resourceType: 'Patient', id: 'helene', name: [{ family: 'Lefèvre', given: ['Hélène'] }],
      text: narrative('Hélène Lefèvre, patiente diabétique hospitalisée en mars, suivie par les infirmières à domicile pour ses pansements.'),
    },
    {
      resourceType: 'Patient', id: 'jp', name: [{ family: 'Durand', given: ['Jean-Pierre'] }],
      text: narrative('Jean-Pierre Durand : chutes répétées, kinésithérapie deux fois par semaine &amp; aide à la marche.'),
    },
    // no narrative: found by _content (its strings), never by _text
    { resourceType: 'Patient', id: 'nonarr', name: [{ family: 'Martin', given: ['Helene'] }] },
    {
      resourceType: 'CarePlan', id: 'cp', status: 'active', intent: 'plan', subject: { reference: 'Patient/helene' },
      description: 'Les infirmiers libéraux coordonnaient le passage quotidien ; réévaluation du diabète en juin.',
    }
  );
  await h.matrix(t, 'Patient', [
    // stemming: plural, other forms of the same word
    [{ _text: 'pansement' }, ['helene']],
    [{ _text: 'chute' }, ['jp']],
    [{ _text: 'diabète' }, ['helene']], // diabétique and diabète share a stem
    [{ _text: 'hospitalisation' }, ['helene']], // hospitalisée
    [{ _text: 'infirmier' }, ['helene']], // infirmières
    [{ _text: 'marcher' }, ['jp']], // marche
    // accents either way
    [{ _text: 'helene' }, ['helene']],
    [{ _text: 'HÉLÈNE' }, ['helene']],
    [{ _text: 'diabetique' }, ['helene']],
    [{ _text: 'kinesitherapie' }, ['jp']],
    // entities decoded, tags dropped
    [{ _text: 'aide' }, ['jp']],
    [{ _text: 'div' }, []],
    [{ _text: 'xhtml' }, []],
    // commas OR, words AND, phrases, exclusion, or
    [{ _text: 'chute,pansement' }, ['helene', 'jp']],
    [{ _text: 'chute pansement' }, []],
    [{ _text: 'infirmières domicile' }, ['helene']],
    [{ _text: '"infirmières à domicile"' }, ['helene']],
    [{ _text: '"domicile infirmières"' }, []],
    [{ _text: 'chute or pansement' }, ['helene', 'jp']],
    [{ _text: 'patiente -diabète' }, []],
    [{ _text: ['chute', 'semaine'] }, ['jp']],
    [{ _text: ['chute', 'mars'] }, []],
    [{ _text: 'lefevre', family: 'lef' }, ['helene']],
    // _content: every string, narrative included
    [{ _content: 'helene' }, ['helene', 'nonarr']],
    [{ _content: 'martin' }, ['nonarr']],
    [{ _text: 'martin' }, []],
  ]);
  await h.matrix(t, 'CarePlan', [
    [{ _content: 'coordonner' }, ['cp']], // coordonnaient
    [{ _content: 'infirmière' }, ['cp']], // infirmiers
    [{ _content: 'diabetique' }, ['cp']],
    [{ _content: 'liberal' }, ['cp']],
    [{ _text: 'coordonner' }, []],
    [{ _content: 'Patient' }, []], // references are not text
  ]);
  // System level: over every type
  t.strictSame(idsOf(await h.search(undefined, { _content: 'diabète' })), ['cp', 'helene'], '/?_content=diabète');
  // The index follows updates and deletes.
  await h.put({ resourceType: 'Patient', id: 'jp', name: [{ family: 'Durand' }], text: narrative('Suivi par le pharmacien.') });
  t.strictSame(await h.find('Patient', { _text: 'chute' }), [], 'replaced narrative no longer matches');
  t.strictSame(await h.find('Patient', { _text: 'pharmacie' }), [], 'pharmacien and pharmacie are different words for the stemmer');
  t.strictSame(await h.find('Patient', { _text: 'pharmaciens' }), ['jp'], 'new narrative matches');
  await h.client.delete({ resourceType: 'Patient', id: 'helene' });
  t.strictSame(await h.find('Patient', { _text: 'pansement' }), [], 'deleted resource no longer matches');
  // Errors
  t.equal((await get(h, 'Patient?_text:exact=chute')).status, 400, 'no modifier on _text');
  t.equal((await get(h, 'Patient?_content=')).status, 400, 'empty _content');
});

// ---------------------------------------------------------------- _list

t.test('_list: the resources a List references, of the searched type; deleted or unknown lists; functional lists', async (t) => {
  const h = await harness(t);
  const list = (id: string, ...refs: string[]) => ({
    resourceType: 'List', id, status: 'current', mode: 'working', entry: refs.map((reference) => ({ item: { reference } })),
  });
  await h.put(
    { resourceType: 'Patient', id: 'a', name: [{ family: 'Alpha' }] },
    { resourceType: 'Patient', id: 'b', name: [{ family: 'Beta' }] },
    { resourceType: 'Patient', id: 'c', name: [{ family: 'Gamma' }] },
    { resourceType: 'Practitioner', id: 'pr', name: [{ family: 'Médecin' }] },
    list('l1', 'Patient/a', 'Patient/b'),
    list('l2', 'Patient/c', 'Practitioner/pr'),
    list('gone', 'Patient/a')
  );
  await h.client.delete({ resourceType: 'List', id: 'gone' });
  await h.matrix(t, 'Patient', [
    [{ _list: 'l1' }, ['a', 'b']],
    [{ _list: 'List/l2' }, ['c']],
    [{ _list: 'l1,l2' }, ['a', 'b', 'c']],
    [{ _list: ['l1', 'l2'] }, []],
    [{ _list: 'l1', family: 'beta' }, ['b']],
    [{ _list: 'nope' }, []],
    [{ _list: 'gone' }, []],
  ]);
  t.strictSame(await h.find('Practitioner', { _list: 'l2' }), ['pr'], 'Practitioner?_list=l2');
  t.strictSame(idsOf(await h.search(undefined, { _list: 'l2' })), ['c', 'pr'], '/?_list=l2 (all types)');
  // Removing an entry removes it from the results.
  await h.put(list('l1', 'Patient/a'));
  t.strictSame(await h.find('Patient', { _list: 'l1' }), ['a'], 'after the List update');
  // Functional lists are not guessed: a warning (lenient) or 400 (strict).
  const lenient = await get(h, 'Patient?_list=%24current-allergies');
  t.equal(lenient.status, 200, 'functional list, lenient: 200');
  const warning = lenient.body.entry?.find((e: any) => e.search?.mode === 'outcome')?.resource;
  t.equal(warning?.issue?.[0]?.severity, 'warning', 'functional list, lenient: warning outcome');
  t.match(warning?.issue?.[0]?.details?.text, /_list/, 'the warning names _list');
  const strict = await get(h, 'Patient?_list=%24current-allergies', true);
  t.equal(strict.status, 400, 'functional list, strict: 400');
  t.match(strict.body?.issue?.[0]?.details?.text, /current-allergies/, 'the error names the list');
  t.equal((await get(h, 'Patient?_list=Patient/a')).status, 400, 'not a List reference: 400');
  t.equal((await get(h, 'Patient?_list:not=l1')).status, 400, 'no modifier on _list');
});

// ---------------------------------------------------------------- UCUM

t.test('quantity: UCUM conversion between commensurable units, with precision; other units by exact code', async (t) => {
  const h = await harness(t);
  const obs = (id: string, valueQuantity: unknown) => ({ resourceType: 'Observation', id, status: 'final', code: { text: id }, valueQuantity });
  await h.put(
    obs('g1500', qty(1500, 'g')),
    obs('kg1', qty(1, 'kg')),
    obs('m1', qty(1, 'm')),
    obs('cm150', qty(150, 'cm')),
    obs('mmhg120', qty(120, 'mm[Hg]', UCUM, 'mmHg')),
    obs('glu-mmol', qty(5.5, 'mmol/L')),
    obs('glu-mg', qty(99, 'mg/dL')),
    obs('temp', qty(37, 'Cel', UCUM, '°C')),
    obs('nosystem-kg', qty(2, 'kg', null)),
    obs('local-unit', qty(3, 'sachet', 'https://example.org/units')),
    obs('arbitrary', qty(40, '[iU]/L'))
  );
  await h.matrix(t, 'Observation', [
    // g vs kg
    [{ 'value-quantity': `gt1|${UCUM}|kg` }, ['g1500']],
    [{ 'value-quantity': `ge1|${UCUM}|kg` }, ['g1500', 'kg1']],
    [{ 'value-quantity': `lt1.2|${UCUM}|kg` }, ['kg1']],
    [{ 'value-quantity': `1.5|${UCUM}|kg` }, ['g1500']],
    [{ 'value-quantity': `1000|${UCUM}|g` }, ['kg1']],
    [{ 'value-quantity': `1500000|${UCUM}|mg` }, ['g1500']],
    // precision of the value searched, converted: 1 kg is [0.5, 1.5) kg; 1.4 kg is [1.35, 1.45) kg
    [{ 'value-quantity': `1|${UCUM}|kg` }, ['kg1']],
    [{ 'value-quantity': `1.4|${UCUM}|kg` }, []],
    [{ 'value-quantity': `1.50|${UCUM}|kg` }, ['g1500']],
    [{ 'value-quantity': `1.500|${UCUM}|kg` }, ['g1500']],
    [{ 'value-quantity': `1.501|${UCUM}|kg` }, []],
    [{ 'value-quantity': `ne1|${UCUM}|kg` }, ['g1500']],
    [{ 'value-quantity': `ap1.4|${UCUM}|kg` }, ['g1500']],
    // cm vs m
    [{ 'value-quantity': `100|${UCUM}|cm` }, ['m1']],
    [{ 'value-quantity': `1.5|${UCUM}|m` }, ['cm150']],
    [{ 'value-quantity': `1|${UCUM}|m` }, ['m1']],
    [{ 'value-quantity': `gt0.5|${UCUM}|m` }, ['cm150', 'm1']],
    [{ 'value-quantity': `1000|${UCUM}|mm` }, ['m1']],
    // mm[Hg] and kPa measure the same dimension (120 mm[Hg] = 16.0 kPa)
    [{ 'value-quantity': `120|${UCUM}|mm[Hg]` }, ['mmhg120']],
    [{ 'value-quantity': `16|${UCUM}|kPa` }, ['mmhg120']],
    [{ 'value-quantity': `17|${UCUM}|kPa` }, []],
    // mmol/L and mg/dL are not commensurable without a molar mass: never matched with each other
    [{ 'value-quantity': `gt0|${UCUM}|mmol/L` }, ['glu-mmol']],
    [{ 'value-quantity': `gt0|${UCUM}|mg/dL` }, ['glu-mg']],
    [{ 'value-quantity': `5.5|${UCUM}|mmol/L` }, ['glu-mmol']],
    [{ 'value-quantity': `5500|${UCUM}|umol/L` }, ['glu-mmol']],
    [{ 'value-quantity': `0.99|${UCUM}|g/L` }, ['glu-mg']],
    // kg is not a length
    [{ 'value-quantity': `gt0|${UCUM}|m` }, ['cm150', 'm1']],
    // temperatures: an offset, not only a factor (98.6 °F = 37 °C)
    [{ 'value-quantity': `37|${UCUM}|Cel` }, ['temp']],
    [{ 'value-quantity': `98.6|${UCUM}|[degF]` }, ['temp']],
    [{ 'value-quantity': `310.15|${UCUM}|K` }, ['temp']],
    [{ 'value-quantity': `gt38|${UCUM}|Cel` }, []],
    // no UCUM system on either side: the unit as written, no conversion
    [{ 'value-quantity': '2||kg' }, ['nosystem-kg']],
    [{ 'value-quantity': '2000||g' }, []],
    [{ 'value-quantity': `2|${UCUM}|kg` }, ['g1500']], // [1.5, 2.5) kg; nosystem-kg's unit is not said to be UCUM
    [{ 'value-quantity': '3|https://example.org/units|sachet' }, ['local-unit']],
    // arbitrary units cannot convert: exact code
    [{ 'value-quantity': `40|${UCUM}|[iU]/L` }, ['arbitrary']],
  ]);
  // Rows indexed before canonical values existed (migration 003) still match by their exact unit.
  await h.s.db.query(`UPDATE sp_quantity SET c_value = NULL, c_unit = NULL WHERE rid = (SELECT rid FROM resources WHERE resource_type = 'Observation' AND id = 'kg1')`);
  t.strictSame(await h.find('Observation', { 'value-quantity': `1|${UCUM}|kg` }), ['kg1'], 'row without canonical value: exact unit');
  t.strictSame(await h.find('Observation', { 'value-quantity': `1000|${UCUM}|g` }), [], 'row without canonical value: no conversion');
  // Without a unit, the number alone (units as written): 1500 g and 1.5 m are not 1.5.
  t.strictSame(await h.find('Observation', { 'value-quantity': '1500' }), ['g1500'], 'value-quantity=1500 (no unit)');
  t.strictSame(await h.find('Observation', { 'value-quantity': '150' }), ['cm150'], 'value-quantity=150 (no unit)');
});

// ---------------------------------------------------------------- access filter

t.test('access filter: chains, _has and _list do not see through hidden resources', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Patient', id: 'a', name: [{ family: 'Visible' }] },
    { resourceType: 'Patient', id: 'b', name: [{ family: 'Hidden' }] },
    // in a's compartment, pointing at resources the caller may not see (compartment of b)
    {
      resourceType: 'Observation', id: 'oa', status: 'final', code: { coding: [{ code: 'panel' }] }, subject: { reference: 'Patient/a' },
      hasMember: [{ reference: 'Observation/ob' }, { reference: 'Observation/oa2' }],
    },
    { resourceType: 'Observation', id: 'oa2', status: 'final', code: { coding: [{ code: 'open' }] }, subject: { reference: 'Patient/a' } },
    { resourceType: 'Observation', id: 'ob', status: 'final', code: { coding: [{ code: 'secret' }] }, subject: { reference: 'Patient/b' } },
    // in b's compartment only, pointing at a
    {
      resourceType: 'Observation', id: 'ob-focus', status: 'final', code: { coding: [{ code: 'secret' }] },
      subject: { reference: 'Patient/b' }, focus: [{ reference: 'Patient/a' }],
    },
    // in b's compartment: a panel with a's observation as a member
    {
      resourceType: 'Observation', id: 'ob-panel', status: 'final', code: { coding: [{ code: 'hidden-panel' }] },
      subject: { reference: 'Patient/b' }, hasMember: [{ reference: 'Observation/oa2' }],
    },
    { resourceType: 'List', id: 'lb', status: 'current', mode: 'working', subject: { reference: 'Patient/b' }, entry: [{ item: { reference: 'Patient/a' } }] }
  );
  const ctx = (restricted: boolean): FhirContext => ({
    db: h.s.db,
    ex: h.s.db,
    baseUrl: 'http://test/fhir',
    limits: limitsOf(h.s.config),
    inTransaction: false,
    access: restricted ? { condition: (alias, params) => `${alias}.compartments @> ARRAY[${params.add('Patient/a')}]::text[]` } : undefined,
  });
  const ids = async (restricted: boolean, type: string, query: Record<string, string>) =>
    idsOf(bundleOf(await runSearch(ctx(restricted), type, Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])), { strict: true, path: type })));
  const cases: [string, Record<string, string>, string[], string[]][] = [
    // [type, query, without filter, with filter]
    ['Observation', { 'has-member.code': 'secret' }, ['oa'], []],
    ['Observation', { 'has-member.code': 'open' }, ['oa', 'ob-panel'], ['oa']],
    ['Observation', { 'has-member:Observation.subject:Patient.name': 'hidden' }, ['oa'], []],
    ['Patient', { '_has:Observation:focus:code': 'secret' }, ['a'], []],
    ['Patient', { '_has:Observation:subject:code': 'open' }, ['a'], ['a']],
    ['Patient', { '_has:Observation:subject:_has:Observation:has-member:code': 'panel' }, ['a', 'b'], ['a']],
    ['Patient', { '_has:Observation:subject:_has:Observation:has-member:code': 'hidden-panel' }, ['a'], []],
    ['Observation', { '_has:Observation:has-member:subject.name': 'hidden' }, ['oa2'], []],
    ['Patient', { _list: 'lb' }, ['a'], []],
    ['Patient', { name: 'hidden' }, ['b'], []],
  ];
  for (const [type, query, open, restricted] of cases) {
    const label = `${type}?${Object.entries(query).map(([k, v]) => `${k}=${v}`).join('&')}`;
    t.strictSame(await ids(false, type, query), open, `${label} without access filter`);
    t.strictSame(await ids(true, type, query), restricted, `${label} with access filter`);
  }
});
