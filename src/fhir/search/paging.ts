// Keyset paging: a page link carries the sort key of the row it continues from (`_page`), not
// an offset. Rows inserted or deleted before that position never shift the next page, so
// following `next` to the end yields every match that existed throughout exactly once, and
// page 20 costs what page 1 costs. Each page re-runs the search, so the caller's access filter
// of the moment applies (a revoked right also closes open links).
import { FhirError, issue } from '../outcome.ts';
import type { SqlParams } from './sql.ts';

/** One ORDER BY term: an SQL expression on the resources alias `r`, its direction, and whether it can be NULL. */
export interface SortTerm {
  expr: string;
  desc: boolean;
  nullable: boolean;
  /** A parameter term whose index table is ordered by its value: it can drive the scan (code: its placeholder). */
  driver?: { table: string; column: string; code: string; codeValue: string };
}

/** A position in the ordered result: the sort key of a row, as the text PostgreSQL gives it. */
export interface Cursor {
  /** Continue after this key (next) or before it (previous). */
  direction: 'after' | 'before';
  /** Also the row at the key itself (the way back from an empty page). */
  inclusive: boolean;
  key: (string | null)[];
  /** The _sort the key belongs to: a cursor only makes sense under the same order. */
  sort: string;
  /** Bundle.total as the search's first page found it, shown again on the pages after. */
  total?: number;
  /** The search's criterion was found too broad to drive it from its index: the next pages need not probe again. */
  broad?: boolean;
}

export function encodeCursor(c: Cursor): string {
  const d = c.direction === 'after' ? 'a' : 'b';
  const parts: unknown[] = [c.inclusive ? d.toUpperCase() : d, c.sort, c.key];
  if (c.total !== undefined || c.broad) parts.push(c.total ?? null);
  if (c.broad) parts.push(1);
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

export function decodeCursor(token: string, sort: string, terms: number): Cursor {
  const bad = () => new FhirError(400, issue('error', 'invalid', '_page is not a paging token this search issued (follow the links of the previous page)', '_page'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length < 3 || parsed.length > 5) throw bad();
  const [d, s, key, total, broad] = parsed as [unknown, unknown, unknown, unknown, unknown];
  if (total !== undefined && total !== null && (typeof total !== 'number' || !Number.isInteger(total) || total < 0)) throw bad();
  if (broad !== undefined && broad !== 1) throw bad();
  if (typeof d !== 'string' || !['a', 'b', 'A', 'B'].includes(d) || typeof s !== 'string' || !Array.isArray(key) || key.length !== terms) throw bad();
  if (!key.every((k) => k === null || typeof k === 'string')) throw bad();
  if (s !== sort) throw new FhirError(400, issue('error', 'invalid', '_page belongs to a search with another _sort; start again from the first page', '_page'));
  return { direction: d.toLowerCase() === 'a' ? 'after' : 'before', inclusive: d === 'A' || d === 'B', key: key as (string | null)[], sort, total: (total ?? undefined) as number | undefined, broad: broad === 1 };
}

/** ORDER BY for the terms; `reverse` flips every direction (and where NULLs go) to read backwards. */
export function orderBy(terms: SortTerm[], names: string[], reverse: boolean): string {
  return terms
    .map((t, i) => {
      const desc = t.desc !== reverse;
      // NULLs come last in the forward order, so first when reading backwards.
      const nulls = t.nullable ? (reverse ? ' NULLS FIRST' : ' NULLS LAST') : '';
      return `${names[i]} ${desc ? 'DESC' : 'ASC'}${nulls}`;
    })
    .join(', ');
}

/**
 * The rows strictly after (or before) a key in the forward order, or also at it when inclusive:
 * (t1 > v1) OR (t1 = v1 AND t2 > v2) OR …, where "after" on a term follows its direction and
 * NULLs sort last. The last term is the unique rid, so the order is total.
 */
export function keysetCondition(terms: SortTerm[], cursor: Cursor, params: SqlParams): string {
  const placeholders = cursor.key.map((v) => (v === null ? null : params.add(v)));
  const ors: string[] = [];
  for (let i = 0; i < terms.length; i++) {
    const ands: string[] = [];
    for (let j = 0; j < i; j++) ands.push(equals(terms[j], placeholders[j]));
    const beyond = beyondCondition(terms[i], placeholders[i], cursor.direction);
    if (beyond === 'false') continue;
    ands.push(beyond);
    ors.push(ands.length === 1 ? ands[0] : `(${ands.join(' AND ')})`);
  }
  if (cursor.inclusive) {
    ors.push(`(${terms.map((t, j) => equals(t, placeholders[j])).join(' AND ')})`);
  }
  return ors.length ? `(${ors.join(' OR ')})` : 'false';
}

/**
 * The first sort key's side of a cursor, bound included (t1 <= v1 for a descending key read
 * forward): implied by keysetCondition, and a range an index on that key can start from, which
 * keysetCondition's OR is not. Undefined when that key may be NULL.
 */
export function keysetBound(terms: SortTerm[], cursor: Cursor, params: SqlParams): string | undefined {
  const [first] = terms;
  const value = cursor.key[0];
  if (!first || first.nullable || value === null) return undefined;
  return `${first.expr} ${first.desc === (cursor.direction === 'after') ? '<=' : '>='} ${params.add(value)}`;
}

function equals(term: SortTerm, value: string | null): string {
  return value === null ? `${term.expr} IS NULL` : `${term.expr} = ${value}`;
}

function beyondCondition(term: SortTerm, value: string | null, direction: 'after' | 'before'): string {
  const forward = direction === 'after';
  if (value === null) return forward ? 'false' : `${term.expr} IS NOT NULL`; // NULLs are last
  const op = term.desc === forward ? '<' : '>';
  const cond = `${term.expr} ${op} ${value}`;
  return forward && term.nullable ? `(${cond} OR ${term.expr} IS NULL)` : cond;
}
