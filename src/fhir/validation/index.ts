// Validation of one resource against its base definition and profiles, with what the walk
// cannot do alone: terminology bindings (against ValueSets, through the terminology service)
// and the profiles of referenced resources (contained, in the same Bundle, or stored here).
import type { OperationOutcomeIssue, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { catalog } from '../conformance/catalog.ts';
import { refreshStoredConformance } from '../conformance/stored.ts';
import { storedTerminologyStamp, validateCodeInValueSet, type TerminologyContext } from '../terminology/index.ts';
import { issueAt, Walker, type PendingBinding, type WalkOptions } from './validator.ts';

const CORE = 'http://hl7.org/fhir/StructureDefinition/';

export interface ValidateOptions extends WalkOptions {
  /** Profiles the resource must conform to besides its base type and the profiles it declares. */
  profiles?: string[];
  /** Declared profiles (meta.profile) the server does not know: warning (default) or error. */
  unknownDeclaredProfile?: 'warning' | 'error';
  tc: TerminologyContext;
  /** Reads a referenced resource ("Type/id") stored on this server, for target profile checks. */
  fetchReference?: (reference: string) => Promise<Resource | undefined>;
}

export const DEFAULT_WALK: WalkOptions = { unknownExtensions: 'warning' };

/** Every issue found, errors first; never throws for invalid content. */
export async function validateResource(resource: Resource, options: ValidateOptions): Promise<OperationOutcomeIssue[]> {
  // Profiles another server process stored (or a transaction that ended since) count too. One
  // read of the stamp per validation (a context with a memo remembers it for the bindings).
  const stamp = await storedTerminologyStamp(options.tc);
  if (stamp !== undefined) await refreshStoredConformance(options.tc.ex, false, stamp);
  const issues: OperationOutcomeIssue[] = [];
  const walker = new Walker(options);
  const base = catalog.structure(CORE + resource.resourceType)?.sd;
  if (!base) return [issueAt('error', 'not-supported', `Unknown resource type '${resource.resourceType}'`, 'resourceType')];
  const profiles: { url: string; asked: boolean }[] = [
    ...(resource.meta?.profile ?? []).map((url) => ({ url, asked: false })),
    ...(options.profiles ?? []).map((url) => ({ url, asked: true })),
  ];
  const walks: StructureDefinition[] = [];
  for (const { url, asked } of profiles) {
    const found = catalog.structure(url, options.packageContext);
    if (!found) {
      const severity = asked ? 'error' : options.unknownDeclaredProfile ?? 'warning';
      issues.push(issueAt(severity, 'not-found', `Profile ${url} is not known to this server, so the resource ${asked ? 'cannot be' : 'was not'} checked against it`, asked ? undefined : `${resource.resourceType}.meta.profile`));
      continue;
    }
    if (walks.includes(found.sd) || found.sd === base) continue;
    walks.push(found.sd);
    for (const problem of found.issues) issues.push(issueAt('warning', 'processing', `The snapshot of ${url} could not be generated exactly: ${problem}`));
  }
  // A published constraint on the type carries every element and invariant of the base in its
  // snapshot (narrowed, never widened): walking it checks everything the base walk would, so the
  // base walk is left out (half the cost of enforcing a profile). Generated snapshots do not count.
  const covered = walks.some((sd) => sd.derivation === 'constraint' && sd.type === resource.resourceType && catalog.publishedSnapshot(sd));
  if (!covered) walker.walkResource(resource, base, resource.resourceType);
  for (const sd of walks) walker.walkResource(resource, sd, resource.resourceType);
  issues.push(...walker.issues);
  issues.push(...(await checkBindings(walker.bindings, options.tc)));
  for (const ref of walker.references) {
    const target = ref.target ?? (options.fetchReference && !ref.reference.includes('?') ? await options.fetchReference(ref.reference) : undefined);
    if (!target) continue;
    // An unknown profile cannot be held against the target.
    const asking = { ...options, packageContext: ref.context ?? options.packageContext };
    const ok = ref.profiles.some((p) => !catalog.structure(p, asking.packageContext) || new Walker(asking).conforms(target, p));
    if (!ok) issues.push(issueAt('error', 'structure', `The resource ${ref.reference} does not conform to ${ref.profiles.length > 1 ? 'any of ' : ''}${ref.profiles.join(', ')}, as this reference requires`, ref.path));
  }
  return dedupe(issues);
}

function dedupe(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const seen = new Set<string>();
  const rank = { fatal: 0, error: 1, warning: 2, information: 3 } as const;
  return issues
    .filter((i) => {
      const key = `${i.severity}|${i.expression?.[0] ?? ''}|${i.details?.text ?? ''}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => rank[a.severity] - rank[b.severity]);
}

interface Coded {
  system?: string;
  code?: string;
  display?: string;
  version?: string;
}

function codingsOf(b: PendingBinding): { codings: Coded[]; text?: string } {
  const v = b.value as Record<string, unknown>;
  switch (b.type) {
    case 'code':
    case 'string':
    case 'uri':
      return { codings: [{ code: String(b.value) }] };
    case 'Coding':
      return { codings: [v as Coded] };
    case 'CodeableConcept':
      return { codings: (Array.isArray(v.coding) ? v.coding : []) as Coded[], text: typeof v.text === 'string' ? v.text : undefined };
    case 'Quantity':
      return { codings: v.code !== undefined ? [{ system: v.system as string | undefined, code: String(v.code) }] : [] };
    default:
      return { codings: [] };
  }
}

type BindingResult = Promise<{ result: boolean | undefined; message?: string }>;

/**
 * Binding checks of earlier validations, kept while neither the stored terminology (the
 * conformance stamp) nor the catalog changes: the same codes come back in resource after resource.
 */
let bindingResults = { generation: '', results: new Map<string, BindingResult>() };
const MAX_BINDING_RESULTS = 100_000;

async function bindingResultsFor(tc: TerminologyContext): Promise<Map<string, BindingResult>> {
  const stamp = await storedTerminologyStamp(tc);
  if (stamp === undefined) return new Map(); // a transaction that wrote terminology: its own view
  const generation = `${stamp}|${catalog.version}`;
  if (generation !== bindingResults.generation || bindingResults.results.size > MAX_BINDING_RESULTS) bindingResults = { generation, results: new Map() };
  return bindingResults.results;
}

async function checkBindings(bindings: PendingBinding[], tc: TerminologyContext): Promise<OperationOutcomeIssue[]> {
  const issues: OperationOutcomeIssue[] = [];
  const memo = await bindingResultsFor(tc);
  const check = (b: PendingBinding, c: Coded) => {
    const key = `${b.valueSet}\u0000${b.context ?? ''}\u0000${c.system ?? ''}\u0000${c.code}\u0000${c.version ?? ''}`;
    let p = memo.get(key);
    if (!p) {
      // The ValueSet as the binding's own package knows it (FR Core 2.1.0 and 2.2.0 differ).
      const vs = catalog.resolve<ValueSet>('ValueSet', b.valueSet, b.context) ?? b.valueSet;
      p = validateCodeInValueSet(tc, vs, { system: c.system, code: c.code!, version: c.version }).catch((err: Error) => ({ result: undefined, message: err.message }));
      memo.set(key, p);
    }
    return p;
  };
  for (const b of bindings) {
    const { codings } = codingsOf(b);
    const coded = codings.filter((c) => typeof c?.code === 'string');
    if (!coded.length) {
      if (b.strength === 'required' && b.type === 'CodeableConcept') {
        issues.push(issueAt('error', 'code-invalid', `${b.elementPath}: no code provided, and a code is required from the value set ${b.valueSet}`, b.path));
      }
      continue;
    }
    const results = await Promise.all(coded.map((c) => check(b, c)));
    if (results.some((r) => r.result === true)) continue;
    const shown = coded.map((c) => (c.system ? `${c.system}#${c.code}` : c.code)).join(', ');
    if (results.some((r) => r.result === undefined)) {
      // Cannot tell (the ValueSet or a code system it draws on is not available here).
      const why = results.find((r) => r.result === undefined)?.message;
      if (b.strength === 'required') issues.push(issueAt('warning', 'not-found', `${b.elementPath}: ${shown} could not be checked against the required value set ${b.valueSet}${why ? ` (${why})` : ''}`, b.path));
      continue;
    }
    const severity = b.strength === 'required' ? 'error' : 'warning';
    issues.push(issueAt(severity, 'code-invalid', `${b.elementPath}: ${shown} is not in the ${b.strength} value set ${b.valueSet}`, b.path));
  }
  return issues;
}
