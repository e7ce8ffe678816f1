// The REST interactions of http.html through a third-party FHIR client (fhir-kit-client)
// over real HTTP, and header-level behaviour through fetch and fastify's inject.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Hélène'] }],
  identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: `2${Math.floor(Math.random() * 1e14)}` }],
  ...extra,
});

t.test('create, read, vread, update, delete through fhir-kit-client', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const created: any = await client.create({ resourceType: 'Patient', body: { ...patient('Lefèvre'), id: 'client-id-ignored' } });
  t.equal(created.resourceType, 'Patient');
  t.not(created.id, 'client-id-ignored', 'the server assigns the id on create');
  t.equal(created.meta.versionId, '1');
  t.match(created.meta.lastUpdated, /^\d{4}-\d{2}-\d{2}T/);

  const read: any = await client.read({ resourceType: 'Patient', id: created.id });
  t.same(read, created, 'read returns what create returned');

  const updated: any = await client.update({ resourceType: 'Patient', id: created.id, body: { ...read, gender: 'female' } });
  t.equal(updated.meta.versionId, '2');
  t.equal(updated.gender, 'female');

  const v1: any = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  t.equal(v1.gender, undefined, 'version 1 is unchanged');
  t.equal(v1.meta.versionId, '1');

  const hist: any = await client.history({ resourceType: 'Patient', id: created.id });
  t.equal(hist.type, 'history');
  t.equal(hist.total, 2);
  t.same(hist.entry.map((e: any) => e.resource.meta.versionId), ['2', '1'], 'newest first');

  await client.delete({ resourceType: 'Patient', id: created.id });
  const gone = await http('GET', `${s.url}/Patient/${created.id}`);
  t.equal(gone.status, 410, 'a deleted resource is gone');
  t.equal(gone.body.resourceType, 'OperationOutcome');
  const afterDelete: any = await client.history({ resourceType: 'Patient', id: created.id });
  t.equal(afterDelete.total, 3, 'the deletion is a version of its own; history is kept');
  t.equal(afterDelete.entry[0].request.method, 'DELETE');
  t.notOk(afterDelete.entry[0].resource, 'a deletion entry has no resource');
  const v2 = await http('GET', `${s.url}/Patient/${created.id}/_history/2`);
  t.equal(v2.status, 200, 'old versions stay readable after delete');
});
