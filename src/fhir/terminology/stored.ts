// The ValueSet and CodeSystem resources stored on this server, as a terminology source: found
// by canonical URL through the search index (their `url` parameter, sp_uri), or by id
// (`ValueSet/id`, `CodeSystem/id`). Handles are keyed by row id and version, so what is derived
// from a resource is cached until it changes.
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { readCurrent } from '../../store/resources.ts';
import { errors } from '../outcome.ts';
import type { CodeSystemHandle, TerminologyContext, TerminologySource, ValueSetHandle } from './types.ts';

interface Candidate {
  rid: string;
  version_id: number;
  version: string | null;
  status: string | null;
  last_updated: Date;
}

const LOCAL_REF = /^(ValueSet|CodeSystem)\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * The stored resources of a type with this canonical URL; with a version, that version; else
 * the active one most recently written (or, if none is active, the most recent).
 */
async function find(tc: TerminologyContext, type: 'ValueSet' | 'CodeSystem', url: string, version?: string): Promise<Candidate | undefined> {
  const r = await tc.ex.query<Candidate>(
    `SELECT r.rid::text AS rid, r.version_id, r.last_updated,
       (SELECT t.value FROM sp_token t WHERE t.rid = r.rid AND t.code = 'version' LIMIT 1) AS version,
       (SELECT t.value FROM sp_token t WHERE t.rid = r.rid AND t.code = 'status' LIMIT 1) AS status
     FROM sp_uri u JOIN resources r ON r.rid = u.rid
     WHERE u.resource_type = $1 AND u.code = 'url' AND u.value = $2 AND NOT r.deleted`,
    [type, url]
  );
  let rows = r.rows;
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

/** The stored resource a `Type/id` reference or a canonical URL (and version) designates, as a handle. */
async function handle<T>(tc: TerminologyContext, type: 'ValueSet' | 'CodeSystem', ref: string, version?: string): Promise<{ key: string; load(): Promise<T> } | undefined> {
  const local = LOCAL_REF.exec(ref);
  if (local) {
    if (local[1] !== type) return undefined;
    const stored = await readCurrent(tc.ex, type, local[2]);
    if (!stored || stored.deleted || !stored.content) return undefined;
    const text = stored.content;
    return { key: `stored:${stored.rid}:${stored.versionId}`, load: async () => parsed<T>(text, ref) };
  }
  const found = await find(tc, type, ref, version);
  if (!found) return undefined;
  return {
    key: `stored:${found.rid}:${found.version_id}`,
    load: async () => parsed<T>(await contentText(tc, found.rid), `${type} ${ref}`),
  };
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
