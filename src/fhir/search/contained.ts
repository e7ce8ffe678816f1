// Searching contained resources (search.html#contained). By default a search finds only resources
// stored in their own right, and a chain follows a `#id` reference into the contained resource it
// names (sql.ts containedLink). _contained=true finds the contained resources of the searched type
// that meet the criteria, _contained=both those and the stored ones; _containedType says whether
// the answer holds their containers (the default) or the contained resources themselves.
// Contained resources are indexed under their own rids with the type '#' + their type (migrations/026).
import type { FhirContext } from '../context.ts';
import { FhirError, issue } from '../outcome.ts';
import { lastValue, type Clause, type Query } from './parse.ts';
import { clauseSql, containedType, SqlParams } from './sql.ts';

export interface ContainedMode {
  /** false: stored resources only; true: contained ones only; both. */
  contained: 'false' | 'true' | 'both';
  /** What an answer holds of a contained match: its container, or the contained resource. */
  returned: 'container' | 'contained';
}

export function containedMode(query: Query): ContainedMode {
  const contained = lastValue(query, '_contained') ?? 'false';
  const returned = lastValue(query, '_containedType') ?? 'container';
  if (contained !== 'false' && contained !== 'true' && contained !== 'both') {
    throw new FhirError(400, issue('error', 'invalid', `_contained must be true, false or both, not "${contained}"`, '_contained'));
  }
  if (returned !== 'container' && returned !== 'contained') {
    throw new FhirError(400, issue('error', 'invalid', `_containedType must be container or contained, not "${returned}"`, '_containedType'));
  }
  return { contained, returned };
}

/**
 * The rids of the matches (a `SELECT rid` whose rows are resources rows): the stored resources of
 * `type` that meet the criteria (with _contained=both), and the containers of the contained ones
 * that do. The caller's query applies the rights to those resources rows: a contained resource is
 * seen with its container. `merged`: the search's clauses as search.ts merges them.
 */
export function matchingRids(ctx: FhirContext, type: string, merged: Clause[], mode: ContainedMode, params: SqlParams, returned: 'container' | 'contained'): string {
  const arms: string[] = [];
  if (mode.contained === 'both') {
    const x = params.alias('x');
    const criteria = merged.map((c) => ` AND ${clauseSql(c, x, params, ctx.access)}`).join('');
    arms.push(`SELECT ${x}.rid, ${x}.rid AS container FROM resources ${x} WHERE ${x}.resource_type = ${params.name(type)} AND NOT ${x}.deleted${criteria}`);
  }
  const c = params.alias('cc');
  const criteria = merged.map((m) => ` AND ${clauseSql(m, c, params, ctx.access)}`).join('');
  arms.push(`SELECT ${c}.rid, ${c}.container_rid AS container FROM contained_resources ${c} WHERE ${c}.resource_type = ${params.name(containedType(type))}${criteria}`);
  const column = returned === 'container' ? 'container' : 'rid';
  return `SELECT m.${column} FROM (${arms.join(' UNION ALL ')}) m`;
}

/** A match of _containedType=contained: a stored resource (localId undefined) or one contained in the row. */
export interface ContainedMatch {
  rid: string;
  resourceType: string;
  id: string;
  /** The stored resource: the match itself, or the container of the contained resource localId. */
  content: string;
  localId?: string;
}

/**
 * _containedType=contained: the matches themselves in rid order, `offset` on, up to `limit`, with
 * their containers' content; and the number of matches up to `countLimit` + 1 when it is given.
 */
export async function containedMatches(
  ctx: FhirContext, type: string, merged: Clause[], mode: ContainedMode, offset: number, limit: number, countLimit?: number
): Promise<{ rows: ContainedMatch[]; counted?: number }> {
  const params = new SqlParams();
  const rids = matchingRids(ctx, type, merged, mode, params, 'contained');
  const access = ctx.access ? ` AND ${ctx.access.condition('r', params)}` : '';
  // A match's rid is its own (stored) or its contained row's; r is the stored resource either way.
  const from = `(${rids}) x(rid) LEFT JOIN contained_resources c ON c.rid = x.rid
    JOIN resources r ON r.rid = coalesce(c.container_rid, x.rid) WHERE NOT r.deleted${access}`;
  const page = await ctx.ex.query<{ rid: string; resource_type: string; id: string; content: string; local_id: string | null }>(
    `SELECT x.rid, r.resource_type, r.id, r.content, c.id AS local_id FROM ${from} ORDER BY x.rid OFFSET ${offset | 0} LIMIT ${limit | 0}`,
    params.values
  );
  const rows = page.rows.map((row) => ({
    rid: String(row.rid), resourceType: row.resource_type, id: row.id, content: row.content, localId: row.local_id ?? undefined,
  }));
  if (countLimit === undefined) return { rows };
  const cap = Number.isFinite(countLimit) ? ` LIMIT ${(countLimit | 0) + 1}` : '';
  const n = await ctx.ex.query<{ n: string }>(`SELECT count(*) AS n FROM (SELECT 1 FROM ${from}${cap}) y`, params.values);
  return { rows, counted: Number(n.rows[0].n) };
}

/** The contained resource `localId` of a container's JSON. */
export function containedResource(content: string, localId: string): Record<string, unknown> | undefined {
  const container = JSON.parse(content) as { contained?: Record<string, unknown>[] };
  return container.contained?.find((c) => c?.id === localId);
}
