// What a Bundle must satisfy beyond its StructureDefinition (bundle.html, references.html,
// documents.html, messaging.html): each fullUrl agrees with its resource's id, link relations,
// search results, how a reference is resolved inside the Bundle, and what a document or a
// message must hold.
import type { Bundle, BundleEntry, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isResourceType } from '../definitions.ts';
import { issueAt } from './validator.ts';

const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i;
/** A RESTful URL: [base/]Type/id[/_history/version]. */
const RESTFUL = /^((?:.*\/)?)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;
/** Relations that name one page of search or history results: one of each at most. */
const SINGLE_RELATIONS = new Set(['self', 'first', 'previous', 'next', 'last']);
/** The references of a document's Composition that the document must hold (documents.html). */
const DOCUMENT_REFERENCES = /^Composition\.(subject|encounter|author|attester\.party|custodian|(section\.)+(author|focus|entry))$/;
/** A message's focus is carried in the message (messaging.html). */
const MESSAGE_REFERENCES = /^MessageHeader\.focus$/;

function restful(url: string): { base: string; type: string; id: string; version?: string } | undefined {
  const m = RESTFUL.exec(url);
  return m && isResourceType(m[2]) ? { base: m[1], type: m[2], id: m[3], version: m[4] } : undefined;
}

/**
 * The base a relative reference made in this entry resolves against: the entry's fullUrl
 * when it is the RESTful URL of its own resource ([base]/Type/id). Otherwise (a urn:uuid, or a
 * fullUrl that disagrees with the resource) relative references do not resolve in the Bundle.
 */
function baseOf(entry: BundleEntry | undefined): string | undefined {
  const r = entry?.fullUrl ? restful(entry.fullUrl) : undefined;
  return r && !r.version && r.type === entry?.resource?.resourceType && r.id === entry.resource.id ? r.base : undefined;
}

/**
 * The indexes of the entries a reference made in entry `from` resolves to (bundle.html,
 * "Resolving references in Bundles"): an absolute reference matches a fullUrl, a relative one
 * is made absolute with the base of the referring entry's fullUrl, and a version-specific one
 * also matches the entry's meta.versionId.
 */
export function resolveInBundle(bundle: Bundle, from: number | undefined, reference: string): number[] {
  let url: string;
  if (ABSOLUTE.test(reference)) url = reference;
  else {
    const base = restful(reference) ? baseOf(from === undefined ? undefined : bundle.entry?.[from]) : undefined;
    if (base === undefined) return [];
    url = base + reference;
  }
  const versioned = /^(.*)\/_history\/([^/]+)$/.exec(url);
  const [target, version] = versioned ? [versioned[1], versioned[2]] : [url, undefined];
  const found: number[] = [];
  (bundle.entry ?? []).forEach((e, i) => {
    if (e.fullUrl === target && (version === undefined || e.resource?.meta?.versionId === version)) found.push(i);
  });
  return found;
}

/** Every literal reference in a value (contained ones, '#...', excepted), with its path and its element path. */
function referencesIn(value: unknown, path: string, elementPath: string, out: { path: string; elementPath: string; reference: string }[] = []) {
  if (Array.isArray(value)) value.forEach((v, i) => referencesIn(v, `${path}[${i}]`, elementPath, out));
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.reference === 'string' && !o.reference.startsWith('#')) out.push({ path, elementPath, reference: o.reference });
    for (const [k, v] of Object.entries(o)) if (k !== 'reference' && typeof v === 'object') referencesIn(v, `${path}.${k}`, `${elementPath}.${k}`, out);
  }
  return out;
}

export function checkBundle(bundle: Bundle, path: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const entries = bundle.entry ?? [];
  entries.forEach((e, i) => {
    const at = `${path}.entry[${i}]`;
    if (typeof e.fullUrl !== 'string') return;
    if (!ABSOLUTE.test(e.fullUrl)) issues.push(issueAt('error', 'invalid', `The fullUrl must be an absolute URL (not '${e.fullUrl}')`, `${at}.fullUrl`));
    // "The fullUrl SHALL NOT disagree with the id in the resource" (a POST's resource gets its id from the server).
    const r = restful(e.fullUrl);
    if (!r || !e.resource || e.request?.method === 'POST') return;
    if (!e.resource.id) issues.push(issueAt('error', 'invalid', `The fullUrl '${e.fullUrl}' is a RESTful URL, but the resource has no id`, at));
    else if (r.type !== e.resource.resourceType || r.id !== e.resource.id) {
      issues.push(issueAt('error', 'invalid', `The fullUrl '${e.fullUrl}' is a RESTful URL, so it must end with the resource's type and id (${e.resource.resourceType}/${e.resource.id})`, at));
    }
  });
  const relations = new Set<string>();
  (bundle.link ?? []).forEach((l, j) => {
    if (typeof l.relation !== 'string') return;
    if (SINGLE_RELATIONS.has(l.relation) && relations.has(l.relation)) issues.push(issueAt('error', 'invalid', `The link relation '${l.relation}' can only occur once`, `${path}.link[${j}]`));
    relations.add(l.relation);
  });
  if (bundle.type === 'searchset') issues.push(...checkSearchset(bundle, path));
  if (bundle.type === 'document' || bundle.type === 'message') issues.push(...checkHeld(bundle, path));
  return issues;
}

/** Search results (search.html): matches are stored resources (they have ids) of the searched types; outcomes are OperationOutcomes. */
function checkSearchset(bundle: Bundle, path: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const searched = searchedTypes(bundle.link?.find((l) => l.relation === 'self')?.url);
  (bundle.entry ?? []).forEach((e, i) => {
    const r = e.resource;
    if (!r) return;
    const at = `${path}.entry[${i}].resource`;
    const mode = e.search?.mode ?? (r.resourceType === 'OperationOutcome' ? 'outcome' : 'match');
    if (mode === 'outcome') {
      if (r.resourceType !== 'OperationOutcome') issues.push(issueAt('error', 'invalid', `An entry with search mode 'outcome' must be an OperationOutcome, not a ${r.resourceType}`, at));
      return;
    }
    if (mode !== 'match') return;
    if (!r.id) issues.push(issueAt('error', 'required', 'Search results must have ids', at));
    if (searched && !searched.includes(r.resourceType)) {
      issues.push(issueAt('error', 'invalid', `A ${r.resourceType} is not a match for the search, which is for ${searched.join(', ')}`, at));
    }
  });
  return issues;
}

/** The resource types a search URL asks for ([base]/Type?... or [base]?_type=A,B), if it tells. */
function searchedTypes(url: string | undefined): string[] | undefined {
  if (!url) return undefined;
  const [pathPart, query = ''] = url.split('?');
  const last = pathPart.split('/').pop() ?? '';
  if (isResourceType(last)) return [last];
  const types = new URLSearchParams(query).get('_type')?.split(',').filter(isResourceType);
  return types?.length ? types : undefined;
}

/**
 * A document holds what its Composition refers to, and only what can be reached from it
 * (documents.html); a message holds its focus (messaging.html). A stylesheet link names a
 * Binary of the document when relative.
 */
function checkHeld(bundle: Bundle, path: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const entries = bundle.entry ?? [];
  const document = bundle.type === 'document';
  const required = document ? DOCUMENT_REFERENCES : MESSAGE_REFERENCES;
  const links = new Map<number, Set<number>>(entries.map((_, i) => [i, new Set<number>()]));
  entries.forEach((e, i) => {
    const r = e.resource as Resource | undefined;
    if (!r) return;
    for (const ref of referencesIn(r, `${path}.entry[${i}].resource`, r.resourceType)) {
      const found = resolveInBundle(bundle, i, ref.reference);
      for (const j of found) {
        links.get(i)?.add(j);
        links.get(j)?.add(i);
      }
      if (i === 0 && !found.length && required.test(ref.elementPath)) {
        issues.push(issueAt('error', 'not-found', `Can't find '${ref.reference}' in the bundle (${ref.elementPath}), where the ${document ? 'document' : 'message'} must hold it`, ref.path));
      }
    }
  });
  if (!document) return issues;
  const reached = new Set<number>([0]);
  (bundle.link ?? []).forEach((l, j) => {
    if (l.relation !== 'stylesheet' || typeof l.url !== 'string' || ABSOLUTE.test(l.url)) return;
    const found = entries.findIndex((e) => e.fullUrl === l.url || e.fullUrl?.endsWith(`/${l.url}`));
    if (found < 0) issues.push(issueAt('error', 'not-found', `The stylesheet ${l.url} is not in the bundle`, `${path}.link[${j}].url`));
    else reached.add(found);
  });
  // Links are followed both ways: a resource referring to one the Composition reaches is reached.
  const queue = [...reached];
  while (queue.length) for (const j of links.get(queue.shift()!) ?? []) if (!reached.has(j)) (reached.add(j), queue.push(j));
  entries.forEach((e, i) => {
    if (!reached.has(i) && e.resource) issues.push(issueAt('error', 'invalid', `Entry '${e.fullUrl ?? i}' cannot be reached from the Composition by following references (forward or backward)`, `${path}.entry[${i}]`));
  });
  return issues;
}
