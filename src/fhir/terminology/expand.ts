// The server's own terminology engine over its sources (stored resources, later packages):
// ValueSet expansion (compose: include/exclude of explicit concepts, whole CodeSystems,
// filters on CodeSystem hierarchies and properties, other ValueSets; or the ValueSet's own
// expansion.contains when it comes expanded) and subsumption in CodeSystem hierarchies (nested
// concepts, `parent`/`child` properties).
import type { CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude, ValueSetComposeIncludeFilter, ValueSetExpansionContains } from '@medplum/fhirtypes';
import { FhirError, issue } from '../outcome.ts';
import type { CodeSystemHandle, Concept, ExpandOptions, Expansion, Terminology, TerminologyContext, TerminologySource } from './types.ts';

/** A CodeSystem's concepts and hierarchy, derived once per content (cached by handle key). */
export class Hierarchy {
  readonly url: string;
  readonly version: string | undefined;
  readonly concepts = new Map<string, { display?: string; properties: Map<string, string[]> }>();
  private readonly parents = new Map<string, Set<string>>();
  private readonly children = new Map<string, Set<string>>();

  constructor(cs: CodeSystem) {
    this.url = cs.url ?? '';
    this.version = cs.version;
    const walk = (concepts: CodeSystemConcept[] | undefined, parent: string | undefined) => {
      for (const c of concepts ?? []) {
        if (!c.code) continue;
        const properties = new Map<string, string[]>();
        for (const p of c.property ?? []) {
          const v = p.valueCode ?? p.valueString ?? p.valueCoding?.code ?? (p.valueBoolean !== undefined ? String(p.valueBoolean) : undefined) ??
            (p.valueInteger !== undefined ? String(p.valueInteger) : undefined) ?? (p.valueDecimal !== undefined ? String(p.valueDecimal) : undefined) ?? p.valueDateTime;
          if (v === undefined) continue;
          properties.set(p.code, [...(properties.get(p.code) ?? []), v]);
          if (p.code === 'parent' || p.code === 'subsumedBy') this.link(v, c.code);
          if (p.code === 'child') this.link(c.code, v);
        }
        this.concepts.set(c.code, { display: c.display, properties });
        if (parent) this.link(parent, c.code);
        walk(c.concept, c.code);
      }
    };
    walk(cs.concept, undefined);
  }

  private link(parent: string, child: string): void {
    if (parent === child) return;
    let p = this.parents.get(child);
    if (!p) this.parents.set(child, (p = new Set()));
    p.add(parent);
    let c = this.children.get(parent);
    if (!c) this.children.set(parent, (c = new Set()));
    c.add(child);
  }

  /** code and every code reachable through `edges` (children: below, parents: above), cycles tolerated. */
  private closure(code: string, edges: Map<string, Set<string>>, limit: number): Set<string> {
    const seen = new Set([code]);
    const todo = [code];
    while (todo.length) {
      for (const next of edges.get(todo.pop()!) ?? []) {
        if (seen.has(next)) continue;
        seen.add(next);
        if (seen.size > limit) throw tooCostly(`more than ${limit} codes are related to ${this.url}|${code}`);
        todo.push(next);
      }
    }
    return seen;
  }

  below(code: string, limit: number): Set<string> {
    return this.closure(code, this.children, limit);
  }

  above(code: string, limit: number): Set<string> {
    return this.closure(code, this.parents, limit);
  }
}

function tooCostly(text: string): FhirError {
  return new FhirError(400, issue('error', 'too-costly', `Expansion too large: ${text}`));
}

function cannot(text: string, code: 'not-found' | 'not-supported' | 'invalid' = 'not-supported'): FhirError {
  return new FhirError(400, issue('error', code, text));
}

/** Concepts keyed by system and code. */
type CodeSet = Map<string, Concept>;
const keyOf = (system: string, code: string) => `${system}\u0000${code}`;
const MAX_DEPTH = 16;
const CACHE_SIZE = 32;

export class LocalTerminology implements Terminology {
  private readonly sources: () => readonly TerminologySource[];
  private readonly cache = new Map<string, Hierarchy>();

  /** sources: consulted in order, the first that knows a resource answers. */
  constructor(sources: () => readonly TerminologySource[]) {
    this.sources = sources;
  }

  async expand(tc: TerminologyContext, valueSet: string, options: ExpandOptions): Promise<Expansion | undefined> {
    const [url, version] = splitCanonical(valueSet);
    const vs = await this.valueSet(tc, url, version);
    if (!vs) return undefined;
    const codes = await this.expandResource(tc, vs, options, 0);
    return { url: vs.url ?? valueSet, version: vs.version, contains: [...codes.values()] };
  }

  async descendants(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined> {
    const h = await this.hierarchy(tc, system);
    return h ? [...h.below(code, options.maxCodes)] : undefined;
  }

  async ancestors(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined> {
    const h = await this.hierarchy(tc, system);
    return h ? [...h.above(code, options.maxCodes)] : undefined;
  }

  private async valueSet(tc: TerminologyContext, ref: string, version?: string): Promise<ValueSet | undefined> {
    for (const source of this.sources()) {
      const vs = await source.valueSet(tc, ref, version);
      if (vs) return vs;
    }
    return undefined;
  }

  /** The hierarchy of a CodeSystem, from the first source that has it (cached per content). */
  private async hierarchy(tc: TerminologyContext, url: string, version?: string): Promise<Hierarchy | undefined> {
    let handle: CodeSystemHandle | undefined;
    for (const source of this.sources()) {
      handle = await source.codeSystem(tc, url, version);
      if (handle) break;
    }
    if (!handle) return undefined;
    let h = this.cache.get(handle.key);
    if (h) {
      this.cache.delete(handle.key); // most recently used last
    } else {
      const cs = await handle.load();
      if (cs.content === 'not-present') {
        throw cannot(`CodeSystem ${url} is known to this server without its concepts (content = not-present): it cannot be expanded`);
      }
      h = new Hierarchy(cs);
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(handle.key, h);
    return h;
  }

  private async expandResource(tc: TerminologyContext, vs: ValueSet, options: ExpandOptions, depth: number): Promise<CodeSet> {
    if (depth > MAX_DEPTH) throw cannot(`ValueSet ${vs.url ?? vs.id} includes value sets nested more than ${MAX_DEPTH} deep (a cycle?)`, 'invalid');
    const expansion = vs.expansion;
    // An expansion that comes with the ValueSet is used when it is complete.
    const complete = expansion?.contains && !expansion.offset && (expansion.total === undefined || expansion.total <= countContains(expansion.contains));
    if (expansion?.contains && (complete || !vs.compose)) {
      const out: CodeSet = new Map();
      addContains(out, expansion.contains, options);
      return out;
    }
    if (!vs.compose) return new Map();
    const result: CodeSet = new Map();
    for (const inc of vs.compose.include ?? []) {
      for (const [k, c] of await this.include(tc, vs, inc, options, depth)) {
        result.set(k, c);
        if (result.size > options.maxCodes) throw tooCostly(`ValueSet ${vs.url ?? vs.id} has more than ${options.maxCodes} codes`);
      }
    }
    for (const exc of vs.compose.exclude ?? []) {
      // Excluded sets are bounded by what they remove, not by maxCodes.
      for (const k of (await this.include(tc, vs, exc, { maxCodes: Number.MAX_SAFE_INTEGER }, depth)).keys()) result.delete(k);
    }
    return result;
  }

  /** The codes one include (or exclude) selects: its system part, intersected with each of its value sets. */
  private async include(tc: TerminologyContext, vs: ValueSet, inc: ValueSetComposeInclude, options: ExpandOptions, depth: number): Promise<CodeSet> {
    let result: CodeSet | undefined;
    if (inc.system) {
      result = new Map();
      if (inc.concept?.length) {
        for (const c of inc.concept) result.set(keyOf(inc.system, c.code), { system: inc.system, code: c.code, display: c.display, version: inc.version });
      } else {
        const h = await this.hierarchy(tc, inc.system, inc.version);
        if (!h) {
          throw cannot(`ValueSet ${vs.url ?? vs.id} includes CodeSystem ${inc.system}${inc.version ? '|' + inc.version : ''}, which is not available on this server`, 'not-found');
        }
        let codes = new Set(h.concepts.keys());
        for (const f of inc.filter ?? []) codes = intersect(codes, filterCodes(h, f, vs, options));
        if (codes.size > options.maxCodes) throw tooCostly(`ValueSet ${vs.url ?? vs.id} selects more than ${options.maxCodes} codes of ${inc.system}`);
        for (const code of codes) result.set(keyOf(inc.system, code), { system: inc.system, code, display: h.concepts.get(code)?.display, version: h.version });
      }
    }
    for (const ref of inc.valueSet ?? []) {
      const [url, version] = splitCanonical(ref);
      const sub = await this.valueSet(tc, url, version);
      if (!sub) throw cannot(`ValueSet ${vs.url ?? vs.id} includes ValueSet ${ref}, which is not available on this server`, 'not-found');
      const codes = await this.expandResource(tc, sub, options, depth + 1);
      if (!result) result = codes;
      else {
        const both: CodeSet = new Map();
        for (const [k, c] of result) if (codes.has(k)) both.set(k, c);
        result = both;
      }
    }
    return result ?? new Map();
  }
}

function countContains(contains: ValueSetExpansionContains[]): number {
  let n = 0;
  for (const c of contains) n += (c.code ? 1 : 0) + countContains(c.contains ?? []);
  return n;
}

/** expansion.contains (nested), without abstract entries (navigation only, not selectable). */
function addContains(out: CodeSet, contains: ValueSetExpansionContains[], options: ExpandOptions): void {
  for (const c of contains) {
    if (c.code && c.system && !c.abstract) {
      out.set(keyOf(c.system, c.code), { system: c.system, code: c.code, display: c.display, version: c.version });
      if (out.size > options.maxCodes) throw tooCostly(`the expansion has more than ${options.maxCodes} codes`);
    }
    if (c.contains) addContains(out, c.contains, options);
  }
}

function intersect(a: Set<string>, b: Set<string>): Set<string> {
  const out = new Set<string>();
  for (const x of a) if (b.has(x)) out.add(x);
  return out;
}

/** The codes of a CodeSystem a compose filter selects (R4 filter operators). */
function filterCodes(h: Hierarchy, f: ValueSetComposeIncludeFilter, vs: ValueSet, options: ExpandOptions): Set<string> {
  const all = [...h.concepts.keys()];
  const onCode = f.property === 'concept' || f.property === 'code';
  const limit = Math.max(options.maxCodes, h.concepts.size);
  const values = (code: string) => (onCode ? [code] : (h.concepts.get(code)?.properties.get(f.property) ?? []));
  switch (f.op) {
    case 'is-a':
      return h.below(f.value, limit);
    case 'descendent-of': {
      const below = h.below(f.value, limit);
      below.delete(f.value);
      return below;
    }
    case 'is-not-a': {
      const below = h.below(f.value, limit);
      return new Set(all.filter((c) => !below.has(c)));
    }
    case 'generalizes':
      return h.above(f.value, limit);
    case '=':
      return new Set(all.filter((c) => values(c).includes(f.value)));
    case 'in': {
      const wanted = new Set(f.value.split(',').map((v) => v.trim()));
      return new Set(all.filter((c) => values(c).some((v) => wanted.has(v))));
    }
    case 'not-in': {
      const unwanted = new Set(f.value.split(',').map((v) => v.trim()));
      return new Set(all.filter((c) => !values(c).some((v) => unwanted.has(v))));
    }
    case 'regex': {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${f.value})$`);
      } catch {
        throw cannot(`ValueSet ${vs.url ?? vs.id}: invalid regex filter "${f.value}"`, 'invalid');
      }
      return new Set(all.filter((c) => values(c).some((v) => re.test(v))));
    }
    case 'exists': {
      const want = f.value !== 'false';
      return new Set(all.filter((c) => (values(c).length > 0) === want));
    }
    default:
      throw cannot(`ValueSet ${vs.url ?? vs.id}: filter operator "${f.op}" is not supported`);
  }
}

/** "url|version" → [url, version]. */
export function splitCanonical(ref: string): [string, string | undefined] {
  const bar = ref.lastIndexOf('|');
  return bar < 0 ? [ref, undefined] : [ref.slice(0, bar), ref.slice(bar + 1) || undefined];
}
