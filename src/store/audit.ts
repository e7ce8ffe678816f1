// The audit trail's own store (migrations/027): one append-only row per AuditEvent, its id and
// time indexed, and its search terms (src/audit/terms.ts) in two arrays, the selective ones under
// a GIN index. A batch of events is one INSERT from arrays: one round trip and one commit for the
// batch (src/audit/writer.ts groups them), with the same text whatever its size (planned once).
// Nothing here updates or deletes a row: the API has no way to (src/http/audit.ts refuses it).
import { SqlParams } from '../fhir/search/sql.ts';
import type { Executor } from './db.ts';
import { ridOf, type StoredResource } from './resources.ts';
import { stampSubquery } from './stamps.ts';

/** The resource type whose resources live here, not in `resources`: read, searched and filtered by this store's code. */
export const AUDIT_RESOURCE_TYPE = 'AuditEvent';

export interface AuditRecord {
  id: string;
  /** AuditEvent.recorded, also meta.lastUpdated. */
  recorded: string;
  content: string;
  compartments: string[];
  refs: string[];
  codes: string[];
}

// A batch travels as six texts, one per column: the events' values joined by U+001E, and within
// an event its terms joined by U+001F; SQL splits them again (string_to_array, a plain scan). Array
// parameters cost more at both ends: the driver escapes every quote of every JSON text into an
// array literal, and PostgreSQL's array parser unescapes them again (with terms, arrays of arrays,
// which PostgreSQL needs rectangular). No value contains either separator: JSON escapes control
// characters, ids and times have none, and terms have them replaced (src/audit/terms.ts).
const EVENT_SEP = '\u001e';
const TERM_SEP = '\u001f';
const events = (n: number) => `string_to_array($${n}, E'\\x1e')`;
const terms = (column: string) => `coalesce(string_to_array(e.${column}, E'\\x1f'), '{}')`;
const INSERT = `INSERT INTO audit_events (id, recorded, content, compartments, refs, codes)
  SELECT e.id, e.recorded::timestamptz, e.content, ${terms('compartments')}, ${terms('refs')}, ${terms('codes')}
  FROM unnest(${[1, 2, 3, 4, 5, 6].map(events).join(', ')}) AS e(id, recorded, content, compartments, refs, codes)`;
const column = (records: AuditRecord[], value: (r: AuditRecord) => string) => records.map(value).join(EVENT_SEP);

/** Inserts the records in one statement (one commit). */
export async function insertAuditRecords(ex: Executor, records: AuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  const r = await ex.query(
    INSERT,
    [
      column(records, (x) => x.id),
      column(records, (x) => x.recorded),
      column(records, (x) => x.content),
      column(records, (x) => x.compartments.join(TERM_SEP)),
      column(records, (x) => x.refs.join(TERM_SEP)),
      column(records, (x) => x.codes.join(TERM_SEP)),
    ],
    'audit_insert'
  );
  if (r.rowCount !== records.length) throw new Error(`${records.length - (r.rowCount ?? 0)} AuditEvents were not stored`);
}

/** An event of the store as the read interactions return a resource: always version 1, never deleted. */
function stored(row: { seq: string; id: string; recorded: Date; content: string }): StoredResource {
  return { rid: row.seq, resourceType: 'AuditEvent', id: row.id, versionId: 1, lastUpdated: row.recorded, deleted: false, content: row.content };
}

/**
 * The event with this id, its patients, and whether the condition on its row (alias a: the
 * access filter's condition for AuditEvent) holds (true without one); with the `access` stamp read
 * in the same snapshot when asked for.
 */
export async function readAuditEvent(
  ex: Executor, id: string, options: { condition?: (alias: string, params: SqlParams) => string; withStamp?: boolean } = {}
): Promise<{ event?: StoredResource; compartments: string[]; visible: boolean; stamp?: string }> {
  const params = new SqlParams();
  const idParam = params.add(id);
  const visible = options.condition ? `(${options.condition('a', params)})` : 'true';
  const stamp = options.withStamp ? `${stampSubquery('access')} AS access_stamp, ` : '';
  const r = await ex.query<{ access_stamp?: string; seq: string | null; id: string; recorded: Date; content: string; compartments: string[] | null; visible: boolean | null }>(
    `SELECT ${stamp}a.seq::text AS seq, a.id, a.recorded, a.content, a.compartments, ${visible} AS visible FROM (VALUES (1)) one (x) LEFT JOIN audit_events a ON a.id = ${idParam}`,
    params.values
  );
  const row = r.rows[0];
  const event = row?.seq == null ? undefined : stored(row as { seq: string; id: string; recorded: Date; content: string });
  return { event, compartments: row?.compartments ?? [], visible: row?.visible === true, stamp: row?.access_stamp };
}

export interface AuditRow {
  id: string;
  content: string;
  /** The row's sort key as text: recorded to the microsecond, and seq. */
  recorded: string;
  seq: string;
}

/**
 * A page of events matching `where` (alias a), ordered by time then insertion (descending when
 * asked), from after or before a position; `limit` rows at most.
 */
export async function auditPage(
  ex: Executor, where: string, params: SqlParams, desc: boolean, limit: number, withStamp: boolean
): Promise<{ rows: AuditRow[]; stamp?: string }> {
  const dir = desc ? 'DESC' : 'ASC';
  const stamp = withStamp ? `, ${stampSubquery('access')} AS access_stamp` : '';
  const sql = `SELECT a.id, a.content, to_char(a.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS recorded, a.seq::text AS seq${stamp}
    FROM audit_events a WHERE ${where} ORDER BY a.recorded ${dir}, a.seq ${dir} LIMIT ${limit | 0}`;
  const r = await ex.query<AuditRow & { access_stamp?: string }>(sql, params.values);
  return { rows: r.rows, stamp: r.rows[0]?.access_stamp };
}

/** The number of events matching `where`, counted no further than limit + 1 (all without a limit). */
export async function countAuditEvents(ex: Executor, where: string, params: SqlParams, limit?: number): Promise<number> {
  const cap = limit === undefined ? '' : ` LIMIT ${(limit | 0) + 1}`;
  const r = await ex.query<{ c: string }>(`SELECT count(*) AS c FROM (SELECT 1 FROM audit_events a WHERE ${where}${cap}) x`, params.values);
  return Number(r.rows[0].c);
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
