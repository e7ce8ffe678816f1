// Audit records are stored as ordinary AuditEvent resources (current row, history row, search
// index rows, as fhir_insert_resource of migrations/002 writes them), so the REST API reads and
// searches them like any resource. A batch of them is one statement: one round trip and one
// commit for the whole batch (src/audit/writer.ts groups them), set-wise (migrations/010).
import type { IndexRows } from '../fhir/search/indexer.ts';
import type { Executor } from './db.ts';
import { callArgs, indexMask, indexParams, ownedColumns, ownedTypes, ridOf, type IndexTable } from './resources.ts';

export interface AuditRecord {
  id: string;
  lastUpdated: string;
  content: string;
  rows: IndexRows;
}

const PER_CALL = 7;
const ONE_CALL = callArgs(PER_CALL);
const PARAMS_PER_CALL = ONE_CALL.match(/\$\d+/g)!.length; // 7 + the index fields
const statements = new Map<number, string>();

/** SELECT fhir_insert_resource(…) AS r0, fhir_insert_resource(…) AS r1, … for n events. */
function statement(n: number): string {
  let text = statements.get(n);
  if (!text) {
    const calls = Array.from({ length: n }, (_, k) => `fhir_insert_resource(${ONE_CALL.replace(/\$(\d+)/g, (_m, i) => `$${Number(i) + k * PARAMS_PER_CALL}`)}) AS r${k}`);
    text = `SELECT ${calls.join(', ')}`;
    if (statements.size < 256) statements.set(n, text);
  }
  return text;
}

/** Only string, token, date, reference and uri rows: what the set-wise function writes. */
function setWise(r: AuditRecord): boolean {
  const x = r.rows;
  return !x.number.code.length && !x.quantity.code.length && !x.composite.code.length && x.text.narrative === null && x.text.content === null;
}

// The index tables an AuditEvent has rows in, in fhir_insert_audit_events' order (migrations/010).
const AUDIT_TABLES: IndexTable[] = ['string', 'token', 'date', 'reference', 'uri'];
const SET_WISE = `SELECT fhir_insert_audit_events(${[
  'text[]', 'timestamptz[]', 'text[]', 'text[]', 'smallint[]', ...AUDIT_TABLES.flatMap(ownedTypes),
].map((t, i) => `$${i + 1}::${t}`).join(', ')}) AS n`;

/**
 * Inserts the records in one statement (one commit): set-wise (migrations/010) when every record
 * has only the index rows an AuditEvent has, else one fhir_insert_resource call per record.
 */
export async function insertAuditRecords(ex: Executor, records: AuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  if (records.every(setWise)) {
    const rows = records.map((x) => x.rows);
    const r = await ex.query<{ n: number }>(
      SET_WISE,
      [
        records.map((x) => x.id), records.map((x) => x.lastUpdated), records.map((x) => x.content), rows.map((x) => x.compartments.join(' ')), rows.map(indexMask),
        ...AUDIT_TABLES.flatMap((table) => ownedColumns(rows, table)),
      ],
      'fhir_audit_insert'
    );
    if (Number(r.rows[0]?.n) !== records.length) throw new Error(`${records.length - Number(r.rows[0]?.n)} AuditEvents were not stored`);
    return;
  }
  const params: unknown[] = [];
  for (const r of records) {
    params.push('AuditEvent', r.id, r.lastUpdated, r.content, r.rows.compartments, 'POST', indexMask(r.rows), ...indexParams(r.rows));
  }
  // Named per batch size: PostgreSQL parses and plans each size once per connection.
  const result = await ex.query<Record<string, string | null>>(statement(records.length), params, `fhir_audit_insert_${records.length}`);
  const row = result.rows[0] ?? {};
  for (let k = 0; k < records.length; k++) if (row[`r${k}`] == null) throw new Error(`AuditEvent/${records[k].id} was not stored`);
}

/** The last stored content of a resource (a deleted one's last version), for the patients it concerned. */
export async function lastContent(ex: Executor, resourceType: string, id: string): Promise<string | undefined> {
  const r = await ex.query<{ content: string }>(
    // By rid, the key of the history rows (ridOf in resources.ts): by type and id it read every version of the type.
    `SELECT content FROM resource_history WHERE rid = (${ridOf('$1', '$2')}) AND content IS NOT NULL ORDER BY version_id DESC LIMIT 1`,
    [resourceType, id]
  );
  return r.rows[0]?.content;
}
