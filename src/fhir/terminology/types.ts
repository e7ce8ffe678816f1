// The terminology hook: what the search engine (token :in, :not-in, :above, :below) and later
// the terminology operations ($expand, $validate-code) ask of terminology, and where ValueSet
// and CodeSystem resources come from. index.ts holds the one Terminology in use and its sources.
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import type { Executor } from '../../store/db.ts';

/** Where stored resources are read: the request's executor (a transaction sees its own writes). */
export interface TerminologyContext {
  ex: Executor;
}

export interface Concept {
  system: string;
  code: string;
  display?: string;
  version?: string;
}

export interface Expansion {
  /** The ValueSet's canonical URL (or the reference it was asked by, when it has none). */
  url: string;
  version?: string;
  contains: Concept[];
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
  /** The codes of a ValueSet, by canonical URL (optionally `url|version`) or by reference `ValueSet/id`. */
  expand(tc: TerminologyContext, valueSet: string, options: ExpandOptions): Promise<Expansion | undefined>;
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

/**
 * A provider of ValueSet and CodeSystem resources: the resources stored on this server
 * (stored.ts), and later FHIR packages (FR Core, ANS terminologies) loaded by the server.
 */
export interface TerminologySource {
  readonly name: string;
  /** A ValueSet by canonical URL and optional version, or by `ValueSet/id` for sources that hold resources by id. */
  valueSet(tc: TerminologyContext, ref: string, version?: string): Promise<ValueSet | undefined>;
  codeSystem(tc: TerminologyContext, url: string, version?: string): Promise<CodeSystemHandle | undefined>;
}
