// The server's own terminology engine over its sources (stored resources, later packages):
// ValueSet expansion (compose: include/exclude of explicit concepts, whole CodeSystems,
// filters on CodeSystem hierarchies and properties, other ValueSets; or the ValueSet's own
// expansion.contains when it comes expanded) and subsumption in CodeSystem hierarchies (nested
// concepts, `parent`/`child` properties).
import type { CodeSystem, CodeSystemConcept, CodeSystemConceptDesignation, ValueSet, ValueSetComposeInclude, ValueSetComposeIncludeFilter, ValueSetExpansionContains } from '@medplum/fhirtypes';
import { FhirError, issue } from '../outcome.ts';
import { CompiledValueSet, MAX_DEPTH, member, sameDisplay, systemsOf, usesExpansion, type ConceptEntry, type MembershipResolver } from './membership.ts';
import type {
  CodeSystemHandle, CodeValidation, CodingToValidate, Concept, ExpandOptions, Expansion, LookupResult, SubsumptionOutcome, Terminology, TerminologyContext, TerminologySource,
} from './types.ts';

/** A CodeSystem's concepts and hierarchy, derived once per content (cached by handle key). */
export class Hierarchy {
  readonly url: string;
  readonly version: string | undefined;
  readonly name: string;
  /** False for a fragment, an example or a supplement: a code absent from it may still exist. */
  readonly complete: boolean;
  /** content = not-present: known, without its concepts. */
  readonly notPresent: boolean;
  readonly concepts = new Map<string, { display?: string; designation?: CodeSystemConceptDesignation[]; properties: Map<string, string[]> }>();
  private readonly parents = new Map<string, Set<string>>();
  private readonly children = new Map<string, Set<string>>();

  constructor(cs: CodeSystem) {
    this.url = cs.url ?? '';
    this.version = cs.version;
    this.name = cs.name ?? cs.title ?? this.url;
    this.complete = cs.content === undefined || cs.content === 'complete';
    this.notPresent = cs.content === 'not-present';
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
        this.concepts.set(c.code, c.designation?.length ? { display: c.display, designation: c.designation, properties } : { display: c.display, properties });
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

  /** Direct parents and children of a code. */
  parentsOf(code: string): string[] {
    return [...(this.parents.get(code) ?? [])];
  }

  childrenOf(code: string): string[] {
    return [...(this.children.get(code) ?? [])];
  }

  /** Whether `ancestor` is above `code` (not the code itself), walking up from the code. */
  isAbove(ancestor: string, code: string): boolean {
    const seen = new Set([code]);
    const todo = [code];
    while (todo.length) {
      for (const next of this.parents.get(todo.pop()!) ?? []) {
        if (next === ancestor) return true;
        if (seen.has(next)) continue;
        seen.add(next);
        todo.push(next);
      }
    }
    return false;
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
/** Hierarchies kept: at most this many, and at most this many concepts in all. */
const CACHE_SIZE = 128;
const CACHE_CONCEPTS = 2_000_000;
/** Compiled ValueSets kept (validateCode). */
const COMPILED_CACHE_SIZE = 512;

/** A Map used as a least-recently-used cache. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  private readonly maxEntries: number;
  private readonly weigh: (v: V) => number;
  private readonly maxWeight: number;
  private weight = 0;

  constructor(maxEntries: number, weigh: (v: V) => number = () => 1, maxWeight = Number.MAX_SAFE_INTEGER) {
    this.maxEntries = maxEntries;
    this.weigh = weigh;
    this.maxWeight = maxWeight;
  }

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key); // most recently used last
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, v: V): void {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.weight -= this.weigh(old);
    }
    this.map.set(key, v);
    this.weight += this.weigh(v);
    while (this.map.size > 1 && (this.map.size > this.maxEntries || this.weight > this.maxWeight)) {
      const [k, first] = this.map.entries().next().value!;
      this.map.delete(k);
      this.weight -= this.weigh(first);
    }
  }
}

export class LocalTerminology implements Terminology {
  private readonly sources: () => readonly TerminologySource[];
  private readonly cache = new Lru<Hierarchy>(CACHE_SIZE, (h) => Math.max(1, h.concepts.size), CACHE_CONCEPTS);
  private readonly compiled = new Lru<CompiledValueSet>(COMPILED_CACHE_SIZE);
  /** ValueSets given as resources, or from sources without handles: compiled per object. */
  private readonly compiledByObject = new WeakMap<ValueSet, CompiledValueSet>();
  private readonly resolver: MembershipResolver;

  /** sources: consulted in order, the first that knows a resource answers. */
  constructor(sources: () => readonly TerminologySource[]) {
    this.sources = sources;
    this.resolver = {
      compiledValueSet: (tc, ref) => this.compiledValueSet(tc, ref),
      codeSystem: (tc, url, version) => this.resolveCodeSystem(tc, url, version),
    };
  }

  async expand(tc: TerminologyContext, valueSet: string | ValueSet, options: ExpandOptions): Promise<Expansion | undefined> {
    let vs: ValueSet | undefined;
    if (typeof valueSet === 'string') {
      const [url, version] = splitCanonical(valueSet);
      vs = await this.valueSet(tc, url, version);
    } else vs = valueSet;
    if (!vs) return undefined;
    const codes = await this.expandResource(tc, vs, options, 0);
    return { url: vs.url ?? (typeof valueSet === 'string' ? valueSet : ''), version: vs.version, contains: [...codes.values()], resource: vs };
  }

  async descendants(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined> {
    const h = await this.hierarchy(tc, system);
    return h ? [...h.below(code, options.maxCodes)] : undefined;
  }

  async ancestors(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined> {
    const h = await this.hierarchy(tc, system);
    return h ? [...h.above(code, options.maxCodes)] : undefined;
  }

  async validateCode(tc: TerminologyContext, valueSet: string | ValueSet, coding: CodingToValidate): Promise<CodeValidation> {
    const vs = await this.compiledValueSet(tc, valueSet);
    const label = typeof valueSet === 'string' ? valueSet : (valueSet.url ?? (valueSet.id ? `ValueSet/${valueSet.id}` : 'the ValueSet given'));
    if (!vs) return { result: undefined, valueSetUnknown: true, message: `ValueSet ${label} is not available on this server` };
    const code = coding.code;
    const notes: string[] = [];
    let system = coding.system || undefined;
    let found: { in: boolean | undefined; entry?: ConceptEntry };
    if (system === undefined) {
      // A bare code: in the ValueSet when exactly one of its systems has it.
      const systems = new Set<string>();
      await systemsOf(this.resolver, tc, vs, 0, systems);
      const hits: { system: string; entry?: ConceptEntry }[] = [];
      let unknown = false;
      for (const s of systems) {
        const f = await member(this.resolver, tc, vs, s, code, 0, notes);
        if (f.in) hits.push({ system: s, entry: f.entry });
        else if (f.in === undefined) unknown = true;
      }
      if (hits.length > 1) {
        return { result: false, message: `The code '${code}' (without system) is in ${vs.label} in ${hits.length} systems (${hits.map((h) => h.system).join(', ')}): it is ambiguous without a system` };
      }
      if (hits.length === 1) {
        system = hits[0].system;
        found = { in: true, entry: hits[0].entry };
      } else found = { in: unknown ? undefined : false };
    } else found = await member(this.resolver, tc, vs, system, code, 0, notes);
    const what = system ? `The code '${code}' of system '${system}'` : `The code '${code}' (without system)`;
    if (found.in === false) return { result: false, message: `${what} is not in the value set ${vs.label}` };
    if (found.in === undefined) return { result: undefined, message: `Cannot tell whether ${what.charAt(0).toLowerCase() + what.slice(1)} is in the value set ${vs.label}: ${[...new Set(notes)].join('; ')}` };
    // In the value set; check the display (the ValueSet's, else the CodeSystem's, and designations).
    const displays: string[] = [];
    const addDisplays = (e: ConceptEntry | undefined) => {
      if (e?.display) displays.push(e.display);
      for (const d of e?.designation ?? []) if (d.value) displays.push(d.value);
    };
    addDisplays(found.entry);
    let display = found.entry?.display;
    const given = coding.display;
    if (display === undefined || (given !== undefined && !displays.some((d) => sameDisplay(d, given)))) {
      // An explicit concept list needs no CodeSystem; use it for the display if it is there.
      let h = await this.resolveCodeSystem(tc, system!, coding.version);
      if (typeof h === 'string' && coding.version) h = await this.resolveCodeSystem(tc, system!);
      if (typeof h !== 'string') {
        const c = h.concepts.get(code);
        addDisplays(c);
        display ??= c?.display;
      }
    }
    if (given !== undefined && displays.length && !displays.some((d) => sameDisplay(d, given))) {
      return {
        result: false, wrongDisplay: true, system, display,
        message: `Wrong display '${given}' for ${system}#${code}: valid displays are ${[...new Set(displays)].map((d) => `'${d}'`).join(', ')}`,
      };
    }
    return { result: true, system, display };
  }

  async lookup(tc: TerminologyContext, system: string, code: string, version?: string): Promise<LookupResult | undefined> {
    const handle = await this.codeSystemHandle(tc, system, version);
    if (!handle) return undefined;
    const h = await this.hierarchyOf(handle);
    if (h.notPresent) throw cannot(`CodeSystem ${system} is known to this server without its concepts (content = not-present): its codes cannot be looked up`);
    const result: LookupResult = { system: h.url || system, name: h.name || system, version: h.version, complete: h.complete };
    if (!h.concepts.has(code)) return result;
    const cs = await handle.load();
    const find = (concepts: CodeSystemConcept[] | undefined): CodeSystemConcept | undefined => {
      for (const c of concepts ?? []) {
        if (c.code === code) return c;
        const sub = find(c.concept);
        if (sub) return sub;
      }
      return undefined;
    };
    const c = find(cs.concept);
    result.concept = {
      code,
      display: c?.display,
      definition: c?.definition,
      designation: c?.designation ?? [],
      property: c?.property ?? [],
      parents: h.parentsOf(code),
      children: h.childrenOf(code),
    };
    return result;
  }

  async subsumes(tc: TerminologyContext, system: string, codeA: string, codeB: string, version?: string): Promise<SubsumptionOutcome | undefined> {
    const h = await this.hierarchy(tc, system, version);
    if (!h) return undefined;
    for (const code of [codeA, codeB]) {
      if (!h.concepts.has(code)) throw new FhirError(400, issue('error', 'invalid', `The code '${code}' is not in CodeSystem ${system}: its subsumption cannot be tested`));
    }
    if (codeA === codeB) return 'equivalent';
    const aAbove = h.isAbove(codeA, codeB);
    const bAbove = h.isAbove(codeB, codeA);
    if (aAbove && bAbove) return 'equivalent'; // a cycle: each subsumes the other
    if (aAbove) return 'subsumes';
    if (bAbove) return 'subsumed-by';
    return 'not-subsumed';
  }

  /** fn's answer, remembered in the context's memo when it has one. */
  private memo<T>(tc: TerminologyContext, key: string, fn: () => Promise<T>): Promise<T> {
    if (!tc.memo) return fn();
    let p = tc.memo.get(key) as Promise<T> | undefined;
    if (!p) tc.memo.set(key, (p = fn()));
    return p;
  }

  private valueSet(tc: TerminologyContext, ref: string, version?: string): Promise<ValueSet | undefined> {
    return this.memo(tc, `vs\u0000${ref}\u0000${version ?? ''}`, async () => {
      for (const source of this.sources()) {
        const vs = await source.valueSet(tc, ref, version);
        if (vs) return vs;
      }
      return undefined;
    });
  }

  /** A ValueSet (reference, `url|version`, or resource) compiled for membership checks, cached per content. */
  private async compiledValueSet(tc: TerminologyContext, ref: string | ValueSet): Promise<CompiledValueSet | undefined> {
    if (typeof ref !== 'string') return this.compiledObject(ref);
    return this.memo(tc, `cvs\u0000${ref}`, async () => {
      const [url, version] = splitCanonical(ref);
      for (const source of this.sources()) {
        if (source.valueSetHandle) {
          const handle = await source.valueSetHandle(tc, url, version);
          if (!handle) continue;
          let c = this.compiled.get(handle.key);
          if (!c) this.compiled.set(handle.key, (c = new CompiledValueSet(await handle.load())));
          return c;
        }
        const vs = await source.valueSet(tc, url, version);
        if (vs) return this.compiledObject(vs);
      }
      return undefined;
    });
  }

  private compiledObject(vs: ValueSet): CompiledValueSet {
    let c = this.compiledByObject.get(vs);
    if (!c) this.compiledByObject.set(vs, (c = new CompiledValueSet(vs)));
    return c;
  }

  private codeSystemHandle(tc: TerminologyContext, url: string, version?: string): Promise<CodeSystemHandle | undefined> {
    return this.memo(tc, `cs\u0000${url}\u0000${version ?? ''}`, async () => {
      for (const source of this.sources()) {
        const handle = await source.codeSystem(tc, url, version);
        if (handle) return handle;
      }
      return undefined;
    });
  }

  /** The hierarchy of a CodeSystem's content (cached by handle key). */
  private async hierarchyOf(handle: CodeSystemHandle): Promise<Hierarchy> {
    let h = this.cache.get(handle.key);
    if (!h) this.cache.set(handle.key, (h = new Hierarchy(await handle.load())));
    return h;
  }

  /** The hierarchy of a CodeSystem, without throwing for what is missing. */
  private async resolveCodeSystem(tc: TerminologyContext, url: string, version?: string): Promise<Hierarchy | 'unknown' | 'not-present'> {
    const handle = await this.codeSystemHandle(tc, url, version);
    if (!handle) return 'unknown';
    const h = await this.hierarchyOf(handle);
    return h.notPresent ? 'not-present' : h;
  }

  /** The hierarchy of a CodeSystem, from the first source that has it (cached per content). */
  private async hierarchy(tc: TerminologyContext, url: string, version?: string): Promise<Hierarchy | undefined> {
    const h = await this.resolveCodeSystem(tc, url, version);
    if (h === 'unknown') return undefined;
    if (h === 'not-present') {
      throw cannot(`CodeSystem ${url} is known to this server without its concepts (content = not-present): it cannot be expanded`);
    }
    return h;
  }

  private async expandResource(tc: TerminologyContext, vs: ValueSet, options: ExpandOptions, depth: number): Promise<CodeSet> {
    if (depth > MAX_DEPTH) throw cannot(`ValueSet ${vs.url ?? vs.id} includes value sets nested more than ${MAX_DEPTH} deep (a cycle?)`, 'invalid');
    // An expansion that comes with the ValueSet is used when it is complete.
    if (usesExpansion(vs)) {
      const out: CodeSet = new Map();
      addContains(out, vs.expansion!.contains!, options);
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
        // Displays missing from the list come from the CodeSystem, when it is available.
        let h: Hierarchy | undefined;
        if (inc.concept.some((c) => !c.display)) {
          const found = await this.resolveCodeSystem(tc, inc.system, inc.version);
          if (typeof found !== 'string') h = found;
        }
        for (const c of inc.concept) {
          const known = h?.concepts.get(c.code);
          const concept: Concept = { system: inc.system, code: c.code, display: c.display ?? known?.display, version: inc.version };
          const designation = c.designation?.length ? c.designation : known?.designation;
          if (designation) concept.designation = designation;
          result.set(keyOf(inc.system, c.code), concept);
        }
      } else {
        const h = await this.hierarchy(tc, inc.system, inc.version);
        if (!h) {
          throw cannot(`ValueSet ${vs.url ?? vs.id} includes CodeSystem ${inc.system}${inc.version ? '|' + inc.version : ''}, which is not available on this server`, 'not-found');
        }
        let codes = new Set(h.concepts.keys());
        for (const f of inc.filter ?? []) codes = intersect(codes, filterCodes(h, f, vs, options));
        if (codes.size > options.maxCodes) throw tooCostly(`ValueSet ${vs.url ?? vs.id} selects more than ${options.maxCodes} codes of ${inc.system}`);
        for (const code of codes) {
          const known = h.concepts.get(code);
          const concept: Concept = { system: inc.system, code, display: known?.display, version: h.version };
          if (known?.designation) concept.designation = known.designation;
          result.set(keyOf(inc.system, code), concept);
        }
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

/** expansion.contains (nested), without abstract entries (navigation only, not selectable). */
function addContains(out: CodeSet, contains: ValueSetExpansionContains[], options: ExpandOptions): void {
  for (const c of contains) {
    if (c.code && c.system && !c.abstract) {
      const concept: Concept = { system: c.system, code: c.code, display: c.display, version: c.version };
      if (c.designation?.length) concept.designation = c.designation as CodeSystemConceptDesignation[];
      out.set(keyOf(c.system, c.code), concept);
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
