// Contained resources in search (search.html#contained), over HTTP with fhir-kit-client: a chain
// follows a `#id` reference into the contained resource it names; plain searches never return
// contained resources; _contained=true|both with _containedType=container|contained; the index
// rows follow the container through updates, deletions, transactions and reindexing.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { runnerFor } from '../src/fhir/reindex-jobs.ts';
import { harness, idsOf, refsOf } from './helpers/search.ts';
import { http } from './helpers/server.ts';

// obs-c: subject is its contained Patient Taylor; its contained Practitioner is its performer.
// obs-s: subject is the stored Patient Taylor. obs-x: holds a contained Patient Taylor that its
// subject does not name (the subject is the stored Patient Martin).
const fixtures = [
  { resourceType: 'Patient', id: 'pt-taylor', name: [{ family: 'Taylor', given: ['Stored'] }], gender: 'female' },
  { resourceType: 'Patient', id: 'pt-martin', name: [{ family: 'Martin' }] },
  {
    resourceType: 'Observation', id: 'obs-c', status: 'final', code: { text: 'poids' },
    contained: [
      { resourceType: 'Patient', id: 'p1', name: [{ family: 'Taylor', given: ['Contained'] }], gender: 'male', birthDate: '1950-02-03' },
      { resourceType: 'Practitioner', id: 'pr1', name: [{ family: 'Durand' }], identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.1', value: '810000000001' }] },
    ],
    subject: { reference: '#p1' },
    performer: [{ reference: '#pr1' }],
  },
  { resourceType: 'Observation', id: 'obs-s', status: 'final', code: { text: 'poids' }, subject: { reference: 'Patient/pt-taylor' } },
  {
    resourceType: 'Observation', id: 'obs-x', status: 'final', code: { text: 'poids' },
    contained: [{ resourceType: 'Patient', id: 'p9', name: [{ family: 'Taylor' }] }],
    subject: { reference: 'Patient/pt-martin' },
    note: [{ text: 'about #p9' }],
    // referenced from the resource, as R4 requires of a contained resource
    focus: [{ reference: '#p9' }],
  },
];

t.test('a chain is evaluated inside the contained resource a #id reference names', async (t) => {
  const h = await harness(t);
  await h.put(...(fixtures as any));
  await h.matrix(t, 'Observation', [
    [{ 'subject.name': 'taylor' }, ['obs-c', 'obs-s']],
    [{ 'subject:Patient.name': 'taylor' }, ['obs-c', 'obs-s']],
    [{ 'subject.given': 'contained' }, ['obs-c']],
    [{ 'subject.gender': 'male' }, ['obs-c']],
    [{ 'subject.birthdate': '1950-02' }, ['obs-c']],
    [{ 'subject._id': 'p1' }, ['obs-c']],
    [{ 'subject.name': 'taylor', 'subject.gender': 'female' }, ['obs-s']],
    [{ 'performer:Practitioner.identifier': 'urn:oid:1.2.250.1.71.4.2.1|810000000001' }, ['obs-c']],
    [{ 'performer.name': 'durand' }, ['obs-c']],
    [{ 'focus.name': 'taylor' }, ['obs-x']],
    // obs-x holds a Taylor, but its subject is Martin
    [{ 'subject.name': 'martin' }, ['obs-x']],
    // a contained subject is a subject
    [{ 'subject:missing': 'false' }, ['obs-c', 'obs-s', 'obs-x']],
    [{ 'subject:missing': 'true' }, []],
  ]);
  await h.matrix(t, 'Patient', [
    // plain searches never return contained resources
    [{ name: 'taylor' }, ['pt-taylor']],
    [{ _id: 'p1' }, []],
    [{ gender: 'male' }, []],
  ]);
  t.strictSame(await h.find('Practitioner', { name: 'durand' }), [], 'nor contained practitioners');
  // The Observation is not in a patient compartment named after its contained patient.
  const compartment = await http('GET', `${h.s.url}/Patient/p1/Observation`);
  t.not(compartment.status, 500, 'no error on a compartment named after a contained id');
  t.strictSame(idsOf(compartment.body), [], 'nothing is in it');
  t.strictSame(await h.find('Observation', { patient: 'Patient/pt-taylor' }), ['obs-s']);
  // _include follows stored resources only: a #id reference includes nothing.
  const included = await h.search('Observation', { _id: 'obs-c,obs-s', _include: 'Observation:subject' });
  t.strictSame(refsOf(included, 'include'), ['Patient/pt-taylor']);
});

t.test('_contained and _containedType', async (t) => {
  const h = await harness(t);
  await h.put(...(fixtures as any));
  const cases: [Record<string, string>, string[]][] = [
    [{ name: 'taylor', _contained: 'false' }, ['Patient/pt-taylor']],
    [{ name: 'taylor', _contained: 'true' }, ['Observation/obs-c', 'Observation/obs-x']],
    [{ name: 'taylor', _contained: 'true', _containedType: 'container' }, ['Observation/obs-c', 'Observation/obs-x']],
    [{ name: 'taylor', _contained: 'both' }, ['Observation/obs-c', 'Observation/obs-x', 'Patient/pt-taylor']],
    [{ name: 'taylor', gender: 'male', _contained: 'true' }, ['Observation/obs-c']],
    [{ gender: 'female', _contained: 'both' }, ['Patient/pt-taylor']],
    [{ name: 'nobody', _contained: 'both' }, []],
  ];
  for (const [params, expected] of cases) {
    const bundle = await h.search('Patient', params);
    t.strictSame(refsOf(bundle), expected, new URLSearchParams(params).toString());
    t.equal(bundle.total, expected.length, 'total');
  }

  // The contained resources themselves, with their container's URL and their id as fragment.
  const contained = await h.search('Patient', { name: 'taylor', _contained: 'true', _containedType: 'contained' });
  t.strictSame(
    contained.entry.map((e: any) => [e.fullUrl.slice(h.s.url.length), e.resource.resourceType, e.resource.id, e.search.mode]),
    [['/Observation/obs-c#p1', 'Patient', 'p1', 'match'], ['/Observation/obs-x#p9', 'Patient', 'p9', 'match']]
  );
  t.equal(contained.total, 2);
  t.same(contained.entry[0].resource.name, [{ family: 'Taylor', given: ['Contained'] }], 'the contained resource as stored in its container');
  const both = await h.search('Patient', { name: 'taylor', _contained: 'both', _containedType: 'contained' });
  t.strictSame(both.entry.map((e: any) => e.fullUrl.slice(h.s.url.length)).sort(), ['/Observation/obs-c#p1', '/Observation/obs-x#p9', '/Patient/pt-taylor']);
  const practitioner = await h.search('Practitioner', { identifier: '810000000001', _contained: 'true', _containedType: 'contained', _elements: 'name' });
  t.strictSame(practitioner.entry.map((e: any) => e.resource), [
    { resourceType: 'Practitioner', id: 'pr1', meta: { tag: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' }] }, name: [{ family: 'Durand' }] },
  ], '_elements shapes a contained resource');
  const counted = await h.search('Patient', { name: 'taylor', _contained: 'true', _containedType: 'contained', _summary: 'count' });
  t.equal(counted.total, 2);
  t.equal(counted.entry, undefined);

  // Paging the contained resources: the next link holds the rest, the previous one leads back.
  const page1 = await h.search('Patient', { name: 'taylor', _contained: 'both', _containedType: 'contained', _count: '2' });
  t.equal(page1.entry.length, 2);
  const next = page1.link.find((l: any) => l.relation === 'next');
  t.ok(next, 'a next link');
  const page2 = await h.client.nextPage({ bundle: page1 } as any) as any;
  t.equal(page2.entry.length, 1);
  const seen = [...page1.entry, ...page2.entry].map((e: any) => e.fullUrl).sort();
  t.strictSame(seen, both.entry.map((e: any) => e.fullUrl).sort(), 'the two pages hold every match once');
  t.ok(page2.link.find((l: any) => l.relation === 'previous'), 'a previous link');
  t.notOk(page2.link.find((l: any) => l.relation === 'next'), 'no next link on the last page');

  // Containers, paged and sorted as any search of several types.
  const sorted = await h.search('Patient', { name: 'taylor', _contained: 'both', _sort: '-_id', _count: '2' });
  t.strictSame(sorted.entry.map((e: any) => e.resource.id), ['pt-taylor', 'obs-x']);
  const rest = await h.client.nextPage({ bundle: sorted } as any) as any;
  t.strictSame(rest.entry.map((e: any) => e.resource.id), ['obs-c']);
  // _include applies to the containers found.
  const withInclude = await h.search('Patient', { name: 'taylor', gender: 'male', _contained: 'true', _include: 'Observation:subject' });
  t.strictSame(refsOf(withInclude), ['Observation/obs-c']);

  // Malformed or unsupported combinations are 400s naming the parameter.
  const bad: [string, RegExp][] = [
    ['Patient?name=taylor&_contained=maybe', /_contained/],
    ['Patient?name=taylor&_contained=true&_containedType=inside', /_containedType/],
    ['Patient?name=taylor&_contained=true&_containedType=contained&_sort=name', /_sort/],
    ['Patient?name=taylor&_contained=true&_containedType=contained&_include=Patient:organization', /_include/],
    ['?_contained=true', /_contained/],
    ['Patient/pt-taylor/Observation?_contained=true', /_contained/],
  ];
  for (const [url, message] of bad) {
    const r = await http('GET', `${h.s.url}/${url}`);
    t.equal(r.status, 400, url);
    t.equal(r.body.resourceType, 'OperationOutcome');
    t.match(JSON.stringify(r.body.issue), message);
  }
  const post = await http('POST', `${h.s.url}/Patient/_search`, 'name=taylor&_contained=true', { 'content-type': 'application/x-www-form-urlencoded' });
  t.equal(post.status, 200);
  t.strictSame(refsOf(post.body), ['Observation/obs-c', 'Observation/obs-x'], 'POST _search');
});

t.test('contained index rows follow their container: update, delete, transaction, reindex', async (t) => {
  const h = await harness(t);
  await h.put(...(fixtures as any));
  const chain = () => h.find('Observation', { 'subject.name': 'taylor' });
  const containers = async () => refsOf(await h.search('Patient', { name: 'taylor', _contained: 'true' }));

  // An update that drops the contained patient drops its rows; one that renames it, renames them.
  const renamed = JSON.parse(JSON.stringify(fixtures[2]));
  renamed.contained[0].name = [{ family: 'Bernard' }];
  await h.put(renamed);
  t.strictSame(await chain(), ['obs-s']);
  t.strictSame(await h.find('Observation', { 'subject.name': 'bernard' }), ['obs-c']);
  t.strictSame(await containers(), ['Observation/obs-x']);
  const dropped = { ...fixtures[4], contained: undefined, focus: undefined };
  await h.put(dropped as any);
  t.strictSame(await containers(), []);
  const rows = async () => Number((await h.s.db.query<{ n: string }>('SELECT count(*) AS n FROM contained_resources')).rows[0].n);
  t.equal(await rows(), 2, "obs-c's two contained resources are left");
  await h.client.delete({ resourceType: 'Observation', id: 'obs-c' });
  t.strictSame(await h.find('Observation', { 'subject.name': 'bernard' }), []);
  t.equal(await rows(), 0, 'a deletion drops its contained resources');
  const orphans = await h.s.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM sp_string WHERE resource_type LIKE '#%'` 
  );
  t.equal(Number(orphans.rows[0].n), 0, 'and their index rows');

  // A transaction's new resources get theirs too, deferred index rows and all.
  const tx: any = await h.client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [1, 2].map((n) => ({
        request: { method: 'POST', url: 'Observation' },
        resource: {
          resourceType: 'Observation', status: 'final', code: { text: `tx ${n}` },
          contained: [{ resourceType: 'Patient', id: 'p', name: [{ family: `Transaction${n}` }] }],
          subject: { reference: '#p' },
        },
      })),
    } as any,
  });
  t.equal(tx.entry.length, 2);
  t.equal((await h.find('Observation', { 'subject.name': 'transaction' })).length, 2, 'found through the chain');
  t.equal((await h.find('Observation', { 'subject.name': 'transaction2' })).length, 1);

  // A failed transaction leaves no contained rows behind.
  const before = await rows();
  const failed = await http('POST', h.s.url, {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, contained: [{ resourceType: 'Patient', id: 'q', name: [{ family: 'Lost' }] }], subject: { reference: '#q' } } },
      { request: { method: 'PUT', url: 'Observation/bad' }, resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } } },
    ],
  });
  t.equal(failed.status >= 400 && failed.status < 500, true, `a failed transaction is a 4xx (${failed.status})`);
  t.equal(await rows(), before, 'nothing of it is stored');
  t.strictSame(await h.find('Observation', { 'subject.name': 'lost' }), []);

  // $reindex rebuilds them (as migration 026's job does for data stored before it).
  await h.s.db.query(`DELETE FROM sp_string WHERE resource_type = '#Patient'`);
  t.strictSame(await h.find('Observation', { 'subject.name': 'transaction' }), [], 'rows removed behind the server');
  const reindex = await http('POST', `${h.s.url}/Observation/$reindex`, { resourceType: 'Parameters' });
  t.ok(reindex.status < 300, `$reindex accepted (${reindex.status})`);
  let found: string[] = [];
  for (let i = 0; i < 100 && found.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    found = await h.find('Observation', { 'subject.name': 'transaction' });
  }
  t.equal(found.length, 2, 'found again after the reindex');
  t.equal(await rows(), before, 'the reindex replaced the contained rows, it did not add to them');
});

t.test("migration 026 queues a reindex of the types stored with contained resources, which indexes them", async (t) => {
  const h = await harness(t);
  await h.put(...(fixtures as any));
  const noJob = await h.s.db.query<{ id: string }>(`SELECT id FROM reindex_jobs WHERE id = 'migration-026-contained'`);
  t.equal(noJob.rows.length, 0, 'a fresh database has no such job');
  // As stored before the migration: no contained rows, no `#id` reference rows.
  await h.s.db.query(`SELECT fhir_clear_contained(rid) FROM resources WHERE index_mask & 1024 <> 0`);
  await h.s.db.query(`DELETE FROM sp_reference WHERE target_id LIKE '#%'`);
  await h.s.db.query(`UPDATE resources SET index_mask = index_mask & ~1024`);
  t.strictSame(await h.find('Observation', { 'subject.name': 'taylor' }), ['obs-s'], 'the contained subject is not found');
  const migration = readFileSync(new URL('../src/store/migrations/026_contained_resources.sql', import.meta.url), 'utf8');
  const queue = /^INSERT INTO reindex_jobs[\s\S]*?;$/m.exec(migration)![0];
  await h.s.db.query(queue);
  const job = await h.s.db.query<{ types: string[]; catchup: boolean }>(`SELECT types, catchup FROM reindex_jobs WHERE id = 'migration-026-contained'`);
  t.strictSame(job.rows.map((r) => [...r.types]), [['Observation']], 'one job, for the type stored with contained resources');
  runnerFor(h.s.db)!.poke();
  let found: string[] = [];
  for (let i = 0; i < 100 && found.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    found = await h.find('Observation', { 'subject.name': 'taylor' });
  }
  t.strictSame(found, ['obs-c', 'obs-s'], 'the reindex indexes them');
  t.strictSame(refsOf(await h.search('Patient', { name: 'taylor', _contained: 'true' })), ['Observation/obs-c', 'Observation/obs-x']);
});

t.test('a custom SearchParameter applies to contained resources of its type, and its deletion takes their rows too', async (t) => {
  const h = await harness(t);
  const genre = {
    resourceType: 'SearchParameter', id: 'patient-genre', url: 'https://example.org/fhir/SearchParameter/patient-genre', name: 'genre', status: 'active',
    description: 'Patient gender, under another code', code: 'genre', base: ['Patient'], type: 'token', expression: 'Patient.gender',
  };
  await h.put(genre as any);
  await h.put(...(fixtures as any));
  t.strictSame(await h.find('Observation', { 'subject.genre': 'male' }), ['obs-c'], 'a chain into a contained resource by a custom parameter');
  t.strictSame(refsOf(await h.search('Patient', { genre: 'male', _contained: 'true' })), ['Observation/obs-c']);
  const rows = async () => Number((await h.s.db.query<{ n: string }>(`SELECT count(*) AS n FROM sp_token WHERE code = 'genre'`)).rows[0].n);
  t.equal(await rows(), 2, 'rows for the stored female patient and the contained male one');
  await h.client.delete({ resourceType: 'SearchParameter', id: 'patient-genre' });
  t.equal(await rows(), 0, 'none left once the definition is deleted, contained ones included');
});
