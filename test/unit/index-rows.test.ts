// The indexer (src/fhir/search/indexer.ts) writes one row per distinct value: two elements with
// the same value, or two paths of one parameter reaching it, give one row, not two.
import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { loadDefinitions } from '../../src/fhir/definitions.ts';
import { dropDuplicateRows, emptyRows, indexResource } from '../../src/fhir/search/indexer.ts';

t.before(loadDefinitions);

t.test('equal values give one row per parameter', async (t) => {
  const ins = { system: 'urn:oid:1.2.250.1.213.1.4.8', value: '1840199999999' };
  const patient: Patient = { resourceType: 'Patient', identifier: [ins, { ...ins }, { system: ins.system, value: '2840199999999' }], name: [{ family: 'Durand' }, { family: 'Durand' }] };
  const rows = indexResource(patient);
  const identifiers = rows.token.code.map((c, i) => [c, rows.token.system[i], rows.token.value[i]]).filter(([c]) => c === 'identifier');
  t.same(identifiers, [['identifier', ins.system, ins.value], ['identifier', ins.system, '2840199999999']], 'the repeated identifier once, the other kept');
  t.equal(rows.string.code.filter((c) => c === 'family').length, 1, 'the repeated family name once');
});

t.test('rows differing in any column are all kept, the columns stay aligned', async (t) => {
  const rows = emptyRows();
  const add = (code: string, system: string | null, value: string | null) => {
    rows.token.code.push(code);
    rows.token.system.push(system);
    rows.token.value.push(value);
    rows.token.display.push(null);
  };
  add('a', 's', 'v');
  add('a', null, 'v');
  add('a', 's', 'v');
  add('b', 's', 'v');
  add('a', 's', null);
  add('a', null, 'v');
  dropDuplicateRows(rows);
  t.same(rows.token.code, ['a', 'a', 'b', 'a']);
  t.same(rows.token.system, ['s', null, 's', 's']);
  t.same(rows.token.value, ['v', 'v', 'v', null]);
  t.same(rows.token.display, [null, null, null, null]);
});
