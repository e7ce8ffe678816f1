// The terminology in use, and the one place every feature asks it from. By default it is the
// server's own engine (expand.ts) over the ValueSets and CodeSystems stored on this server.
// The terminology service to come plugs in here: addTerminologySource() for FR Core / ANS
// ValueSets and CodeSystems loaded from FHIR packages (searched, expanded and used for
// subsumption like stored ones), or setTerminology() to hand everything to another
// implementation (an external terminology server); $expand and $validate-code go through the
// same functions as search does.
import { LocalTerminology } from './expand.ts';
import { storedResources } from './stored.ts';
import type { Expansion, Terminology, TerminologyContext, TerminologySource } from './types.ts';

/** Largest expansion (or set of related codes) a search accepts; beyond it: 400 too-costly. */
export const MAX_EXPANSION = 10_000;

const sources: TerminologySource[] = [storedResources];
let terminology: Terminology = new LocalTerminology(() => sources);

export function getTerminology(): Terminology {
  return terminology;
}

/** Replaces the terminology implementation (for every feature at once). */
export function setTerminology(t: Terminology): void {
  terminology = t;
}

/**
 * Adds a source of ValueSets and CodeSystems to the server's engine. Sources are consulted in
 * order and the first that knows a resource answers: 'first' lets the source win over
 * resources stored on the server, 'last' (the default) lets stored resources override it.
 */
export function addTerminologySource(source: TerminologySource, position: 'first' | 'last' = 'last'): void {
  if (position === 'first') sources.unshift(source);
  else sources.push(source);
}

/** The codes of a ValueSet (canonical URL, `url|version`, or `ValueSet/id`); undefined if unknown. */
export function expandValueSet(tc: TerminologyContext, valueSet: string, maxCodes = MAX_EXPANSION): Promise<Expansion | undefined> {
  return terminology.expand(tc, valueSet, { maxCodes });
}

/**
 * The codes related to system|code in the CodeSystem's hierarchy, the code included: below
 * (the codes it subsumes) or above (the codes that subsume it); undefined if the system is unknown.
 */
export function relatedCodes(tc: TerminologyContext, direction: 'below' | 'above', system: string, code: string, maxCodes = MAX_EXPANSION): Promise<string[] | undefined> {
  return direction === 'below' ? terminology.descendants(tc, system, code, { maxCodes }) : terminology.ancestors(tc, system, code, { maxCodes });
}

export type { CodeSystemHandle, Concept, Expansion, Terminology, TerminologyContext, TerminologySource } from './types.ts';
