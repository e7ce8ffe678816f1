// The ValueSet and CodeSystem resources stored on this server, as a terminology source: found
// by canonical URL through the search index (their `url` parameter, sp_uri), or by id
// (`ValueSet/id`, `CodeSystem/id`). Handles are keyed by row id and version, so what is derived
// from a resource is cached until it changes. The packages' own copies (as imported) are left to
// the packages' source, which resolves them in their package's context.
//
// Lookups are cached in the process while the conformance stamp (conformance/stored.ts) stays
// the same: validating a resource asks for dozens of ValueSets and CodeSystems, each a query
// otherwise. A context reads the stamp once; a transaction that wrote one reads around the cache.
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { readStamp } from '../../store/stamps.ts';
import { readCurrent } from '../../store/resources.ts';
import { wroteConformance } from '../conformance/stored.ts';
import { errors } from '../outcome.ts';
import type { CodeSystemHandle, TerminologyContext, TerminologySource, ValueSetHandle } from './types.ts';

interface Candidate {
  rid: string;
  version_id: number;
  last_updated: Date;
  version?: string;
  status?: string;
}

const LOCAL_REF = /^(ValueSet|CodeSystem)\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * The stored resources of a type with this canonical URL; with a version, that version; else
 * the active one most recently written (or, if none is active, the most recent). The common
 * case, one resource and no version asked for, is one query on the url index.
 */
async function find(tc: TerminologyContext, type: 'ValueSet' | 'CodeSystem', url: string, version?: string): Promise<Candidate | undefined> {
  const r = await tc.ex.query<Candidate>(
    `SELECT r.rid::text AS rid, r.version_id, r.last_updated
     FROM sp_uri u JOIN resources r ON r.rid = u.rid
     WHERE u.resource_type = $1 AND u.code = 'url' AND u.value = $2 AND NOT r.deleted
       AND NOT (r.version_id = 1 AND EXISTS (SELECT 1 FROM package_resources p WHERE p.resource_type = r.resource_type AND p.id = r.id))`,
    [type, url]
  );
  let rows = r.rows;
  if (rows.length === 0 || (rows.length === 1 && version === undefined)) return rows[0];
  // Their version and status, through the (resource_type, code) index rather than by rid: a
  // CodeSystem has a token row per concept, and the rid index would walk them all.
  const tokens = await tc.ex.query<{ rid: string; code: string; value: string }>(
    `SELECT t.rid::text AS rid, t.code, t.value FROM sp_token t
     WHERE t.resource_type = $1 AND t.code IN ('version', 'status') AND t.rid::text = ANY($2::text[])`,
    [type, rows.map((c) => c.rid)]
  );
  for (const t of tokens.rows) {
    const c = rows.find((x) => x.rid === t.rid);
    if (c && (t.code === 'version' || t.code === 'status')) c[t.code] ??= t.value;
  }
  if (version !== undefined) rows = rows.filter((c) => c.version === version);
  rows.sort(
    (a, b) => Number(b.status === 'active') - Number(a.status === 'active') || new Date(b.last_updated).getTime() - new Date(a.last_updated).getTime()
  );
  return rows[0];
}

async function contentText(tc: TerminologyContext, rid: string): Promise<string | null> {
  const r = await tc.ex.query<{ content: string | null }>('SELECT content FROM resources WHERE rid = $1 AND NOT deleted', [rid]);
  return r.rows[0]?.content ?? null;
}

function parsed<T>(text: string | null, what: string): T {
  if (!text) throw errors.conflict(`${what} was deleted while being read; retry`);
  return JSON.parse(text) as T;
}

type Handle<T> = { key: string; load(): Promise<T> };

/** Lookups by reference, valid while the conformance stamp is `stamp`. */
let cache: { stamp: string; handles: Map<string, Promise<Handle<unknown> | undefined>> } = { stamp: '', handles: new Map() };
const stampOf = new WeakMap<TerminologyContext, Promise<string>>();

/**
 * The conformance stamp this context sees (read once per context with a memo), which caches of what is
 * derived from stored ValueSets and CodeSystems are keyed by; undefined when the context's
 * transaction wrote one (its reads must not go through, nor into, a cache).
 */
export async function storedTerminologyStamp(tc: TerminologyContext): Promise<string | undefined> {
  if (wroteConformance(tc.ex)) return undefined;
  // Only a context with a memo is one piece of work (types.ts); any other may live long.
  if (!tc.memo) return readStamp(tc.ex, 'conformance');
  let stamp = stampOf.get(tc);
  if (!stamp) {
    stamp = readStamp(tc.ex, 'conformance');
    stampOf.set(tc, stamp);
  }
  return stamp;
}

/** The cache this context may use (undefined: its transaction wrote a ValueSet or CodeSystem). */
async function cacheFor(tc: TerminologyContext): Promise<Map<string, Promise<Handle<unknown> | undefined>> | undefined> {
  const current = await storedTerminologyStamp(tc);
  if (current === undefined) return undefined;
  // Read after the stamp, what is cached is at least as new as it.
  if (current !== cache.stamp) cache = { stamp: current, handles: new Map() };
  return cache.handles;
}

/** The stored resource a `Type/id` reference or a canonical URL (and version) designates, as a handle. */
async function handle<T>(tc: TerminologyContext, type: 'ValueSet' | 'CodeSystem', ref: string, version?: string): Promise<Handle<T> | undefined> {
  const handles = await cacheFor(tc);
  if (!handles) return lookUp<T>(tc, type, ref, version, false);
  const key = `${type}|${ref}|${version ?? ''}`;
  let found = handles.get(key);
  if (!found) {
    found = lookUp<T>(tc, type, ref, version, true);
    handles.set(key, found);
    found.catch(() => handles.delete(key));
  }
  return found as Promise<Handle<T> | undefined>;
}

/** cached: the content is read now (the handle outlives this context's transaction), parsed once. */
async function lookUp<T>(tc: TerminologyContext, type: 'ValueSet' | 'CodeSystem', ref: string, version: string | undefined, cached: boolean): Promise<Handle<T> | undefined> {
  const local = LOCAL_REF.exec(ref);
  if (local) {
    if (local[1] !== type) return undefined;
    const stored = await readCurrent(tc.ex, type, local[2]);
    if (!stored || stored.deleted || !stored.content) return undefined;
    const text = stored.content;
    return { key: `stored:${stored.rid}:${stored.versionId}`, load: once(async () => parsed<T>(text, ref)) };
  }
  const found = await find(tc, type, ref, version);
  if (!found) return undefined;
  if (cached) {
    const text = await contentText(tc, found.rid);
    return { key: `stored:${found.rid}:${found.version_id}`, load: once(async () => parsed<T>(text, `${type} ${ref}`)) };
  }
  return {
    key: `stored:${found.rid}:${found.version_id}`,
    load: async () => parsed<T>(await contentText(tc, found.rid), `${type} ${ref}`),
  };
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

export const storedResources: TerminologySource = {
  name: 'stored resources',

  async valueSet(tc, ref, version) {
    const h = await handle<ValueSet>(tc, 'ValueSet', ref, version);
    return h?.load();
  },

  valueSetHandle(tc, ref, version): Promise<ValueSetHandle | undefined> {
    return handle<ValueSet>(tc, 'ValueSet', ref, version);
  },

  codeSystem(tc, url, version): Promise<CodeSystemHandle | undefined> {
    return handle<CodeSystem>(tc, 'CodeSystem', url, version);
  },
};
