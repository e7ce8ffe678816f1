// Token modifiers that need terminology: :in and :not-in (a ValueSet), :below and :above
// (system|code and its descendants or ancestors in the CodeSystem's hierarchy). Search is
// async and SQL building is not, so resolveTerminologyModifiers() runs first, right after the
// query is parsed (search.ts search() and matchIds()): it replaces each such value by the
// explicit (system, code) list it stands for, and sql.ts's token case turns that list into a
// condition on sp_token (resolvedTokenSql). :not-in becomes :not over the list (a resource
// matches when none of its codings is in the value set, as :not does for one code).
import { randomUUID } from 'node:crypto';
import type { FhirContext } from '../context.ts';
import { FhirError, issue } from '../outcome.ts';
import { splitPipe, unescapeValue, type Clause } from '../search/parse.ts';
import type { SqlParams } from '../search/sql.ts';
import { expandValueSet, MAX_EXPANSION, relatedCodes } from './index.ts';
import type { Concept } from './types.ts';

export const TERMINOLOGY_MODIFIERS = ['in', 'not-in', 'above', 'below'];

// Resolved values carry this process-wide random prefix: a value sent by a client can never be
// taken for one (it would have to guess it).
const MARK = `\u0000terminology-${randomUUID()}:`;

/** Resolves the terminology modifiers of every token clause (and of clauses nested in _has). */
export async function resolveTerminologyModifiers(ctx: FhirContext, clauses: Clause[]): Promise<void> {
  for (const clause of clauses) {
    if (clause.has) await resolveTerminologyModifiers(ctx, [clause.has.clause]);
    const mod = clause.modifier;
    if (!mod || !TERMINOLOGY_MODIFIERS.includes(mod) || clause.param?.type !== 'token') continue;
    const values: string[] = [];
    for (const raw of clause.values) values.push(encode(await resolve(ctx, mod, raw, clause.raw)));
    clause.values = values;
    if (mod === 'not-in') clause.modifier = 'not';
  }
}

async function resolve(ctx: FhirContext, mod: string, raw: string, name: string): Promise<Concept[]> {
  const tc = { ex: ctx.ex, memo: new Map() }; // one search writes no ValueSet
  if (mod === 'in' || mod === 'not-in') {
    const ref = unescapeValue(raw);
    if (!ref) throw new FhirError(400, issue('error', 'invalid', `:${mod} takes a ValueSet URL or a ValueSet/id reference`, name));
    const expansion = await expandValueSet(tc, ref);
    if (!expansion) throw new FhirError(400, issue('error', 'not-found', `Unknown ValueSet "${ref}" in ${name}: no ValueSet with this URL or id is available on this server`, name));
    return expansion.contains;
  }
  const parts = splitPipe(raw);
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new FhirError(400, issue('error', 'invalid', `:${mod} on a token takes system|code (the code's CodeSystem decides what is ${mod} it), not "${raw}"`, name));
  }
  const [system, code] = parts;
  const codes = await relatedCodes(tc, mod === 'below' ? 'below' : 'above', system, code, MAX_EXPANSION);
  if (!codes) throw new FhirError(400, issue('error', 'not-found', `Unknown CodeSystem "${system}" in ${name}: its hierarchy is needed for :${mod}`, name));
  return codes.map((c) => ({ system, code: c }));
}

/** The concepts as one value: codes grouped by system. */
function encode(concepts: Concept[]): string {
  const bySystem = new Map<string, string[]>();
  for (const c of concepts) {
    let codes = bySystem.get(c.system);
    if (!codes) bySystem.set(c.system, (codes = []));
    codes.push(c.code);
  }
  return MARK + JSON.stringify([...bySystem]);
}

/**
 * sql.ts's token case: the condition on the sp_token alias `s` for a resolved value; undefined
 * for any other value. A terminology modifier whose value was not resolved is refused.
 */
export function resolvedTokenSql(mod: string | undefined, s: string, raw: string, params: SqlParams, name: string): string | undefined {
  if (raw.startsWith(MARK)) {
    const groups = JSON.parse(raw.slice(MARK.length)) as [string, string[]][];
    if (!groups.length) return 'false';
    const terms = groups.map(([system, codes]) => `(${s}.system = ${params.add(system)} AND ${s}.value = ANY(${params.add(codes)}::text[]))`);
    // An element of type code (Patient.gender, Observation.status) is indexed without a system:
    // its system is the one its binding implies, so its code alone is compared.
    terms.push(`(${s}.system IS NULL AND ${s}.value = ANY(${params.add([...new Set(groups.flatMap(([, codes]) => codes))])}::text[]))`);
    return `(${terms.join(' OR ')})`;
  }
  if (mod !== undefined && TERMINOLOGY_MODIFIERS.includes(mod)) {
    throw new FhirError(400, issue('error', 'not-supported', `:${mod} is not supported in this position (${name})`, name));
  }
  return undefined;
}
