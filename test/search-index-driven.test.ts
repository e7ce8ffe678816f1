// Searches driven from one criterion's index rows (src/fhir/search/search.ts, indexCandidate):
// when a criterion has few index rows (SEARCH_INDEX_DRIVE_LIMIT, 5 here), the page and the count
// take their rids from those rows, and only the page's resources are read; a broader criterion
// walks the resources in rid order, and the paging links carry that choice. Either way the
// answer must be the one the plain conditions give: the same resources in the same order, no
// deleted resource, the other criteria applied. Searches go through fhir-kit-client over HTTP;
// the SQL each search sends is recorded to tell which way it went.
import t from 'tap';
import { harness, queryOf, type Harness, type Params } from './helpers/search.ts';
import { http } from './helpers/server.ts';

const LIMIT = 5;

const patient = (id: string, family: string, birthDate: string, gender = 'female') => ({ resourceType: 'Patient', id, name: [{ family }], birthDate, gender });

/** The SQL statements the server runs while fn runs. */
async function recording<T>(h: Harness, fn: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  const sql: string[] = [];
  const query = h.s.db.query.bind(h.s.db);
  h.s.db.query = ((text: string, params?: unknown[], name?: string) => (sql.push(text), query(text, params, name))) as typeof h.s.db.query;
  try {
    return { result: await fn(), sql };
  } finally {
    h.s.db.query = query;
  }
}

/** Ids of the matches in the order the server gave them (not sorted). */
const inOrder = (bundle: any): string[] => (bundle.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);

/** Every page of a search, following the next links: the ids in order, and each page's SQL. */
async function allPages(h: Harness, type: string, params: Params): Promise<{ ids: string[]; pages: string[][]; links: string[] }> {
  const ids: string[] = [];
  const pages: string[][] = [];
  const links: string[] = [];
  let { result: bundle, sql } = await recording(h, () => h.search(type, params));
  for (let i = 0; i < 20; i++) {
    ids.push(...inOrder(bundle));
    pages.push(sql);
    const next = bundle.link?.find((l: any) => l.relation === 'next')?.url;
    if (!next) break;
    links.push(next);
    ({ result: bundle, sql } = await recording(h, async () => (await http('GET', next)).body));
  }
  return { ids, pages, links };
}

/** The ids from the first page to the one at `last`, read backwards by following its previous links. */
async function pagesBack(last: string): Promise<string[]> {
  let bundle = (await http('GET', last)).body;
  const back: string[][] = [inOrder(bundle)];
  for (let i = 0; i < 20; i++) {
    const prev = bundle.link?.find((l: any) => l.relation === 'previous')?.url;
    if (!prev) break;
    bundle = (await http('GET', prev)).body;
    back.unshift(inOrder(bundle));
  }
  return back.flat();
}

/** The decoded paging cursor of a next link. */
const cursorOf = (url: string) => JSON.parse(Buffer.from(new URL(url).searchParams.get('_page')!, 'base64url').toString('utf8'));

// _lastUpdated reads the resource row: a search with it never goes through the index alone, so
// it gives the plain conditions' answer to compare with.
const PLAIN = { _lastUpdated: 'gt2000-01-01' };

t.test('few index rows: the page and its rids come from the index; the answer is the plain one', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  await h.put(
    patient('dup-1', 'Dupont', '1950-01-01'), patient('dup-2', 'Dupont', '1960-01-01', 'male'), patient('dup-3', 'Dupond', '1940-01-01'),
    patient('dup-4', 'Dupuis', '1970-01-01'), patient('dur-1', 'Durand', '1980-01-01'),
  );
  const { result, sql } = await recording(h, () => h.search('Patient', { family: 'dup' }));
  t.same(inOrder(result), ['dup-1', 'dup-2', 'dup-3', 'dup-4'], 'the four, in the order they were created');
  t.equal(result.total, 4);
  t.equal(sql.length, 1, 'one query');
  t.match(sql[0], /WITH driven AS MATERIALIZED/, 'which reads the criterion\'s rows first');
  t.match(sql[0], /WITH driven AS MATERIALIZED \(SELECT \* FROM \(SELECT s\d+\.rid, s\d+\.resource_type FROM sp_string/, 'of its index rows');
  t.match(sql[0], /FROM \(SELECT DISTINCT d\.rid, d\.resource_type FROM driven d\) r WHERE/, 'whose rids are the matches');
  t.same(inOrder(await h.search('Patient', { family: 'dup', ...PLAIN })), inOrder(result), 'the plain conditions give the same');

  // The other criteria apply to the index's rids; a sort key too.
  t.same(inOrder(await h.search('Patient', { family: 'dup', gender: 'female' })), ['dup-1', 'dup-3', 'dup-4']);
  t.same(inOrder(await h.search('Patient', { family: 'dup', gender: 'female', birthdate: 'lt1965' })), ['dup-1', 'dup-3']);
  const sorted = await recording(h, () => h.search('Patient', { family: 'dup', _sort: '-birthdate' }));
  t.same(inOrder(sorted.result), ['dup-4', 'dup-2', 'dup-1', 'dup-3'], 'sorted by birth date, latest first');
  t.ok(sorted.sql.some((q) => /WITH driven AS MATERIALIZED/.test(q) && /count\(\*\)/.test(q)), 'a sorted search probes within its count');
  t.same(inOrder(await h.search('Patient', { family: 'dup', _sort: '-birthdate', ...PLAIN })), inOrder(sorted.result));
  t.equal((await h.search('Patient', { family: 'dup', _summary: 'count' })).total, 4, '_summary=count');
  t.equal((await h.search('Patient', { family: 'dup', _total: 'accurate', _count: '1' })).total, 4, '_total=accurate past the page');

  // Pages by link: the criterion's index stays in use, and pages neither overlap nor skip.
  const paged = await allPages(h, 'Patient', { family: 'dup', _count: '3' });
  t.same(paged.ids, ['dup-1', 'dup-2', 'dup-3', 'dup-4']);
  t.notOk(cursorOf(paged.links[0])[4], 'the link does not mark the search as broad');
  t.match(paged.pages[1].join('\n'), /WITH driven AS MATERIALIZED/, 'the next page probes again');

  // A deleted resource has no index rows: never a match, in the page or the count.
  t.equal((await h.client.delete({ resourceType: 'Patient', id: 'dup-2' }), 'deleted'), 'deleted');
  const after = await h.search('Patient', { family: 'dup', _total: 'accurate' });
  t.same(inOrder(after), ['dup-1', 'dup-3', 'dup-4']);
  t.equal(after.total, 3);
  // An update moves its index rows: found by its new name only.
  await h.put(patient('dup-1', 'Martin', '1950-01-01'));
  t.same(inOrder(await h.search('Patient', { family: 'dup' })), ['dup-3', 'dup-4']);
  t.same(inOrder(await h.search('Patient', { family: 'mar' })), ['dup-1']);
  t.same(inOrder(await h.search('Patient', { family: 'nobody' })), [], 'no index rows: an empty page');
});

t.test('chains and _has drive from the references they follow, with the plain answer', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  const obs = (id: string, subject: string, code: string) => ({ resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: 'http://loinc.org', code }] }, subject: { reference: `Patient/${subject}` } });
  await h.put(
    patient('dup-1', 'Dupont', '1950-01-01'), patient('dup-2', 'Dupond', '1960-01-01'), patient('dur-1', 'Durand', '1970-01-01'),
    obs('o-1', 'dup-1', '29463-7'), obs('o-2', 'dur-1', '29463-7'), obs('o-3', 'dup-2', '8302-2'), obs('o-4', 'dup-1', '8302-2'), obs('o-5', 'dur-1', '8302-2'),
  );
  const chain = await recording(h, () => h.search('Observation', { 'subject:Patient.family': 'dup' }));
  t.same(inOrder(chain.result), ['o-1', 'o-3', 'o-4'], 'the observations of the Dupont and Dupond patients');
  t.equal(chain.sql.length, 1, 'one query');
  t.match(chain.sql[0], /WITH driven AS MATERIALIZED \(SELECT \* FROM \(SELECT c\d+\.rid/, 'driven by the chain\'s references');
  t.same(inOrder(await h.search('Observation', { 'subject:Patient.family': 'dup', ...PLAIN })), inOrder(chain.result), 'as the plain conditions');
  t.same(inOrder(await h.search('Observation', { 'subject:Patient.family': 'dup', code: '8302-2' })), ['o-3', 'o-4'], 'with another criterion');

  const has = await recording(h, () => h.search('Patient', { '_has:Observation:subject:code': '8302-2' }));
  t.same(inOrder(has.result), ['dup-1', 'dup-2', 'dur-1'], 'each patient once, though dup-1 has two');
  t.match(has.sql[0], /WITH driven AS MATERIALIZED \(SELECT \* FROM \(SELECT ht\d+\.rid/, 'driven by the references to the patients');
  t.same(inOrder(await h.search('Patient', { '_has:Observation:subject:code': '8302-2', ...PLAIN })), inOrder(has.result), 'as the plain conditions');
  t.same(inOrder(await h.search('Patient', { '_has:Observation:subject:code': '8302-2', family: 'dur' })), ['dur-1']);

  // A deleted source or target no longer counts.
  await h.client.delete({ resourceType: 'Observation', id: 'o-3' });
  t.same(inOrder(await h.search('Patient', { '_has:Observation:subject:code': '8302-2' })), ['dup-1', 'dur-1'], 'dup-2 lost its only 8302-2');
  await h.client.delete({ resourceType: 'Patient', id: 'dup-1' });
  t.same(inOrder(await h.search('Observation', { 'subject:Patient.family': 'dup' })), [], 'the observations of a deleted patient are not reached through it');
  t.same(inOrder(await h.search('Patient', { '_has:Observation:subject:code': '8302-2' })), ['dur-1']);
});

t.test('a date window reads values of a day or less from both sides of their start, longer ones apart (migration 018)', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  const encounter = (id: string, start?: string, end?: string) => ({
    resourceType: 'Encounter', id, status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    period: { ...(start && { start }), ...(end && { end }) },
  });
  await h.put(
    encounter('hour', '2026-03-10T10:00:00Z', '2026-03-10T11:00:00Z'),
    encounter('overnight', '2026-03-10T12:00:00Z', '2026-03-11T06:00:00Z'), // 18 h: starts before a window from the 11th
    encounter('day', '2026-03-11', '2026-03-11'), // exactly one day: the longest value kept with the short ones
    encounter('week', '2026-03-05', '2026-03-13'),
    encounter('open', '2026-03-01'), // no end
  );
  const { rows } = await h.s.db.query<{ id: string; short: boolean }>(
    `SELECT r.id, s.short FROM sp_date s JOIN resources r ON r.rid = s.rid WHERE s.resource_type = 'Encounter' AND s.code = 'date' ORDER BY r.id`
  );
  t.same(rows.map((r) => `${r.id}:${r.short}`), ['day:true', 'hour:true', 'open:false', 'overnight:true', 'week:false'], 'a day or less is short');

  const gt = await recording(h, () => h.search('Encounter', { date: 'gt2026-03-10' }));
  t.same(inOrder(gt.result), ['overnight', 'day', 'week', 'open'], 'ends after the 10th: the overnight stay starts before the window');
  t.match(gt.sql[0], /WITH driven AS MATERIALIZED/, 'driven by the date');
  t.match(gt.sql[0], /AND s\d+\.short AND s\d+\.low >= \$\d+::timestamptz UNION ALL SELECT .* AND NOT s\d+\.short\)/s, 'short values by their start, the others apart');
  for (const date of [['ge2026-03-10', 'lt2026-03-12'], '2026-03-11', '2026-03', 'sa2026-03-09', 'le2026-03-10T12:00:00Z', 'eb2026-03-12', 'ge2026-03-11T06:00:00Z', 'lt2026-03-05']) {
    t.same(inOrder(await h.search('Encounter', { date })), inOrder(await h.search('Encounter', { date, ...PLAIN })), `date=${date}: as the plain conditions`);
  }
  t.same(inOrder(await h.search('Encounter', { date: ['ge2026-03-10', 'lt2026-03-12'] })), ['hour', 'overnight', 'day', 'week', 'open']);
  t.same(inOrder(await h.search('Encounter', { date: '2026-03-11' })), ['day'], 'within the 11th');

  // Sorted by the driving date: each row carries its key, and pages follow it.
  for (const sort of ['date', '-date']) {
    const sorted = await allPages(h, 'Encounter', { date: 'ge2026-03-01', _sort: sort, _count: '2' });
    t.match(sorted.pages[0].join('\n'), /\.(low|high) AS sort_key/, `_sort=${sort}: the key comes with the driving rows`);
    t.same(sorted.ids, (await allPages(h, 'Encounter', { date: 'ge2026-03-01', _sort: sort, _count: '2', ...PLAIN })).ids, `_sort=${sort}: the plain order, page after page`);
    t.equal(sorted.ids.length, 5);
  }
  const later = (await allPages(h, 'Encounter', { date: 'ge2026-03-01', _sort: '-date', _count: '2' })).ids;
  t.same(later, ['open', 'week', 'day', 'overnight', 'hour'], 'latest end first');
  // Those rows are one per resource: taken as they are, and counted by the gate alone when no other
  // criterion applies (dates OR'ed, which bound no window to walk in order: the next test); another
  // criterion is counted on the rows it keeps.
  const alone = await recording(h, () => h.search('Encounter', { date: '2026-03-10,2026-03-11', _sort: '-date', _count: '1' }));
  t.notMatch(alone.sql[0], /DISTINCT|OVER \(\)/, 'neither deduplicated nor counted by a window');
  t.match(alone.sql[0], /FROM driven r WHERE true/, 'the driving rows are the matches');
  t.equal(alone.result.total, 2, 'the total is the number of driving rows');
  t.same(inOrder(alone.result), ['day']);
  await h.put({ ...encounter('hour', '2026-03-10T10:00:00Z', '2026-03-10T11:00:00Z'), status: 'cancelled' });
  const withStatus = await recording(h, () => h.search('Encounter', { date: 'ge2026-03-01', status: 'finished', _sort: '-date', _count: '2' }));
  t.match(withStatus.sql[0], /count\(\*\) OVER \(\) AS counted/, 'with another criterion: counted on what it keeps');
  t.equal(withStatus.result.total, 4, 'the cancelled one is not counted');
  t.same(inOrder(withStatus.result), ['open', 'week']);
  t.equal((await h.search('Encounter', { date: 'lt2026-02-01', _sort: '-date' })).total, 0, 'no row: a total of 0');
});

t.test('sorted by the driving date alone, pages read their rows along the index and stop (migration 022)', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: '1000', SEARCH_TOTAL_LIMIT: '6' });
  const encounter = (id: string, start?: string, end?: string) => ({
    resourceType: 'Encounter', id, status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    period: { ...(start && { start }), ...(end && { end }) },
  });
  const hour = (id: string, start: string) => encounter(id, start, start.replace(/T(\d\d)/, (_, hh: string) => `T${String(Number(hh) + 1).padStart(2, '0')}`));
  await h.put(
    // Several at the same hour: ties on the sort key, broken by the rid.
    ...['a', 'b', 'c'].map((x) => hour(`tie-${x}`, '2026-03-11T09:00:00Z')),
    ...['a', 'b'].map((x) => hour(`tie2-${x}`, '2026-03-12T14:00:00Z')),
    hour('h10', '2026-03-10T10:00:00Z'), hour('h11', '2026-03-11T15:00:00Z'), hour('h12', '2026-03-12T08:00:00Z'), hour('h13', '2026-03-13T10:00:00Z'),
    encounter('crossing', '2026-03-12T20:00:00Z', '2026-03-13T08:00:00Z'), // 12 h over the end of a window to the 13th
    encounter('long', '2026-03-05', '2026-03-15'), // longer than a day, over every window
    encounter('ends-in', '2026-03-01', '2026-03-11T12:00:00Z'), // long, starts well before the 11th
    encounter('open', '2026-03-11T18:00:00Z'), // no end
    hour('early', '2026-03-01T08:00:00Z'), hour('late', '2026-03-20T08:00:00Z'),
  );
  const windows: Params[] = [
    { date: ['ge2026-03-11', 'lt2026-03-13'] },
    { date: 'ge2026-03-11' },
    { date: 'lt2026-03-12' },
    { date: '2026-03-12' },
    { date: ['gt2026-03-10', 'le2026-03-12T20:00:00Z'] },
  ];
  // The walk cut after the page (and its ties), then the long periods read apart, whole.
  const arms = /FETCH FIRST \d+ ROWS WITH TIES\)(?: UNION ALL \(SELECT \* FROM .*\bNOT s\d+\.short\b.* OFFSET 0\))?\) r WHERE/s;
  for (const window of windows) {
    // A second sort key (on the rid's other index rows) is only compared within ties of the first.
    for (const sort of ['-date', 'date', '-date,status']) {
      for (const count of ['2', '3']) {
        const params = { ...window, _sort: sort, _count: count };
        const what = queryOf(params);
        const paged = await allPages(h, 'Encounter', params);
        const plain = await allPages(h, 'Encounter', { ...params, ...PLAIN });
        t.same(paged.ids, plain.ids, `${what}: the plain pages`);
        for (const [i, sql] of paged.pages.entries()) {
          t.match(sql.join('\n'), arms, `${what}, page ${i + 1}: the first rows of each arm, in order`);
          t.notMatch(sql.join('\n'), /WITH driven AS MATERIALIZED/, `${what}, page ${i + 1}: the window is not read whole`);
        }
        if (!paged.links.length) continue;
        t.same(await pagesBack(paged.links.at(-1)!), paged.ids, `${what}: previous links give the same pages back`);
      }
    }
  }
  const week = { date: ['ge2026-03-11', 'lt2026-03-13'], _sort: '-date' };
  t.same(
    inOrder(await h.search('Encounter', { ...week, _count: '20' })),
    ['open', 'long', 'crossing', 'tie2-a', 'tie2-b', 'h12', 'h11', 'tie-a', 'tie-b', 'tie-c'],
    'latest end first, ties by creation; the 12 h crossing the end and the long periods included (ends-in ends on the 11th: not above it)'
  );
  // Totals: counted with the first page up to SEARCH_TOTAL_LIMIT (6), left out beyond unless asked for.
  const counted = await recording(h, () => h.search('Encounter', { ...week, _count: '2' }));
  t.equal(counted.sql.length, 1, 'one statement for the page and its count');
  t.equal(counted.result.total, undefined, '10 matches, more than the limit: no total');
  t.equal((await h.search('Encounter', { ...week, _count: '2', _total: 'accurate' })).total, 10, '_total=accurate counts them all');
  t.ok((await h.search('Encounter', { ...week, _count: '2', _total: 'estimate' })).total >= 7, '_total=estimate: beyond the limit');
  t.equal((await h.search('Encounter', { date: ['ge2026-03-13', 'lt2026-03-14'], _sort: '-date', _count: '2' })).total, 3, 'fewer matches than the limit: the total');
  t.equal((await h.search('Encounter', { date: ['ge2026-03-12', 'lt2026-03-14'], _sort: '-date', _count: '2' })).total, undefined, 'one more than the limit: none');
  t.equal((await h.search('Encounter', { date: '2026-03-12', _sort: '-date', _summary: 'count' })).total, 3, '_summary=count');
  t.equal((await h.search('Encounter', { date: 'lt2026-02-01', _sort: '-date' })).total, 0, 'no match: a total of 0');
  const plainWeek = inOrder(await h.search('Encounter', { ...week, _count: '20', ...PLAIN }));
  t.same(inOrder(await h.search('Encounter', { ...week, _count: '3', _offset: '4' })), plainWeek.slice(4, 7), '_offset: the rows after the first ones');
  // Another criterion, which the walk would have to read the window for: driven as before.
  const withStatus = await recording(h, () => h.search('Encounter', { ...week, status: 'finished', _count: '2' }));
  t.match(withStatus.sql[0], /WITH driven AS MATERIALIZED/, 'with another criterion: driven');
  t.same(inOrder(withStatus.result), plainWeek.slice(0, 2));
});

t.test('many index rows: the resources are walked, and the links remember it', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  const births = ['1990', '1950', '1970', '1930', '1980', '1960', '1940', '1920'];
  const entries = births.map((year, i) => patient(`dur-${i}`, 'Durand', `${year}-06-01`, i % 2 ? 'male' : 'female'));
  await h.put(...entries, patient('dup-1', 'Dupont', '1950-01-01'));
  const expected = entries.map((e) => e.id);

  const paged = await allPages(h, 'Patient', { family: 'dur', _count: '3' });
  t.same(paged.ids, expected, 'all eight, once each, in the order they were created');
  t.equal(paged.pages.length, 3);
  t.match(paged.pages[0].join('\n'), /WITH driven AS MATERIALIZED/, 'the first page probed');
  t.ok(paged.pages[0].some((q) => /FROM resources r WHERE NOT r\.deleted/.test(q)), 'and, finding the criterion broad, walked the resources');
  t.equal(cursorOf(paged.links[0])[4], 1, 'its next link says so');
  t.notMatch(paged.pages[1].join('\n'), /WITH driven AS MATERIALIZED/, 'so the next page does not probe again');
  t.equal(cursorOf(paged.links[1])[4], 1, 'and passes it on');
  t.same((await allPages(h, 'Patient', { family: 'dur', _count: '3', ...PLAIN })).ids, expected, 'the plain conditions give the same pages');

  const sorted = await allPages(h, 'Patient', { family: 'dur', _sort: 'birthdate', _count: '3' });
  t.same(sorted.ids, [...entries].sort((a, b) => a.birthDate.localeCompare(b.birthDate)).map((e) => e.id), 'sorted by birth date across the pages');
  t.same(inOrder(await h.search('Patient', { family: 'dur', gender: 'male' })), ['dur-1', 'dur-3', 'dur-5', 'dur-7']);
  t.equal((await h.search('Patient', { family: 'dur', _summary: 'count' })).total, 8);
});

// Past the first page, in rid order, one token or reference value is walked from the cursor
// along its index entries (keyed by rid last, migration 021), whether the first page was driven
// or found the value too broad: the pages are the plain ones, forward and back.
t.test('pages past the first walk one token or reference value from the cursor', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  const LOINC = 'http://loinc.org';
  const obs = (id: string, code: string, subject: string, date: string) => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code }] }, subject: { reference: subject }, effectiveDateTime: date,
  });
  await h.put(patient('p1', 'Petit', '1950-01-01'), patient('p2', 'Grand', '1960-01-01'));
  const broad = Array.from({ length: 9 }, (_, i) => obs(`hr-${i}`, '8867-4', i % 3 ? 'Patient/p1' : 'Patient/p2', `${i % 2 ? 2024 : 2025}-0${(i % 9) + 1}-01`));
  await h.put(...broad, obs('bp-1', '8480-6', 'Patient/p2', '2025-01-01'), obs('bp-2', '8480-6', 'Patient/p1', '2025-02-01'), obs('bp-3', '8480-6', 'Patient/p2', '2024-03-01'));
  const walk = /\(SELECT DISTINCT x\d+\.rid, x\d+\.resource_type FROM \(SELECT s\d+\.rid, s\d+\.resource_type FROM sp_(token|reference) s\d+ WHERE .* ORDER BY x\d+\.rid(?: DESC)?\) r WHERE/s;
  const cases: [string, Params, boolean][] = [
    ['a driven code', { code: `${LOINC}|8480-6`, _count: '1' }, false],
    ['a driven subject', { subject: 'Patient/p2', _count: '2' }, false],
    ['a broad code with a date', { code: `${LOINC}|8867-4`, date: 'ge2025-01-01', _count: '2' }, true],
    ['a broad code', { code: `${LOINC}|8867-4`, _count: '2' }, true],
  ];
  for (const [what, params, isBroad] of cases) {
    const paged = await allPages(h, 'Observation', params);
    const plain = await allPages(h, 'Observation', { ...params, ...PLAIN });
    t.same(paged.ids, plain.ids, `${what}: the plain pages`);
    t.ok(paged.pages.length >= 2, `${what}: several pages (${paged.pages.length})`);
    t.equal(cursorOf(paged.links[0])[4] ?? 0, isBroad ? 1 : 0, `${what}: the first page ${isBroad ? 'found it broad' : 'was driven'}`);
    for (const [i, sql] of paged.pages.slice(1).entries()) {
      t.match(sql.join('\n'), walk, `${what}, page ${i + 2}: walked from the cursor`);
      t.notMatch(sql.join('\n'), /WITH driven AS MATERIALIZED|FROM resources r WHERE NOT r\.deleted/, `${what}, page ${i + 2}: neither probed nor walking the resources`);
    }
    if (isBroad) t.equal(cursorOf(paged.links.at(-1)!)[4], 1, `${what}: the links still say broad`);
    // Back from the last page by the previous links: the same pages in reverse.
    t.same(await pagesBack(paged.links.at(-1)!), paged.ids, `${what}: previous links give the same pages back`);
  }
  // The page total is the first page's; _total=accurate past the cursor counts them all.
  const first = await h.search('Observation', { code: `${LOINC}|8480-6`, _count: '1' });
  const next = first.link.find((l: any) => l.relation === 'next').url;
  t.equal((await http('GET', `${next}&_total=accurate`)).body.total, 3, '_total=accurate on a later page');
});

t.test('a paging link with a forged or damaged cursor is refused', async (t) => {
  const h = await harness(t, { SEARCH_INDEX_DRIVE_LIMIT: String(LIMIT) });
  await h.put(patient('p-1', 'Dupont', '1950-01-01'), patient('p-2', 'Dupont', '1951-01-01'));
  const forge = (parts: unknown[]) => Buffer.from(JSON.stringify(parts)).toString('base64url');
  const res = await http('GET', `${h.s.url}/Patient?family=dup&_count=1&_page=${forge(['a', '', ['1'], null, 2])}`);
  t.equal(res.status, 400, 'a broad mark other than 1');
  t.equal(res.body.resourceType, 'OperationOutcome');
  const ok = await http('GET', `${h.s.url}/Patient?family=dup&_count=1&_page=${forge(['a', '', ['0'], null, 1])}`);
  t.equal(ok.status, 200, 'a well-formed cursor marked broad is followed');
  t.equal(ok.body.entry?.length, 1);
});
