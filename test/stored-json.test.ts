// The stored JSON escapes the characters above U+00FF (src/fhir/stored-json.ts): clients read
// back the very characters they wrote, and every answer that splices stored JSON (read, search,
// history) is Latin-1 text. Migration 023 rewrites older rows with the same escaping in SQL.
import t, { type Test } from 'tap';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'fhir-kit-client';
import type { Patient } from '@medplum/fhirtypes';
import { latin1Json, storedJson } from '../src/fhir/stored-json.ts';
import { migrate } from '../src/store/migrate.ts';
import { http, startServer } from './helpers/server.ts';

const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;

// ’ (U+2019), œ (U+0153), € (U+20AC), a CJK character, an emoji (a surrogate pair), the last BMP
// code point, and Latin-1 letters that stay as they are.
const SAMPLES = ['d’Alène', 'Cœur', '12 €', '漢', 'fièvre 😀 !', '\uffff', 'Hélène, François, Noël', 'plain', '"quoted" \\ back\nslash'];

t.test('the escaping, in JavaScript and in SQL (migration 023), character for character', async (t) => {
  for (const s of SAMPLES) {
    const json = JSON.stringify({ text: s });
    const escaped = latin1Json(json);
    t.notOk(BEYOND_LATIN1.test(escaped), `${JSON.stringify(s)}: nothing above U+00FF is left`);
    t.same(JSON.parse(escaped), { text: s }, `${JSON.stringify(s)}: reads back as the same characters`);
  }
  t.equal(latin1Json('"d’A"'), '"d\\u2019A"');
  t.equal(latin1Json('"😀"'), '"\\ud83d\\ude00"', 'an astral character as its surrogate pair');
  t.equal(latin1Json('"Hélène"'), '"Hélène"', 'Latin-1 kept');
  t.equal(storedJson({ a: 'œ' }), '{"a":"\\u0153"}');

  const s = await startServer(t);
  for (const x of SAMPLES) {
    const json = JSON.stringify({ text: x });
    const r = await s.db.query<{ out: string; same: boolean }>('SELECT fhir_json_latin1($1) AS out, fhir_json_latin1($1)::jsonb = $1::jsonb AS same', [json]);
    t.equal(r.rows[0].out, latin1Json(json), `${JSON.stringify(x)}: SQL writes what JavaScript writes`);
    t.ok(r.rows[0].same, `${JSON.stringify(x)}: the same JSON to PostgreSQL`);
  }
});

const NAME = { family: 'd’Alène-Cœur', given: ['Hélène', 'Zoë 😀'] };

/** The answers a client gets for the patient: read, vread, search, history; each checked for its text and its parsed name. */
async function checkAnswers(t: Test, url: string, id: string, label: string): Promise<void> {
  const answers = {
    read: await http('GET', `${url}/Patient/${id}`),
    vread: await http('GET', `${url}/Patient/${id}/_history/1`),
    search: await http('GET', `${url}/Patient?_id=${id}`),
    history: await http('GET', `${url}/Patient/${id}/_history`),
  };
  for (const [kind, a] of Object.entries(answers)) {
    t.equal(a.status, 200, `${label}, ${kind}: 200`);
    t.notOk(BEYOND_LATIN1.test(a.text), `${label}, ${kind}: the answer's text is Latin-1`);
    t.match(a.text, /Hélène/, `${label}, ${kind}: é sent as it is`);
    const patient = (a.body.resourceType === 'Bundle' ? a.body.entry?.[0]?.resource : a.body) as Patient | undefined;
    t.same(patient?.name?.[0], NAME, `${label}, ${kind}: the name reads back as written`);
  }
}

t.test('what a client writes, it reads back; the answers are Latin-1 text; older rows are rewritten', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const created = (await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [NAME] } })) as Patient;
  t.same(created.name?.[0], NAME, 'the create answer');
  const read = (await client.read({ resourceType: 'Patient', id: created.id! })) as Patient;
  t.same(read.name?.[0], NAME, 'read through the client');
  const found = (await client.search({ resourceType: 'Patient', searchParams: { name: 'zoe' } })) as { entry?: { resource: Patient }[] };
  t.same(found.entry?.map((e) => e.resource.id), [created.id], 'found by its folded name');

  // Writes answer with the stored text too.
  const posted = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', name: [NAME] });
  const put = await http('PUT', `${s.url}/Patient/${posted.body.id}`, { ...posted.body, active: true });
  for (const [kind, a] of Object.entries({ create: posted, update: put })) {
    t.equal(a.status, kind === 'create' ? 201 : 200, `${kind}: status`);
    t.notOk(BEYOND_LATIN1.test(a.text), `${kind}: the answer's text is Latin-1`);
    t.same(a.body.name?.[0], NAME, `${kind}: the name reads back as written`);
  }
  await http('DELETE', `${s.url}/Patient/${posted.body.id}`);

  const stored = async () =>
    (await s.db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM resources WHERE content ~ '[^\\x01-\\xff]') + (SELECT count(*) FROM resource_history WHERE content ~ '[^\\x01-\\xff]') AS n`
    )).rows[0].n;
  t.equal(Number(await stored()), 0, 'stored: no character above U+00FF, current row or history');
  await checkAnswers(t, s.url, created.id!, 'written now');

  // A row as a server before migration 023 stored it: JSON.stringify's text, with the characters.
  const raw = JSON.stringify(read);
  t.ok(BEYOND_LATIN1.test(raw), 'the raw text has them');
  await s.db.query(`UPDATE resources SET content = $1 WHERE resource_type = 'Patient' AND id = $2`, [raw, created.id]);
  await s.db.query(`UPDATE resource_history SET content = $1 WHERE resource_type = 'Patient' AND id = $2`, [raw, created.id]);
  t.equal(Number(await stored()), 2, 'two rows stored raw');
  t.ok(BEYOND_LATIN1.test((await http('GET', `${s.url}/Patient/${created.id}`)).text), 'a raw row is sent as stored');

  // The migration itself, applied again from a folder of its own.
  const dir = mkdtempSync(join(tmpdir(), 'fhir-migration-023-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(new URL('../src/store/migrations/023_latin1_json.sql', import.meta.url), join(dir, '999_latin1_json.sql'));
  t.same(await migrate(s.db, pathToFileURL(dir + '/')), ['999_latin1_json.sql']);
  t.equal(Number(await stored()), 0, 'migration 023 rewrote both rows');
  const rewritten = await s.db.query<{ content: string }>(`SELECT content FROM resources WHERE resource_type = 'Patient' AND id = $1`, [created.id]);
  t.equal(rewritten.rows[0].content, storedJson(read), 'as the server writes it now');
  await checkAnswers(t, s.url, created.id!, 'rewritten');
});
