// The terminology hook: what the search engine (token :in, :not-in, :above, :below) and later
// the terminology operations ($expand, $validate-code) ask of terminology, and where ValueSet
// and CodeSystem resources come from. index.ts holds the one Terminology in use and its sources.
import type { CodeSystem, CodeSystemConceptDesignation, CodeSystemConceptProperty, ValueSet } from '@medplum/fhirtypes';
import type { Executor } from '../../store/db.ts';

/** Where stored resources are read: the request's executor (a transaction sees its own writes). */
export interface TerminologyContext {
  ex: Executor;
  /**
   * Optional: where the lookups of ValueSets and CodeSystems by URL made through this context
   * are remembered (each source is then asked once per URL). Give one to a context that lives
   * for one piece of work during which no ValueSet or CodeSystem is written (validating one
   * resource, one operation): `{ ex, memo: new Map() }`.
   */
  memo?: Map<string, Promise<unknown>>;
}

export interface Concept {
  system: string;
  code: string;
  display?: string;
  version?: string;
  /** The concept's designations (from the ValueSet's compose, its expansion, or the CodeSystem). */
  designation?: CodeSystemConceptDesignation[];
}

/** A code to check against a ValueSet: a Coding, or a bare `code` (no system). */
export interface CodingToValidate {
  system?: string;
  code: string;
  display?: string;
  version?: string;
}

/** The answer of validateCode. */
export interface CodeValidation {
  /**
   * true: the code is in the ValueSet (and the display, when one is given, is one of the
   * concept's); false: it is not, or the display is wrong (see wrongDisplay); undefined: cannot
   * tell (the ValueSet, a ValueSet it includes, or a CodeSystem it includes wholesale is not
   * available, or a filter cannot be evaluated).
   */
  result: boolean | undefined;
  /** The concept's display (from the ValueSet, else its CodeSystem). */
  display?: string;
  /** Why result is false or undefined; a hint when result is true. */
  message?: string;
  /** The system the code was found in (the one inferred for a code given without system). */
  system?: string;
  /**
   * The code is in the ValueSet but the display given is none of the concept's: result is then
   * false, as $validate-code requires ("true if the concept details supplied are valid"); a
   * binding check may prefer to report it as a warning.
   */
  wrongDisplay?: true;
  /** The ValueSet asked for is not available at all (its URL, reference or version is unknown). */
  valueSetUnknown?: true;
}

/** What $lookup tells about a code. */
export interface LookupResult {
  /** The CodeSystem's url, name (or title, or url) and version. */
  system: string;
  name: string;
  version?: string;
  /** False for CodeSystems whose content is a fragment or an example: a code absent may still exist. */
  complete: boolean;
  /** The concept, undefined when the code is not in the CodeSystem. */
  concept?: {
    code: string;
    display?: string;
    definition?: string;
    designation: CodeSystemConceptDesignation[];
    /** The concept's own properties, as the CodeSystem states them. */
    property: CodeSystemConceptProperty[];
    /** Direct parents and children in the CodeSystem's hierarchy (nesting, parent/child properties). */
    parents: string[];
    children: string[];
  };
}

export type SubsumptionOutcome = 'equivalent' | 'subsumes' | 'subsumed-by' | 'not-subsumed';

export interface Expansion {
  /** The ValueSet's canonical URL (or the reference it was asked by, when it has none). */
  url: string;
  version?: string;
  contains: Concept[];
  /** The ValueSet expanded (for its metadata). */
  resource?: ValueSet;
}

export interface ExpandOptions {
  /** An expansion with more codes fails with a too-costly OperationOutcome. */
  maxCodes: number;
}

/**
 * Terminology as the rest of the server sees it. Failures (an include of a CodeSystem that is
 * not available, an unsupported filter, too many codes) throw a FhirError with an
 * OperationOutcome; undefined means the ValueSet or CodeSystem is unknown.
 */
export interface Terminology {
  /**
   * The codes of a ValueSet, by canonical URL (optionally `url|version`) or by reference
   * `ValueSet/id`, or of a ValueSet resource given as it is.
   */
  expand(tc: TerminologyContext, valueSet: string | ValueSet, options: ExpandOptions): Promise<Expansion | undefined>;
  /**
   * Whether a code is in a ValueSet, without expanding it (a whole CodeSystem of any size, its
   * filters and excludes are evaluated for this code only). Never throws for what is missing or
   * unsupported: that is result undefined.
   */
  validateCode(tc: TerminologyContext, valueSet: string | ValueSet, coding: CodingToValidate): Promise<CodeValidation>;
  /** A code's details in its CodeSystem (url, `url|version` via version, or `CodeSystem/id`); undefined if the CodeSystem is unknown. */
  lookup(tc: TerminologyContext, system: string, code: string, version?: string): Promise<LookupResult | undefined>;
  /**
   * How codeA relates to codeB in the CodeSystem's hierarchy; undefined if the CodeSystem is
   * unknown; a FhirError (400) if either code is not in it.
   */
  subsumes(tc: TerminologyContext, system: string, codeA: string, codeB: string, version?: string): Promise<SubsumptionOutcome | undefined>;
  /** The code and every code below it in the CodeSystem's hierarchy (is-a). */
  descendants(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined>;
  /** The code and every code above it in the CodeSystem's hierarchy. */
  ancestors(tc: TerminologyContext, system: string, code: string, options: ExpandOptions): Promise<string[] | undefined>;
}

/** A CodeSystem a source holds: key identifies its content (for caching what is derived from it). */
export interface CodeSystemHandle {
  key: string;
  load(): Promise<CodeSystem>;
}

/** A ValueSet a source holds: key identifies its content (what is derived from it is cached by key). */
export interface ValueSetHandle {
  key: string;
  load(): Promise<ValueSet>;
}

/**
 * A provider of ValueSet and CodeSystem resources: the resources stored on this server
 * (stored.ts), and later FHIR packages (FR Core, ANS terminologies) loaded by the server.
 */
export interface TerminologySource {
  readonly name: string;
  /** A ValueSet by canonical URL and optional version, or by `ValueSet/id` for sources that hold resources by id. */
  valueSet(tc: TerminologyContext, ref: string, version?: string): Promise<ValueSet | undefined>;
  /**
   * The same ValueSet as a handle, so that what is derived from it (validateCode's compiled
   * form) is cached without reading it again. Optional: without it, nothing is cached.
   */
  valueSetHandle?(tc: TerminologyContext, ref: string, version?: string): Promise<ValueSetHandle | undefined>;
  /** A CodeSystem by canonical URL and optional version (or by `CodeSystem/id` for sources that hold resources by id). */
  codeSystem(tc: TerminologyContext, url: string, version?: string): Promise<CodeSystemHandle | undefined>;
}
