// Resource persistence: the current row, the history row and the search index rows of a
// write are one call of a PL/pgSQL function (migrations/002, index fields extended by 003), so every write is atomic on its
// own and costs one round trip; inside a transaction bundle the same calls run on the tx.
import type { Db, Executor, QueryResult } from './db.ts';
import { READ_STAMP, stampSubquery } from './stamps.ts';
import { emptyRows, type IndexRows } from '../fhir/search/indexer.ts';
import { containedType, SqlParams } from '../fhir/search/sql.ts';

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
  // Named: parsing and planning it each time cost PostgreSQL five times its execution (0.27 against 0.05 ms).
  const r = await ex.query<Row>(
    `SELECT ${COLUMNS} FROM resources WHERE resource_type = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [resourceType, id],
    forUpdate ? 'read_current_for_update' : 'read_current'
  );
  return r.rows[0] ? toStored(r.rows[0]) : undefined;
}

/** readCurrent with the row's patient compartments and index_mask (an access decision; what a deletion keeps). */
export async function readCurrentForAccess(ex: Executor, resourceType: string, id: string): Promise<AccessRow | undefined> {
  const r = await ex.query<Row & { compartments: string[]; index_mask: number }>(
    `SELECT ${COLUMNS}, compartments, index_mask FROM resources WHERE resource_type = $1 AND id = $2`,
    [resourceType, id],
    READ_FOR_ACCESS
  );
  return r.rows[0] ? toAccessRow(r.rows[0]) : undefined;
}

export interface AccessRow {
  stored: StoredResource;
  compartments: string[];
  indexMask: number;
}

function toAccessRow(row: Row & { compartments: string[]; index_mask: number }): AccessRow {
  return { stored: toStored(row), compartments: row.compartments ?? [], indexMask: row.index_mask };
}

/**
 * readCurrentForAccess and the `access` stamp (src/store/stamps.ts) in one statement, so in one
 * snapshot: rights cached at that stamp are exact for this row (src/access/cache.ts AssumedAccess).
 */
export async function readCurrentForAccessWithStamp(ex: Executor, resourceType: string, id: string): Promise<{ stamp: string; row: AccessRow | undefined }> {
  const r = await ex.query<Row & { compartments: string[]; index_mask: number; access_stamp: string }>(
    `SELECT ${stampSubquery('access')} AS access_stamp, r.${COLUMNS.split(', ').join(', r.')}, r.compartments, r.index_mask
     FROM (VALUES (1)) AS one (x) LEFT JOIN resources r ON r.resource_type = $1 AND r.id = $2`,
    [resourceType, id],
    'read_current_with_access_stamp'
  );
  const row = r.rows[0];
  return { stamp: row.access_stamp, row: row.rid == null ? undefined : toAccessRow(row) };
}

/**
 * readCurrent restricted by a condition on the row (alias r) whose values it adds to params
 * (given with $1 and $2 taken): undefined when there is no such row or it fails the condition.
 */
export async function readCurrentIf(
  ex: Executor,
  resourceType: string,
  id: string,
  condition: (alias: string, params: SqlParams) => string
): Promise<StoredResource | undefined> {
  const params = new SqlParams();
  const t = params.add(resourceType);
  const i = params.add(id);
  const cond = condition('r', params);
  const r = await ex.query<Row>(`SELECT ${COLUMNS} FROM resources r WHERE r.resource_type = ${t} AND r.id = ${i} AND (${cond})`, params.values);
  return r.rows[0] ? toStored(r.rows[0]) : undefined;
}

/**
 * The rid of a resource by type and id (the placeholders given): history rows are found by rid (their unique key
 * with the version). Found by type and id, they were looked for among every version of the type:
 * a vread took 0.9-1.3 s at 1M resources (3.4 s cold), 0.5-0.7 ms by rid. A deleted resource keeps
 * its row, so its rid.
 */
export const ridOf = (type: string, id: string): string => `SELECT rid FROM resources WHERE resource_type = ${type} AND id = ${id}`;

export async function readVersion(ex: Executor, resourceType: string, id: string, versionId: number): Promise<HistoryEntry | undefined> {
  const r = await ex.query<Row>(
    `SELECT ${COLUMNS}, method FROM resource_history WHERE rid = (${ridOf('$1', '$2')}) AND version_id = $3`,
    [resourceType, id, versionId],
    'read_version'
  );
  return r.rows[0] ? { ...toStored(r.rows[0]), method: r.rows[0].method! } : undefined;
}

export function indexParams(rows: IndexRows): unknown[] {
  const { string: s, token: t, date: d, number: nb, quantity: q, reference: rf, uri: u, composite: x, text } = rows;
  return [
    s.code, s.value, s.norm,
    t.code, t.system, t.value, t.display,
    d.code, d.low, d.high,
    nb.code, nb.value, nb.low, nb.high,
    q.code, q.value, q.low, q.high, q.system, q.unit,
    rf.code, rf.targetType, rf.targetId, rf.url,
    u.code, u.value,
    // added by migrations/003
    q.cValue, q.cUnit,
    x.code, x.aSystem, x.aValue, x.bSystem, x.bValue, x.bUrl, x.bNum, x.bCnum, x.bCunit, x.bLow, x.bHigh, x.cNum,
    text.narrative, text.content,
  ];
}

/** index_mask bit of a resource with security labels (meta.security, securityLabel): see LABELLED_MASK. */
export const LABELLED_MASK = 512;
const LABEL_PARAMS = new Set(['_security', 'security-label']);

/**
 * Bit i set: the i-th index table (string, token, date, number, quantity, reference, uri,
 * composite, text) gets rows; an update then clears only those (fhir_clear_index). Bit 9
 * (LABELLED_MASK): the resource has security labels, so an access filter looks for visibility
 * labels (src/access/filter.ts) in sp_token for those rows only (migrations/012).
 */
export function indexMask(rows: IndexRows): number {
  const tables = [rows.string, rows.token, rows.date, rows.number, rows.quantity, rows.reference, rows.uri, rows.composite];
  let mask = tables.reduce((m, t, i) => (t.code.length ? m | (1 << i) : m), 0);
  if (rows.text.narrative !== null || rows.text.content !== null) mask |= 256;
  if (rows.token.code.some((c) => LABEL_PARAMS.has(c))) mask |= LABELLED_MASK;
  if (rows.contained.length) mask |= CONTAINED_MASK;
  return mask;
}

/** index_mask bit 10: the resource's contained resources have rows of their own (migrations/026), which fhir_clear_index drops. */
export const CONTAINED_MASK = 1024;

/**
 * The rows of a stored resource's contained resources (migrations/026: contained_resources, and
 * index rows under their own rids with the type '#' + their type), in one statement. The
 * resource's previous ones were dropped with its previous index rows (fhir_clear_index).
 */
export async function writeContained(ex: Executor, containerRid: string, lastUpdated: string, rows: IndexRows): Promise<void> {
  const contained = rows.contained;
  if (!contained.length) return;
  const own = contained.map((c) => c.rows);
  await ex.query(
    WRITE_CONTAINED.text,
    [
      containerRid, lastUpdated, contained.map((c) => containedType(c.resourceType)), contained.map((c) => c.id), ...batchRowParams(own),
    ],
    WRITE_CONTAINED.name
  );
}

/** A write and its contained resources' rows in one transaction: opened here when `ex` is the database itself. */
async function withContained<T>(ex: Executor, rows: IndexRows, write: (tx: Executor) => Promise<T>): Promise<T> {
  const db = ex as Partial<Db>;
  return rows.contained.length && typeof db.transaction === 'function' ? db.transaction(write) : write(ex);
}

// SQL types of the fhir_index composite's fields, in indexParams() order (migrations/002, then 003).
const INDEX_TYPES = [
  'text[]', 'text[]', 'text[]',
  'text[]', 'text[]', 'text[]', 'text[]',
  'text[]', 'timestamptz[]', 'timestamptz[]',
  'text[]', 'numeric[]', 'numeric[]', 'numeric[]',
  'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'text[]',
  'text[]', 'text[]', 'text[]', 'text[]',
  'text[]', 'text[]',
  'numeric[]', 'text[]',
  'text[]', 'text[]', 'text[]', 'text[]', 'text[]', 'text[]', 'numeric[]', 'numeric[]', 'text[]', 'timestamptz[]', 'timestamptz[]', 'numeric[]',
  'text', 'text',
];

/** "$first, ..." for `count` parameters, then the index arrays as one fhir_index row. */
export function callArgs(count: number): string {
  const plain = Array.from({ length: count }, (_, i) => `$${i + 1}`);
  const index = INDEX_TYPES.map((type, i) => `$${count + 1 + i}::${type}`);
  return `${plain.join(', ')}, ROW(${index.join(', ')})::fhir_index`;
}

// Named, so PostgreSQL parses and plans each once per connection (PGlite ignores the name).
const INSERT = { name: 'fhir_insert', text: `SELECT fhir_insert_resource(${callArgs(7)}) AS rid` };
const READ_FOR_ACCESS = 'read_current_for_access';
const UPDATE = { name: 'fhir_update', text: `SELECT fhir_update_resource(${callArgs(9)}) AS ok` };

export interface WriteInput {
  resourceType: string;
  id: string;
  lastUpdated: string;
  content: string;
  rows: IndexRows;
  method: string;
}

/** Inserts version 1 of a new resource with its history and index rows; false when the id is taken. */
export async function insertResource(ex: Executor, w: WriteInput): Promise<boolean> {
  return withContained(ex, w.rows, async (tx) => {
    const batch = tx instanceof IndexBatch ? tx : undefined;
    const r = await tx.query<{ rid: string | null }>(
      INSERT.text,
      [w.resourceType, w.id, w.lastUpdated, w.content, w.rows.compartments, w.method, indexMask(w.rows), ...indexParams(batch ? NO_ROWS : w.rows)],
      INSERT.name
    );
    const rid = r.rows[0]?.rid;
    if (rid != null && batch) batch.defer(String(rid), w.resourceType, w.rows);
    if (rid != null) await writeContained(tx, String(rid), w.lastUpdated, w.rows);
    return rid != null;
  });
}

const NO_ROWS = emptyRows();

/**
 * A transaction whose new resources get their index rows later, all at once (migration 019:
 * one set-wise call instead of one per resource, whose half dozen INSERTs cost more in
 * per-statement overhead than in rows). The rows are written before any statement of the
 * transaction other than those known not to read or write index rows (INDEX_FREE), and by
 * flush() before the transaction commits, so everything the transaction reads or changes
 * afterwards sees them, as if they had been written at once.
 */
export class IndexBatch implements Executor {
  private readonly tx: Executor;
  private pending: { rid: string; resourceType: string; rows: IndexRows }[] = [];

  constructor(tx: Executor) {
    this.tx = tx;
    if (tx.beforeCommit) this.beforeCommit = (key, hook) => tx.beforeCommit!(key, hook);
  }

  beforeCommit?: (key: string, hook: () => Promise<void>) => void;

  async query<R = Record<string, unknown>>(sql: string, params?: unknown[], name?: string): Promise<QueryResult<R>> {
    if (!name || !INDEX_FREE.has(name)) await this.flush();
    return this.tx.query<R>(sql, params, name);
  }

  defer(rid: string, resourceType: string, rows: IndexRows): void {
    this.pending.push({ rid, resourceType, rows });
    this.tx.beforeCommit?.('index-batch', () => this.flush());
  }

  async flush(): Promise<void> {
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    await this.tx.query(WRITE_BATCH.text, indexBatchParams(batch), WRITE_BATCH.name);
  }
}

/**
 * Statements that neither read nor write index rows (IndexBatch), by name: inserting a resource,
 * reading one by id, reading a change stamp (profile enforcement does, per resource).
 */
const INDEX_FREE = new Set([INSERT.name, READ_FOR_ACCESS, READ_STAMP]);

/** The columns of each index table's rows, in the order the set-wise write functions take them (migrations 010, 019). */
export const INDEX_COLUMNS = {
  string: { columns: ['code', 'value', 'norm'], types: ['text', 'text', 'text'] },
  token: { columns: ['code', 'system', 'value', 'display'], types: ['text', 'text', 'text', 'text'] },
  date: { columns: ['code', 'low', 'high'], types: ['text', 'timestamptz', 'timestamptz'] },
  number: { columns: ['code', 'value', 'low', 'high'], types: ['text', 'numeric', 'numeric', 'numeric'] },
  quantity: {
    columns: ['code', 'value', 'low', 'high', 'system', 'unit', 'cValue', 'cUnit'],
    types: ['text', 'numeric', 'numeric', 'numeric', 'text', 'text', 'numeric', 'text'],
  },
  reference: { columns: ['code', 'targetType', 'targetId', 'url'], types: ['text', 'text', 'text', 'text'] },
  uri: { columns: ['code', 'value'], types: ['text', 'text'] },
  composite: {
    columns: ['code', 'aSystem', 'aValue', 'bSystem', 'bValue', 'bUrl', 'bNum', 'bCnum', 'bCunit', 'bLow', 'bHigh', 'cNum'],
    types: ['text', 'text', 'text', 'text', 'text', 'text', 'numeric', 'numeric', 'text', 'timestamptz', 'timestamptz', 'numeric'],
  },
} as const;
export type IndexTable = keyof typeof INDEX_COLUMNS;

/**
 * One index table's rows of several resources as flat column arrays, led by the owner column
 * (each row's resource, its ordinal from 1 in `resources`): the parameters of a set-wise write.
 */
export function ownedColumns(resources: IndexRows[], table: IndexTable): unknown[][] {
  const { columns } = INDEX_COLUMNS[table];
  const owner: number[] = [];
  const values: unknown[][] = columns.map(() => []);
  resources.forEach((r, i) => {
    const rows = r[table] as unknown as Record<string, unknown[]>;
    for (let k = 0; k < rows.code.length; k++) {
      owner.push(i + 1);
      columns.forEach((c, j) => values[j].push(rows[c][k]));
    }
  });
  return [owner, ...values];
}

/** The SQL array types of ownedColumns(…, table), owner first. */
export const ownedTypes = (table: IndexTable): string[] => ['integer[]', ...INDEX_COLUMNS[table].types.map((t) => `${t}[]`)];

// fhir_write_index_batch's parameters: the rids and types, then every table's ownedColumns, then the texts.
const BATCH_TABLES = Object.keys(INDEX_COLUMNS) as IndexTable[];
// fhir_write_index_batch's parameters after the rids and types, as `$first::type, …`: every table's ownedColumns, then the texts.
const batchRowArgs = (first: number) =>
  [...BATCH_TABLES.flatMap(ownedTypes), 'text[]', 'text[]'].map((type, i) => `$${i + first}::${type}`).join(', ');

/** The values of batchRowArgs for these resources' rows. */
function batchRowParams(rows: IndexRows[]): unknown[] {
  return [...BATCH_TABLES.flatMap((table) => ownedColumns(rows, table)), rows.map((r) => r.text.narrative), rows.map((r) => r.text.content)];
}

const WRITE_BATCH = { name: 'fhir_index_batch', text: `SELECT fhir_write_index_batch($1::bigint[], $2::text[], ${batchRowArgs(3)})` };

// fhir_write_index_batch on the rows fhir_add_contained adds: $1 the container, $2 its lastUpdated, $3 the types, $4 the ids.
const WRITE_CONTAINED = {
  name: 'fhir_contained',
  text: `SELECT fhir_write_index_batch(fhir_add_contained($1::bigint, $2::timestamptz, $3::text[], $4::text[]), $3::text[], ${batchRowArgs(5)})`,
};

function indexBatchParams(batch: { rid: string; resourceType: string; rows: IndexRows }[]): unknown[] {
  return [batch.map((b) => b.rid), batch.map((b) => b.resourceType), ...batchRowParams(batch.map((b) => b.rows))];
}

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
  return withContained(ex, w.rows, async (tx) => {
    const r = await tx.query<{ ok: boolean }>(
      UPDATE.text,
      [
        w.rid, w.expectedVersion, w.resourceType, w.id, w.lastUpdated, w.content, w.rows.compartments, w.method, indexMask(w.rows),
        ...indexParams(w.rows),
      ],
      UPDATE.name
    );
    const ok = r.rows[0]?.ok === true;
    if (ok) await writeContained(tx, w.rid, w.lastUpdated, w.rows);
    return ok;
  });
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  since?: string;
  /** Versions current at some time in [atLow, atHigh). */
  at?: { low: string; high: string };
  /** Stable paging: only entries at or below this sequence number (fixed at the first page). */
  maxSeq?: string;
  /**
   * Where the page starts: the entries after this position in the history's order (a next page),
   * or, backward, the last ones before it (a previous page); without it, `offset` entries in.
   */
  start?: { position: HistoryPosition; backward: boolean };
  offset: number;
  count: number;
  /** Count no further than this (the total is then left out): a count of every version costs seconds at 1M resources. */
  countLimit: number;
}

/**
 * An entry's place in the history's order (latest first: lastUpdated, then sequence number), as
 * PostgreSQL gives it: the time to the microsecond, which a Date would round to the millisecond.
 */
export interface HistoryPosition {
  lastUpdated: string;
  seq: string;
}

/** An access condition on a `resources` alias (the fhir layer's AccessFilter), applied to each entry's resource. */
export interface HistoryAccess {
  condition(alias: string, params: { values: unknown[]; add(v: unknown): string }): string;
}

/**
 * A page of history, latest first, with each entry's position and whether more entries follow
 * the page on its far side (`more`: beyond its last entry, or before its first for a previous
 * page). A page starts at a position, read along the (last_updated, seq) indexes: by OFFSET, a
 * page 500,000 entries into the system history at 1M resources took 1.3-7 s. The total is
 * counted up to q.countLimit, undefined beyond: the whole system's history took 1.6 s to count,
 * on every page.
 */
export async function readHistory(
  ex: Executor, q: HistoryQuery, access?: HistoryAccess
): Promise<{ entries: HistoryEntry[]; positions: HistoryPosition[]; more: boolean; total: number | undefined; maxSeq: string }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (q.resourceType && q.id) {
    params.push(q.resourceType, q.id);
    where.push(`h.rid = (${ridOf(`$${params.length - 1}`, `$${params.length}`)})`);
  } else {
    if (q.resourceType) add('h.resource_type = ?', q.resourceType);
    if (q.id) add('h.id = ?', q.id);
  }
  if (q.since) add('h.last_updated >= ?', q.since);
  // The first page fixes the sequence bound that later pages carry, so pages never shift.
  const maxSeq = q.maxSeq ?? String((await ex.query<{ m: string | null }>('SELECT max(seq)::text AS m FROM resource_history')).rows[0].m ?? '0');
  add('h.seq <= ?', maxSeq);
  if (q.at) {
    // Current during [low, high): written before high, and not replaced before low.
    add('h.last_updated < ?', q.at.high);
    add(`NOT EXISTS (SELECT 1 FROM resource_history n WHERE n.rid = h.rid AND n.version_id > h.version_id AND n.last_updated <= ?)`, q.at.low);
  }
  if (access) {
    // The resource's current row decides whether its versions are visible.
    const p = { values: params, add: (v: unknown) => `$${params.push(v)}` };
    where.push(`EXISTS (SELECT 1 FROM resources ar WHERE ar.rid = h.rid AND ${access.condition('ar', p)})`);
  }
  const finalWhere = `WHERE ${where.join(' AND ')}`;
  const limit = Math.max(0, q.countLimit | 0);
  const counted = Number(
    (await ex.query<{ c: string }>(`SELECT count(*) AS c FROM (SELECT 1 FROM resource_history h ${finalWhere} LIMIT ${limit + 1}) x`, params)).rows[0].c
  );
  const from = q.start?.position;
  const backward = q.start?.backward === true;
  let pageWhere = finalWhere;
  if (from) {
    params.push(from.lastUpdated, from.seq);
    pageWhere += ` AND (h.last_updated, h.seq) ${backward ? '>' : '<'} ($${params.length - 1}::timestamptz, $${params.length}::bigint)`;
  }
  const order = backward ? 'ASC' : 'DESC';
  const count = q.count | 0;
  const rows = await ex.query<Row & { position: string; seq: string }>(
    `SELECT h.rid, h.resource_type, h.id, h.version_id, h.last_updated, h.deleted, h.content, h.method, h.seq::text AS seq,
       to_char(h.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position
     FROM resource_history h ${pageWhere} ORDER BY h.last_updated ${order}, h.seq ${order} OFFSET ${from ? 0 : q.offset | 0} LIMIT ${count + 1}`,
    params
  );
  const page = rows.rows.slice(0, count);
  if (backward) page.reverse();
  return {
    entries: page.map((r) => ({ ...toStored(r), method: r.method! })),
    positions: page.map((r) => ({ lastUpdated: r.position, seq: r.seq })),
    more: rows.rows.length > count,
    total: counted <= limit ? counted : undefined,
    maxSeq,
  };
}
