// Resource persistence: the current row, the history row and the search index rows of a
// write are one SQL statement (data-modifying CTEs), so every write is atomic on its own and
// costs one round trip; inside a transaction bundle the same statements run on the tx.
import type { Executor } from './db.ts';
import type { IndexRows } from '../fhir/search/indexer.ts';

export interface StoredResource {
  rid: string;
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  /** The JSON text as stored; null for a deletion. */
  content: string | null;
}

export interface HistoryEntry extends StoredResource {
  method: string;
}

interface Row {
  rid: string;
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: Date;
  deleted: boolean;
  content: string | null;
  method?: string;
}

function toStored(r: Row): StoredResource {
  return {
    rid: String(r.rid),
    resourceType: r.resource_type,
    id: r.id,
    versionId: r.version_id,
    lastUpdated: r.last_updated instanceof Date ? r.last_updated : new Date(r.last_updated),
    deleted: r.deleted,
    content: r.content,
  };
}

const COLUMNS = 'rid, resource_type, id, version_id, last_updated, deleted, content';

export async function readCurrent(ex: Executor, resourceType: string, id: string, forUpdate = false): Promise<StoredResource | undefined> {
  const r = await ex.query<Row>(
    `SELECT ${COLUMNS} FROM resources WHERE resource_type = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [resourceType, id]
  );
  return r.rows[0] ? toStored(r.rows[0]) : undefined;
}

export async function readVersion(ex: Executor, resourceType: string, id: string, versionId: number): Promise<HistoryEntry | undefined> {
  const r = await ex.query<Row>(
    `SELECT ${COLUMNS}, method FROM resource_history WHERE resource_type = $1 AND id = $2 AND version_id = $3`,
    [resourceType, id, versionId]
  );
  return r.rows[0] ? { ...toStored(r.rows[0]), method: r.rows[0].method! } : undefined;
}

/** The index-row CTEs shared by insert and update; `r` yields the rid, `type` names the resource type parameter. */
function indexCtes(type: string, first: number): string {
  let n = first;
  const p = () => `$${n++}`;
  const parts = [
    `s_str AS (INSERT INTO sp_string (rid, resource_type, code, value, norm)
      SELECT r.rid, $T, x.a, x.b, x.c FROM r, unnest(${p()}::text[], ${p()}::text[], ${p()}::text[]) AS x(a, b, c))`,
    `s_tok AS (INSERT INTO sp_token (rid, resource_type, code, system, value, display)
      SELECT r.rid, $T, x.a, x.b, x.c, x.d FROM r, unnest(${p()}::text[], ${p()}::text[], ${p()}::text[], ${p()}::text[]) AS x(a, b, c, d))`,
    `s_date AS (INSERT INTO sp_date (rid, resource_type, code, low, high)
      SELECT r.rid, $T, x.a, x.b, x.c FROM r, unnest(${p()}::text[], ${p()}::timestamptz[], ${p()}::timestamptz[]) AS x(a, b, c))`,
    `s_num AS (INSERT INTO sp_number (rid, resource_type, code, value, low, high)
      SELECT r.rid, $T, x.a, x.b, x.c, x.d FROM r, unnest(${p()}::text[], ${p()}::numeric[], ${p()}::numeric[], ${p()}::numeric[]) AS x(a, b, c, d))`,
    `s_qty AS (INSERT INTO sp_quantity (rid, resource_type, code, value, low, high, system, unit)
      SELECT r.rid, $T, x.a, x.b, x.c, x.d, x.e, x.f FROM r, unnest(${p()}::text[], ${p()}::numeric[], ${p()}::numeric[], ${p()}::numeric[], ${p()}::text[], ${p()}::text[]) AS x(a, b, c, d, e, f))`,
    `s_ref AS (INSERT INTO sp_reference (rid, resource_type, code, target_type, target_id, url)
      SELECT r.rid, $T, x.a, x.b, x.c, x.d FROM r, unnest(${p()}::text[], ${p()}::text[], ${p()}::text[], ${p()}::text[]) AS x(a, b, c, d))`,
    `s_uri AS (INSERT INTO sp_uri (rid, resource_type, code, value)
      SELECT r.rid, $T, x.a, x.b FROM r, unnest(${p()}::text[], ${p()}::text[]) AS x(a, b))`,
  ];
  return parts.join(',\n').replaceAll('$T', type);
}

function indexParams(rows: IndexRows): unknown[] {
  const { string: s, token: t, date: d, number: nb, quantity: q, reference: rf, uri: u } = rows;
  return [
    s.code, s.value, s.norm,
    t.code, t.system, t.value, t.display,
    d.code, d.low, d.high,
    nb.code, nb.value, nb.low, nb.high,
    q.code, q.value, q.low, q.high, q.system, q.unit,
    rf.code, rf.targetType, rf.targetId, rf.url,
    u.code, u.value,
  ];
}

const INSERT_SQL = `WITH r AS (
      INSERT INTO resources (resource_type, id, version_id, last_updated, content, compartments)
      VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (resource_type, id) DO NOTHING RETURNING rid),
    h AS (INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated, method, content)
      SELECT r.rid, $1, $2, 1, $3, $6, $4 FROM r),
    ${indexCtes('$1', 7)}
    SELECT rid FROM r`;

export interface WriteInput {
  resourceType: string;
  id: string;
  lastUpdated: string;
  content: string;
  rows: IndexRows;
  method: string;
}

/** Inserts version 1 of a new resource; returns false when the id is already taken. */
export async function insertResource(ex: Executor, w: WriteInput): Promise<boolean> {
  const r = await ex.query(INSERT_SQL, [w.resourceType, w.id, w.lastUpdated, w.content, w.rows.compartments, w.method, ...indexParams(w.rows)]);
  return r.rows.length === 1;
}

const DELETE_INDEX = ['sp_string', 'sp_token', 'sp_date', 'sp_number', 'sp_quantity', 'sp_reference', 'sp_uri']
  .map((t) => `d_${t} AS (DELETE FROM ${t} WHERE rid IN (SELECT rid FROM r))`)
  .join(',\n');

const UPDATE_SQL = `WITH r AS (
      UPDATE resources SET version_id = $4, last_updated = $5, deleted = $6, content = $7, compartments = $8
      WHERE rid = $1 AND version_id = $2 RETURNING rid),
    h AS (INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated, method, deleted, content)
      SELECT r.rid, $10, $3, $4, $5, $9, $6, $7 FROM r),
    ${DELETE_INDEX},
    ${indexCtes('$10', 11)}
    SELECT rid FROM r`;

export interface UpdateInput {
  rid: string;
  resourceType: string;
  id: string;
  expectedVersion: number;
  lastUpdated: string;
  /** null marks a deletion. */
  content: string | null;
  rows: IndexRows;
  method: string;
}

/**
 * Writes version expectedVersion + 1 if the current version is still expectedVersion:
 * a compare-and-set, so concurrent writers cannot lose an update (the loser gets false).
 */
export async function updateResource(ex: Executor, w: UpdateInput): Promise<boolean> {
  const r = await ex.query(UPDATE_SQL, [
    w.rid, w.expectedVersion, w.id, w.expectedVersion + 1, w.lastUpdated, w.content === null, w.content, w.rows.compartments, w.method,
    w.resourceType, ...indexParams(w.rows),
  ]);
  return r.rows.length === 1;
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  since?: string;
  /** Versions current at some time in [atLow, atHigh). */
  at?: { low: string; high: string };
  /** Stable paging: only entries at or below this sequence number (fixed at the first page). */
  maxSeq?: string;
  offset: number;
  count: number;
}

export async function readHistory(ex: Executor, q: HistoryQuery): Promise<{ entries: HistoryEntry[]; total: number; maxSeq: string }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (q.resourceType) add('h.resource_type = ?', q.resourceType);
  if (q.id) add('h.id = ?', q.id);
  if (q.since) add('h.last_updated >= ?', q.since);
  if (q.maxSeq) add('h.seq <= ?', q.maxSeq);
  if (q.at) {
    // Current during [low, high): written before high, and not replaced before low.
    add('h.last_updated < ?', q.at.high);
    add(`NOT EXISTS (SELECT 1 FROM resource_history n WHERE n.rid = h.rid AND n.version_id > h.version_id AND n.last_updated <= ?)`, q.at.low);
  }
  const maxSeq = q.maxSeq ?? String((await ex.query<{ m: string | null }>('SELECT max(seq)::text AS m FROM resource_history')).rows[0].m ?? '0');
  if (!q.maxSeq) {
    params.push(maxSeq);
    where.push(`h.seq <= $${params.length}`);
  }
  const finalWhere = `WHERE ${where.join(' AND ')}`;
  const total = Number((await ex.query<{ c: string }>(`SELECT count(*) AS c FROM resource_history h ${finalWhere}`, params)).rows[0].c);
  const rows = await ex.query<Row>(
    `SELECT h.rid, h.resource_type, h.id, h.version_id, h.last_updated, h.deleted, h.content, h.method
     FROM resource_history h ${finalWhere} ORDER BY h.last_updated DESC, h.seq DESC OFFSET ${q.offset | 0} LIMIT ${q.count | 0}`,
    params
  );
  return { entries: rows.rows.map((r) => ({ ...toStored(r), method: r.method! })), total, maxSeq };
}
