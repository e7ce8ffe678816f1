// batch and transaction Bundles (http.html#transaction): ordering, urn:uuid and conditional
// reference rewriting, all-or-nothing, per-entry responses; Synthea bundles as realistic input.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';

const SYNTHEA = new URL('../../shared/data/synthea-r4/', import.meta.url);

async function count(url: string, query = ''): Promise<number> {
  return (await http('GET', `${url}?_summary=count${query}`)).body.total;
}

t.test('transaction: urn:uuid references rewritten everywhere, entries answered in order', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:6f1c4c4e-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'CareTeam',
          status: 'active',
          subject: { reference: 'urn:uuid:6f1c4c4e-0000-4000-8000-000000000001' },
          participant: [{ member: { reference: 'urn:uuid:6f1c4c4e-0000-4000-8000-000000000003' } }],
        },
        request: { method: 'POST', url: 'CareTeam' },
      },
      {
        fullUrl: 'urn:uuid:6f1c4c4e-0000-4000-8000-000000000001',
        resource: { resourceType: 'Patient', name: [{ family: 'Lefèvre' }] },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: 'urn:uuid:6f1c4c4e-0000-4000-8000-000000000003',
        resource: { resourceType: 'Practitioner', id: 'dr-moreau', name: [{ family: 'Moreau' }] },
        request: { method: 'PUT', url: 'Practitioner/dr-moreau' },
      },
      { request: { method: 'GET', url: 'Practitioner/dr-moreau' } },
    ],
  };
  const res: any = await client.transaction({ body: bundle });
  t.equal(res.type, 'transaction-response');
  t.equal(res.entry.length, 4);
  t.match(res.entry[0].response.status, /^201/);
  t.match(res.entry[1].response.status, /^201/);
  t.match(res.entry[2].response.status, /^201/);
  t.match(res.entry[3].response.status, /^200/);
  t.equal(res.entry[3].resource.id, 'dr-moreau', 'GET runs after the PUT (spec order)');
  const careTeam = res.entry[0].resource;
  const patientId = res.entry[1].resource.id;
  t.equal(careTeam.subject.reference, `Patient/${patientId}`, 'urn:uuid replaced by the created id');
  t.equal(careTeam.participant[0].member.reference, 'Practitioner/dr-moreau', 'a PUT target is referenced by its id');
  t.match(res.entry[0].response.location, /^http:\/\/.+\/CareTeam\/.+\/_history\/1$/);
  t.equal(res.entry[0].response.etag, 'W/"1"');
  const found: any = await client.search({ resourceType: 'CareTeam', searchParams: { subject: `Patient/${patientId}` } });
  t.equal(found.total, 1, 'the rewritten reference is indexed');
});

t.test('transaction: all or nothing', async (t) => {
  const s = await startServer(t);
  const existing = await http('PUT', `${s.url}/Patient/keep`, { resourceType: 'Patient', id: 'keep', gender: 'male' });
  t.equal(existing.status, 201);
  const before = await http('GET', `${s.url}/_history`);
  const failing = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { resource: { resourceType: 'Patient', name: [{ family: 'A' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', id: 'keep', gender: 'female' }, request: { method: 'PUT', url: 'Patient/keep' } },
      { request: { method: 'DELETE', url: 'Patient/keep' } },
      { resource: { resourceType: 'Patient', birthDate: 'not-a-date' }, request: { method: 'POST', url: 'Patient' } },
    ],
  };
  const res = await http('POST', s.url, failing);
  t.equal(res.status, 400);
  t.equal(res.body.resourceType, 'OperationOutcome');
  t.match(JSON.stringify(res.body), /Bundle\.entry\[3\]/, 'the outcome names the failing entry');
  const after = await http('GET', `${s.url}/_history`);
  t.equal(after.body.total, before.body.total, 'no version was written');
  const keep = await http('GET', `${s.url}/Patient/keep`);
  t.equal(keep.status, 200, 'the deleted entry is back');
  t.equal(keep.body.gender, 'male', 'the updated entry is as before');

  // A failure at execution time (If-Match mismatch) after writes have run rolls them back too.
  const late = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { resource: { resourceType: 'Patient', name: [{ family: 'B' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', id: 'keep', gender: 'female' }, request: { method: 'PUT', url: 'Patient/keep', ifMatch: 'W/"9"' } },
    ],
  };
  const lateRes = await http('POST', s.url, late);
  t.equal(lateRes.status, 412);
  t.equal((await http('GET', `${s.url}/_history`)).body.total, before.body.total, 'the POST that had run is rolled back');
});

t.test('transaction: conditional references and conditional create', async (t) => {
  const s = await startServer(t);
  await http('POST', `${s.url}/Practitioner`, {
    resourceType: 'Practitioner',
    identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.1', value: '899700100128' }],
  });
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001',
        resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '238043306308784' }] },
        request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:oid:1.2.250.1.213.1.4.8|238043306308784' },
      },
      {
        resource: {
          resourceType: 'CareTeam',
          subject: { reference: 'urn:uuid:aaaaaaaa-0000-4000-8000-000000000001' },
          participant: [{ member: { reference: 'Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|899700100128' } }],
        },
        request: { method: 'POST', url: 'CareTeam' },
      },
    ],
  };
  const first = await http('POST', s.url, bundle);
  t.equal(first.status, 200);
  const practitioner = (await http('GET', `${s.url}/Practitioner`)).body.entry[0].resource.id;
  const careTeam = first.body.entry[1].resource;
  t.equal(careTeam.participant[0].member.reference, `Practitioner/${practitioner}`, 'conditional reference resolved');
  const second = await http('POST', s.url, bundle);
  t.match(second.body.entry[0].response.status, /^200/, 'ifNoneExist matched: not created twice');
  t.equal(second.body.entry[1].resource.subject.reference, careTeam.subject.reference, 'the reference points at the existing patient');
  t.equal(await count(`${s.url}/Patient`), 1);

  const unresolved = structuredClone(bundle);
  (unresolved.entry[1].resource as any).participant[0].member.reference = 'Practitioner?identifier=nobody';
  const res = await http('POST', s.url, unresolved);
  t.equal(res.status, 412, 'a conditional reference that matches nothing fails the transaction');
  t.equal(await count(`${s.url}/CareTeam`), 2, 'nothing written by the failed transaction');
});

t.test('batch: entries succeed or fail on their own', async (t) => {
  const s = await startServer(t);
  const res = await http('POST', s.url, {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      { resource: { resourceType: 'Patient', name: [{ family: 'Ok' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', foo: 'bar' }, request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'GET', url: 'Patient/missing' } },
      { request: { method: 'GET', url: 'Patient?name=ok' } },
    ],
  });
  t.equal(res.status, 200);
  t.equal(res.body.type, 'batch-response');
  t.match(res.body.entry[0].response.status, /^201/);
  t.match(res.body.entry[1].response.status, /^400/);
  t.equal(res.body.entry[1].response.outcome.resourceType, 'OperationOutcome');
  t.match(res.body.entry[2].response.status, /^404/);
  t.equal(res.body.entry[3].resource.type, 'searchset');
  t.equal(await count(`${s.url}/Patient`), 1, 'the valid entry was kept');
});

t.test('bundle errors', async (t) => {
  const s = await startServer(t);
  t.equal((await http('POST', s.url, { resourceType: 'Bundle', type: 'collection' })).status, 400);
  t.equal((await http('POST', s.url, { resourceType: 'Patient' })).status, 400);
  const noRequest = await http('POST', s.url, { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' } }] });
  t.equal(noRequest.status, 400);
  const unknownType = await http('POST', s.url, {
    resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Unicorn' }, request: { method: 'POST', url: 'Unicorn' } }],
  });
  t.equal(unknownType.status, 404);
});

t.test('Synthea transaction bundles load whole and are searchable', async (t) => {
  const s = await startServer(t);
  const files = readdirSync(SYNTHEA).filter((f) => f.endsWith('.json')).slice(0, 3);
  let expected = 0;
  for (const f of files) {
    const bundle = JSON.parse(readFileSync(new URL(f, SYNTHEA), 'utf8'));
    expected += bundle.entry.length;
    const res = await http('POST', s.url, bundle);
    t.equal(res.status, 200, `${f} accepted`);
    t.ok(res.body.entry.every((e: any) => /^201/.test(e.response.status)), `${f}: every entry created`);
  }
  t.equal((await http('GET', `${s.url}/_history?_count=0`)).body.total, expected, 'every entry stored');
  t.equal(await count(`${s.url}/Patient`), files.length);
  const patient = (await http('GET', `${s.url}/Patient?_count=1`)).body.entry[0].resource;
  const everything = await http('GET', `${s.url}/Patient/${patient.id}/Encounter?_summary=count`);
  t.ok(everything.body.total > 0, 'encounters are found in the patient compartment, so references were rewritten');
});
