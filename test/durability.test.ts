// The server as a separate process (npm start's entry point): a create answered 201 survives
// SIGKILL of the server; SIGTERM lets in-flight requests finish before exiting; an empty
// database gets the demo fixtures on first start, and only then.
import t from 'tap';
import { freshDatabase, http, startServerProcess } from './helpers/server.ts';


t.test('SIGKILL during a stream of creates loses no answered create', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const first = await startServerProcess(db.env);
  const acknowledged: string[] = [];
  let stop = false;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const r = await http('POST', `${first.url}/Patient`, { resourceType: 'Patient', name: [{ family: `w${w}-${i}` }] });
        if (r.status === 201) acknowledged.push(r.body.id);
      } catch {
        return; // connection cut by the kill
      }
    }
  };
  const writers = Array.from({ length: 8 }, (_, w) => writer(w));
  await new Promise((r) => setTimeout(r, 1500));
  first.child.kill('SIGKILL');
  stop = true;
  await Promise.all(writers);
  await first.exited;
  t.ok(acknowledged.length > 5, `creates were answered before the kill (${acknowledged.length})`);

  const second = await startServerProcess(db.env);
  t.teardown(() => second.child.kill('SIGKILL'));
  let missing = 0;
  for (const id of acknowledged) if ((await http('GET', `${second.url}/Patient/${id}`)).status !== 200) missing++;
  t.equal(missing, 0, 'every create answered 201 is there after restart');
  second.child.kill('SIGTERM');
  await second.exited;
});

t.test('SIGTERM finishes in-flight requests, then exits 0', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const server = await startServerProcess(db.env);
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: 300 }, (_, i) => ({ resource: { resourceType: 'Patient', name: [{ family: `p${i}` }] }, request: { method: 'POST', url: 'Patient' } })),
  };
  const inflight = Promise.all(Array.from({ length: 4 }, () => http('POST', server.url, bundle).catch(() => ({ status: 0 }))));
  await new Promise((r) => setTimeout(r, 50));
  server.child.kill('SIGTERM');
  const statuses = (await inflight).map((r) => r.status);
  // Requests being processed finish (200). One that arrives after shutdown began is refused (503),
  // or its idle keep-alive connection is closed before the server read it (status 0 here).
  t.ok(statuses.every((x) => x === 200 || x === 503 || x === 0), `no request failed otherwise: ${statuses}`);
  const answered = statuses.filter((x) => x === 200).length;
  t.ok(answered >= 1, 'in-flight transactions were completed, not cut');
  // Answers finished during shutdown close their connection: kept alive, the client's idle
  // sockets would hold the server open until the keep-alive timeout (72 s).
  const exit = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000).unref())]);
  t.equal(exit, 0, 'clean exit, without waiting for the clients\' idle connections');
  const again = await startServerProcess(db.env);
  t.teardown(() => again.child.kill('SIGKILL'));
  t.equal((await http('GET', `${again.url}/Patient?_summary=count`)).body.total, 300 * answered, 'every answered transaction is stored whole, nothing else');
  again.child.kill('SIGTERM');
  await again.exited;
});

t.test('first start on an empty database loads the demo fixtures, once', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const s = await startServerProcess(db.env, { LOAD_FIXTURES: 'true' });
  const ins = await http('GET', `${s.url}/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|238043306308784`);
  t.equal(ins.body.total, 1, 'the demo patient is found by INS');
  t.equal(ins.body.entry[0].resource.name[0].family, 'Lefèvre');
  const rpps = await http('GET', `${s.url}/Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|899700100128`);
  t.equal(rpps.body.total, 1, 'the demo practitioner is found by idNatPs');
  const team = await http('GET', `${s.url}/CareTeam?subject.identifier=238043306308784`);
  t.ok(team.body.total >= 1, 'the care team of the demo patient is found through a chain');
  const before = (await http('GET', `${s.url}/_history?_count=0`)).body.total;
  s.child.kill('SIGTERM');
  await s.exited;
  const again = await startServerProcess(db.env, { LOAD_FIXTURES: 'true' });
  t.teardown(() => again.child.kill('SIGKILL'));
  t.equal((await http('GET', `${again.url}/_history?_count=0`)).body.total, before, 'a second start loads nothing more');
  t.equal((await fetch(`${again.url.replace('/fhir', '')}/healthz`)).status, 200);
  again.child.kill('SIGTERM');
  await again.exited;
});
