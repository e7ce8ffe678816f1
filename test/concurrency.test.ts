// Concurrent writers never lose an update: version-aware updates have exactly one winner per
// version, and unconditional updates and patches all land as distinct versions.
import t from 'tap';
import { http, startServer } from './helpers/server.ts';

t.test('32 concurrent version-aware updates: one winner per version, the others 412', async (t) => {
  const s = await startServer(t);
  const created = await http('PUT', `${s.url}/Patient/race`, { resourceType: 'Patient', id: 'race' });
  t.equal(created.status, 201);
  for (let version = 1; version <= 3; version++) {
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        http('PUT', `${s.url}/Patient/race`, { resourceType: 'Patient', id: 'race', name: [{ family: `writer-${version}-${i}` }] }, { 'if-match': `W/"${version}"` })
      )
    );
    const statuses = results.map((r) => r.status);
    t.equal(statuses.filter((x) => x === 200).length, 1, `version ${version}: exactly one winner`);
    t.equal(statuses.filter((x) => x === 412).length, 31, `version ${version}: 31 precondition failures`);
    const winner = results.find((r) => r.status === 200)!;
    const current = await http('GET', `${s.url}/Patient/race`);
    t.equal(current.body.meta.versionId, String(version + 1));
    t.same(current.body.name, winner.body.name, 'the stored content is the winner\'s');
  }
  const history = await http('GET', `${s.url}/Patient/race/_history?_count=100`);
  t.equal(history.body.total, 4, 'one version per round, no more');
});

t.test('32 concurrent unconditional updates all land as distinct versions', async (t) => {
  const s = await startServer(t);
  await http('PUT', `${s.url}/Patient/busy`, { resourceType: 'Patient', id: 'busy' });
  const results = await Promise.all(
    Array.from({ length: 32 }, (_, i) => http('PUT', `${s.url}/Patient/busy`, { resourceType: 'Patient', id: 'busy', name: [{ family: `w${i}` }] }))
  );
  t.ok(results.every((r) => r.status === 200), 'every update succeeds');
  const versions = results.map((r) => Number(r.body.meta.versionId)).sort((a, b) => a - b);
  t.same(versions, Array.from({ length: 32 }, (_, i) => i + 2), 'versions 2..33, each given once');
  const history = await http('GET', `${s.url}/Patient/busy/_history?_count=100`);
  t.equal(history.body.total, 33);
  const families = new Set(history.body.entry.filter((e: any) => e.resource.name).map((e: any) => e.resource.name[0].family));
  t.equal(families.size, 32, 'every writer\'s content is in the history');
});

t.test('32 concurrent patches that each append: nothing is lost', async (t) => {
  const s = await startServer(t);
  await http('PUT', `${s.url}/Patient/list`, { resourceType: 'Patient', id: 'list', identifier: [{ value: 'seed' }] });
  const results = await Promise.all(
    Array.from({ length: 32 }, (_, i) =>
      http('PATCH', `${s.url}/Patient/list`, [{ op: 'add', path: '/identifier/-', value: { value: `p${i}` } }], {
        'content-type': 'application/json-patch+json',
      })
    )
  );
  t.ok(results.every((r) => r.status === 200), 'every patch succeeds');
  const final = await http('GET', `${s.url}/Patient/list`);
  t.equal(final.body.identifier.length, 33, 'all 32 appended values are there');
  t.equal(final.body.meta.versionId, '33');
});

t.test('concurrent creates and transactions do not interfere', async (t) => {
  const s = await startServer(t);
  const bundle = (n: number) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: 10 }, (_, i) => ({
      fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(n * 100 + i).padStart(12, '0')}`,
      resource: { resourceType: 'Patient', name: [{ family: `tx${n}-${i}` }] },
      request: { method: 'POST', url: 'Patient' },
    })),
  });
  const results = await Promise.all([
    ...Array.from({ length: 8 }, (_, n) => http('POST', s.url, bundle(n))),
    ...Array.from({ length: 20 }, (_, i) => http('POST', `${s.url}/Patient`, { resourceType: 'Patient', name: [{ family: `single${i}` }] })),
  ]);
  t.ok(results.every((r) => r.status === 200 || r.status === 201), 'all succeed');
  const total = await http('GET', `${s.url}/Patient?_summary=count`);
  t.equal(total.body.total, 100);
});
