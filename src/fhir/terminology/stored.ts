// The ValueSet and CodeSystem resources stored on this server, as a terminology source: found
// by canonical URL through the search index (their `url` parameter, sp_uri), or by id.
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { readCurrent } from '../../store/resources.ts';
import { errors } from '../outcome.ts';
import type { CodeSystemHandle, TerminologyContext, TerminologySource } from './types.ts';

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

async function content<T>(tc: TerminologyContext, rid: string): Promise<T | undefined> {
  const r = await tc.ex.query<{ content: string | null }>('SELECT content FROM resources WHERE rid = $1 AND NOT deleted', [rid]);
  return r.rows[0]?.content ? (JSON.parse(r.rows[0].content) as T) : undefined;
}

export const storedResources: TerminologySource = {
  name: 'stored resources',

  async valueSet(tc, ref, version) {
    const local = LOCAL_REF.exec(ref);
    if (local) {
      if (local[1] !== 'ValueSet') return undefined;
      const stored = await readCurrent(tc.ex, 'ValueSet', local[2]);
      return stored && !stored.deleted && stored.content ? (JSON.parse(stored.content) as ValueSet) : undefined;
    }
    const found = await find(tc, 'ValueSet', ref, version);
    return found ? content<ValueSet>(tc, found.rid) : undefined;
  },

  async codeSystem(tc, url, version): Promise<CodeSystemHandle | undefined> {
    const found = await find(tc, 'CodeSystem', url, version);
    if (!found) return undefined;
    return {
      key: `stored:${found.rid}:${found.version_id}`,
      load: async () => {
        const cs = await content<CodeSystem>(tc, found.rid);
        if (!cs) throw errors.conflict(`CodeSystem ${url} was deleted while being read; retry`);
        return cs;
      },
    };
  },
};
