// The terminology in use, and the one place every feature asks it from. By default it is the
// server's own engine (expand.ts, membership.ts) over the ValueSets and CodeSystems stored on
// this server, then those of the R4 base specification (r4-base.ts; stored ones override them).
// addTerminologySource() adds FR Core / ANS ValueSets and CodeSystems loaded from FHIR packages
// (searched, expanded, validated against and used for subsumption like stored ones);
// setTerminology() hands everything to another implementation (an external terminology
// server). Search (:in, :below…), the terminology operations ($expand, $validate-code, $lookup,
// $subsumes) and the validator's binding checks all go through the functions below.
import type { ValueSet } from '@medplum/fhirtypes';
import { LocalTerminology } from './expand.ts';
import { r4BaseTerminology } from './r4-base.ts';
import { storedResources } from './stored.ts';
export { storedTerminologyStamp } from './stored.ts';
import type { CodeValidation, CodingToValidate, Expansion, LookupResult, SubsumptionOutcome, Terminology, TerminologyContext, TerminologySource } from './types.ts';

/** Largest expansion (or set of related codes) a search accepts; beyond it: 400 too-costly. */
export const MAX_EXPANSION = 10_000;

const sources: TerminologySource[] = [storedResources, r4BaseTerminology];
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

/** The codes of a ValueSet (canonical URL, `url|version`, `ValueSet/id`, or a resource); undefined if unknown. */
export function expandValueSet(tc: TerminologyContext, valueSet: string | ValueSet, maxCodes = MAX_EXPANSION): Promise<Expansion | undefined> {
  return terminology.expand(tc, valueSet, { maxCodes });
}

/**
 * Whether a code is in a ValueSet (canonical URL, `url|version`, `ValueSet/id`, or a resource),
 * without expanding it; what the validator calls for bindings. result: true, false, or
 * undefined when it cannot tell (the ValueSet or a CodeSystem it includes wholesale is not
 * available, a filter cannot be evaluated): never throws for those. A code without system
 * matches when exactly one system of the ValueSet has it (the system is then returned). A
 * display that is none of the concept's makes result false with wrongDisplay set.
 */
export function validateCodeInValueSet(tc: TerminologyContext, valueSet: string | ValueSet, coding: CodingToValidate): Promise<CodeValidation> {
  return terminology.validateCode(tc, valueSet, coding);
}

/** A code's details in its CodeSystem (url, or `CodeSystem/id`); undefined if the CodeSystem is unknown. */
export function lookupCode(tc: TerminologyContext, system: string, code: string, version?: string): Promise<LookupResult | undefined> {
  return terminology.lookup(tc, system, code, version);
}

/** How codeA relates to codeB in the CodeSystem; undefined if it is unknown (a 400 FhirError for an unknown code). */
export function subsumption(tc: TerminologyContext, system: string, codeA: string, codeB: string, version?: string): Promise<SubsumptionOutcome | undefined> {
  return terminology.subsumes(tc, system, codeA, codeB, version);
}

/**
 * The codes related to system|code in the CodeSystem's hierarchy, the code included: below
 * (the codes it subsumes) or above (the codes that subsume it); undefined if the system is unknown.
 */
export function relatedCodes(tc: TerminologyContext, direction: 'below' | 'above', system: string, code: string, maxCodes = MAX_EXPANSION): Promise<string[] | undefined> {
  return direction === 'below' ? terminology.descendants(tc, system, code, { maxCodes }) : terminology.ancestors(tc, system, code, { maxCodes });
}

export type {
  CodeSystemHandle, CodeValidation, CodingToValidate, Concept, Expansion, LookupResult, SubsumptionOutcome, Terminology, TerminologyContext, TerminologySource, ValueSetHandle,
} from './types.ts';
