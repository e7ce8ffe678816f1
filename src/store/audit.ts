// Audit records are stored as ordinary AuditEvent resources (current row, history row, search
// index rows: fhir_insert_resource of migrations/002), so the REST API reads and searches them
// like any resource. A batch of them is one statement calling the insert function once per
// event: one round trip and one commit for the whole batch (src/audit/writer.ts groups them).
import type { IndexRows } from '../fhir/search/indexer.ts';
import type { Executor } from './db.ts';
import { callArgs, indexMask, indexParams } from './resources.ts';

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

/** Inserts the records in one statement; throws if any id was taken (none is: ids are UUIDs). */
export async function insertAuditRecords(ex: Executor, records: AuditRecord[]): Promise<void> {
  if (records.length === 0) return;
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
    'SELECT content FROM resource_history WHERE resource_type = $1 AND id = $2 AND content IS NOT NULL ORDER BY version_id DESC LIMIT 1',
    [resourceType, id]
  );
  return r.rows[0]?.content;
}
