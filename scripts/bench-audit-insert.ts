// What writing the audit trail costs PostgreSQL, on the server's own path: AuditEvents built as the
// server builds them (a read of a Patient), written in batches with insertAuditRecords (one
// statement and one commit per batch, as the group-commit writer does), on one connection. Prints
// the CPU the backend spent per event (from /proc: the database must run on this machine) and the
// wall time, for each variant, in alternating rounds:
//   store        the server's code (time-ordered ids, UUID version 7)
//   random-ids   the same events with random ids (UUID version 4), as before 2026-11-24
//   no-terms     no search terms (the id and time indexes only): what the GIN index costs
//
//   node scripts/bench-audit-insert.ts [--url postgres://...] [--prefill 1000000] [--batches 3000]
//                                      [--batch 10] [--rounds 3]
//
// Without --url, a throwaway cluster (scripts/lib/postgres.ts). --prefill first writes that many
// events in SQL from the generated ones (the indexes' size is what makes random ids cost), once.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { buildAuditEvent } from '../src/audit/event.ts';
import { toRecord } from '../src/audit/record.ts';
import { insertAuditRecords, type AuditRecord } from '../src/store/audit.ts';
import type { Executor } from '../src/store/db.ts';
import { openDb } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { startPostgres } from './lib/postgres.ts';
import { numberArg } from './lib/cli.ts';
import { median } from './lib/bench/rounds.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    prefill: { type: 'string', default: '1000000' },
    batches: { type: 'string', default: '3000' },
    batch: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
  },
});
const prefill = Math.floor(numberArg('prefill', args.prefill, 0));
const batches = Math.floor(numberArg('batches', args.batches, 1));
const batchSize = Math.floor(numberArg('batch', args.batch, 1));
const rounds = Math.floor(numberArg('rounds', args.rounds, 1));
const log = (s: string) => console.error(`[bench-audit-insert] ${s}`);

const backendTicks = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
};

const PATIENT = JSON.stringify({ resourceType: 'Patient', id: 'x', meta: { versionId: '1' }, identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '248017512345678' }], name: [{ family: 'Martin', given: ['Hélène'] }], gender: 'female', birthDate: '1948-02-17' });
/** The event of a read of one of 10,000 patients, as the server records it. */
function readEvent(): AuditRecord {
  const patient = `p${Math.floor(Math.random() * 10_000)}`;
  const now = new Date();
  const event = buildAuditEvent(
    { requestId: randomUUID(), method: 'GET', url: `/fhir/Patient/${patient}`, query: {}, body: undefined, status: 200, payload: PATIENT.replace('"x"', `"${patient}"`), ip: '127.0.0.1', start: now, end: now, baseUrl: 'http://127.0.0.1:8080/fhir' },
    ['Patient', patient],
    { serverName: 'fhir-coordination' }
  );
  return toRecord(event);
}

const variants: Record<string, (r: AuditRecord) => AuditRecord> = {
  store: (r) => r,
  'random-ids': (r) => ({ ...r, id: randomUUID() }),
  'no-terms': (r) => ({ ...r, refs: [], codes: [] }),
};

async function main() {
  let url = args.url;
  let stop: (() => void) | undefined;
  if (!url) {
    const postgres = await startPostgres();
    url = postgres.url;
    stop = () => postgres.stop();
  }
  try {
    const db = await openDb({ databaseUrl: url, dataDir: '', poolSize: 1 });
    await migrate(db);
    await db.close();
    const client = new pg.Client(url);
    await client.connect();
    const ex = { kind: 'postgres', query: (text: string, values: unknown[], name?: string) => client.query(name ? { name, text, values } : { text, values }) } as unknown as Executor;
    const have = Number((await client.query('SELECT count(*) AS n FROM audit_events')).rows[0].n);
    if (have < prefill) {
      log(`prefilling ${prefill - have} events`);
      // 1,000 generated events, copied under new random ids and time-ordered times.
      const sample = Array.from({ length: 1000 }, readEvent);
      await insertAuditRecords(ex, sample);
      await client.query(
        `INSERT INTO audit_events (id, recorded, content, compartments, refs, codes)
         SELECT gen_random_uuid()::text, now() - make_interval(secs => ($1::int - g) / 100.0), s.content, s.compartments, s.refs, s.codes
         FROM generate_series(1, $1::int) g
         JOIN (SELECT row_number() OVER () - 1 AS k, x.* FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1000) x) s ON s.k = g % 1000`,
        [prefill - have - 1000]
      );
      await client.query('VACUUM ANALYZE audit_events');
    }
    const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    const results: Record<string, { cpu: number[]; wall: number[] }> = {};
    for (let round = 0; round < rounds; round++) {
      const names = Object.keys(variants);
      for (const name of [...names.slice(round % names.length), ...names.slice(0, round % names.length)]) {
        const work = Array.from({ length: batches }, () => Array.from({ length: batchSize }, () => variants[name](readEvent())));
        const t0 = backendTicks(pid);
        const w0 = performance.now();
        for (const b of work) await insertAuditRecords(ex, b);
        const events = batches * batchSize;
        const cpu = ((backendTicks(pid) - t0) * 10_000) / events; // ticks of 10 ms, in µs per event
        const wall = ((performance.now() - w0) * 1000) / events;
        (results[name] ??= { cpu: [], wall: [] }).cpu.push(cpu);
        results[name].wall.push(wall);
        log(`round ${round + 1} ${name}: backend CPU ${cpu.toFixed(1)} µs/event, wall ${wall.toFixed(1)} µs/event`);
      }
    }
    const total = Number((await client.query('SELECT count(*) AS n FROM audit_events')).rows[0].n);
    await client.end();
    console.log(`\naudit insert, ${total} events in the store at the end, batches of ${batchSize}, ${batches} batches per variant and round, ${rounds} rounds (medians)`);
    console.log('| variant | backend CPU µs/event | wall µs/event |');
    console.log('| --- | ---: | ---: |');
    for (const [name, r] of Object.entries(results)) console.log(`| ${name} | ${median(r.cpu).toFixed(1)} (${r.cpu.map((x) => x.toFixed(1)).join(', ')}) | ${median(r.wall).toFixed(1)} |`);
  } finally {
    stop?.();
  }
}

await main();
