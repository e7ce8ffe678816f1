// Whether one code is in a ValueSet, without expanding it: the ValueSet is compiled once per
// content (its includes and excludes as lookup tables, its filters with their regexes built),
// and a code is checked against each include on its own — a whole CodeSystem of any size is one
// Map lookup in its (cached) hierarchy, a filter one walk up the hierarchy or one property read.
// Answers are three-valued: true, false, or undefined ("cannot tell": a ValueSet or CodeSystem
// that is not available, a filter this engine cannot evaluate), combined as in Kleene's logic
// (an include is the AND of its parts, the includes an OR, an exclude that surely matches wins).
import type { CodeSystemConceptDesignation, ValueSet, ValueSetComposeInclude, ValueSetExpansionContains } from '@medplum/fhirtypes';
import type { Hierarchy } from './expand.ts';
import type { TerminologyContext } from './types.ts';

export type Tri = boolean | undefined;

export interface ConceptEntry {
  display?: string;
  designation?: CodeSystemConceptDesignation[];
}

interface CompiledFilter {
  property: string;
  op: string;
  value: string;
  /** 'in' / 'not-in' values. */
  values?: Set<string>;
  regex?: RegExp;
}

interface CompiledInclude {
  system?: string;
  version?: string;
  /** An explicit concept list (the CodeSystem is not needed to tell membership). */
  concepts?: Map<string, ConceptEntry>;
  filters: CompiledFilter[];
  valueSets: string[];
}

/** What is asked of the engine while checking: ValueSets and CodeSystems, cached by content. */
export interface MembershipResolver {
  compiledValueSet(tc: TerminologyContext, ref: string): Promise<CompiledValueSet | undefined>;
  /** The CodeSystem's hierarchy, 'unknown' if no source has it, 'not-present' if it comes without concepts. */
  codeSystem(tc: TerminologyContext, url: string, version?: string): Promise<Hierarchy | 'unknown' | 'not-present'>;
}

export const MAX_DEPTH = 16;

/**
 * Whether a ValueSet's own expansion stands for it: when it is complete (no offset, every code
 * counted), or when there is no compose to compute it from. Shared with expand.ts.
 */
export function usesExpansion(vs: ValueSet): boolean {
  const e = vs.expansion;
  if (!e?.contains) return false;
  const complete = !e.offset && (e.total === undefined || e.total <= countContains(e.contains));
  return complete || !vs.compose;
}

function countContains(contains: ValueSetExpansionContains[]): number {
  let n = 0;
  for (const c of contains) n += (c.code ? 1 : 0) + countContains(c.contains ?? []);
  return n;
}

export class CompiledValueSet {
  readonly label: string;
  /** From an expansion that stands for the ValueSet: code → system → entry (abstract entries left out). */
  readonly expansion?: Map<string, Map<string, ConceptEntry>>;
  readonly includes: CompiledInclude[] = [];
  readonly excludes: CompiledInclude[] = [];
  /** The systems the ValueSet names itself (its includes, or its expansion). */
  readonly systems = new Set<string>();

  constructor(vs: ValueSet) {
    this.label = vs.url ?? (vs.id ? `ValueSet/${vs.id}` : 'the ValueSet given');
    if (usesExpansion(vs)) {
      const expansion = new Map<string, Map<string, ConceptEntry>>();
      const walk = (contains: ValueSetExpansionContains[]) => {
        for (const c of contains) {
          if (c.code && c.system && !c.abstract) {
            let bySystem = expansion.get(c.code);
            if (!bySystem) expansion.set(c.code, (bySystem = new Map()));
            bySystem.set(c.system, { display: c.display, designation: c.designation as CodeSystemConceptDesignation[] | undefined });
            this.systems.add(c.system);
          }
          if (c.contains) walk(c.contains);
        }
      };
      walk(vs.expansion!.contains!);
      this.expansion = expansion;
      return;
    }
    for (const inc of vs.compose?.include ?? []) {
      this.includes.push(compileInclude(inc));
      if (inc.system) this.systems.add(inc.system);
    }
    for (const exc of vs.compose?.exclude ?? []) this.excludes.push(compileInclude(exc));
  }
}

function compileInclude(inc: ValueSetComposeInclude): CompiledInclude {
  const out: CompiledInclude = { system: inc.system, version: inc.version, filters: [], valueSets: inc.valueSet ?? [] };
  if (inc.system && inc.concept?.length) {
    out.concepts = new Map();
    for (const c of inc.concept) out.concepts.set(c.code, { display: c.display, designation: c.designation });
    return out; // as expand.ts does: an explicit list, filters aside
  }
  for (const f of inc.filter ?? []) {
    const cf: CompiledFilter = { property: f.property, op: f.op, value: f.value };
    if (f.op === 'in' || f.op === 'not-in') cf.values = new Set(f.value.split(',').map((v) => v.trim()));
    if (f.op === 'regex') {
      try {
        cf.regex = new RegExp(`^(?:${f.value})$`);
      } catch {
        // left without a regex: the filter cannot be evaluated (undefined)
      }
    }
    out.filters.push(cf);
  }
  return out;
}

interface Found {
  in: Tri;
  entry?: ConceptEntry;
}

/** Whether system|code is in the compiled ValueSet; notes collects why an answer is undefined. */
export async function member(r: MembershipResolver, tc: TerminologyContext, vs: CompiledValueSet, system: string, code: string, depth: number, notes: string[]): Promise<Found> {
  if (depth > MAX_DEPTH) {
    notes.push(`${vs.label} includes value sets nested more than ${MAX_DEPTH} deep (a cycle?)`);
    return { in: undefined };
  }
  if (vs.expansion) {
    const entry = vs.expansion.get(code)?.get(system);
    return entry ? { in: true, entry } : { in: false };
  }
  let included: Tri = false;
  let entry: ConceptEntry | undefined;
  for (const inc of vs.includes) {
    const f = await includeMember(r, tc, vs, inc, system, code, depth, notes);
    if (f.in === true) {
      included = true;
      entry = f.entry;
      break;
    }
    if (f.in === undefined) included = undefined;
  }
  if (included === false) return { in: false };
  let excluded: Tri = false;
  for (const exc of vs.excludes) {
    const f = await includeMember(r, tc, vs, exc, system, code, depth, notes);
    if (f.in === true) return { in: false };
    if (f.in === undefined) excluded = undefined;
  }
  return included === true && excluded === false ? { in: true, entry } : { in: undefined };
}

/** One include (or exclude): its system part AND each of its value sets. */
async function includeMember(
  r: MembershipResolver, tc: TerminologyContext, vs: CompiledValueSet, inc: CompiledInclude, system: string, code: string, depth: number, notes: string[]
): Promise<Found> {
  if (inc.system === undefined && !inc.valueSets.length) return { in: false };
  let result: Tri = true;
  let entry: ConceptEntry | undefined;
  if (inc.system !== undefined) {
    if (inc.system !== system) return { in: false };
    if (inc.concepts) {
      entry = inc.concepts.get(code);
      if (!entry) return { in: false };
    } else {
      const h = await r.codeSystem(tc, inc.system, inc.version);
      const named = `CodeSystem ${inc.system}${inc.version ? '|' + inc.version : ''}`;
      if (h === 'unknown') {
        notes.push(`${vs.label} includes ${named}, which is not available on this server`);
        result = undefined;
      } else if (h === 'not-present') {
        notes.push(`${vs.label} includes ${named}, which this server knows without its concepts`);
        result = undefined;
      } else if (!h.concepts.has(code)) {
        if (h.complete) return { in: false };
        notes.push(`'${code}' is not in ${named}, whose content is partial (a fragment or an example)`);
        result = undefined;
      } else {
        entry = h.concepts.get(code);
        for (const f of inc.filters) {
          const t = filterMatches(h, f, code);
          if (t === false) return { in: false };
          if (t === undefined) {
            notes.push(`${vs.label}: the filter ${f.property} ${f.op} "${f.value}" cannot be evaluated by this server`);
            result = undefined;
          }
        }
      }
    }
  }
  for (const ref of inc.valueSets) {
    const sub = await r.compiledValueSet(tc, ref);
    if (!sub) {
      notes.push(`${vs.label} includes ValueSet ${ref}, which is not available on this server`);
      result = undefined;
      continue;
    }
    const f = await member(r, tc, sub, system, code, depth + 1, notes);
    if (f.in === false) return { in: false };
    if (f.in === undefined) result = undefined;
    else entry ??= f.entry;
  }
  return result ? { in: true, entry } : { in: result };
}

/** One compose filter, for one code that is in the CodeSystem (R4 filter operators). */
function filterMatches(h: Hierarchy, f: CompiledFilter, code: string): Tri {
  const onCode = f.property === 'concept' || f.property === 'code';
  const values = onCode ? [code] : (h.concepts.get(code)?.properties.get(f.property) ?? []);
  switch (f.op) {
    case 'is-a':
      return code === f.value || h.isAbove(f.value, code);
    case 'descendent-of':
      return code !== f.value && h.isAbove(f.value, code);
    case 'is-not-a':
      return !(code === f.value || h.isAbove(f.value, code));
    case 'generalizes':
      return code === f.value || h.isAbove(code, f.value);
    case '=':
      return values.includes(f.value);
    case 'in':
      return values.some((v) => f.values!.has(v));
    case 'not-in':
      return !values.some((v) => f.values!.has(v));
    case 'regex':
      return f.regex ? values.some((v) => f.regex!.test(v)) : undefined;
    case 'exists':
      return (values.length > 0) === (f.value !== 'false');
    default:
      return undefined;
  }
}

/** Every system a ValueSet may hold codes of (its own, and those of the value sets it includes). */
export async function systemsOf(r: MembershipResolver, tc: TerminologyContext, vs: CompiledValueSet, depth: number, out: Set<string>): Promise<void> {
  for (const s of vs.systems) out.add(s);
  if (depth > MAX_DEPTH) return;
  for (const inc of vs.includes) {
    for (const ref of inc.valueSets) {
      const sub = await r.compiledValueSet(tc, ref);
      if (sub) await systemsOf(r, tc, sub, depth + 1, out);
    }
  }
}

/** Displays compare case- and space-insensitively (case sensitivity depends on the CodeSystem). */
export function sameDisplay(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().replace(/\s+/g, ' ').toLowerCase();
  return norm(a) === norm(b);
}
