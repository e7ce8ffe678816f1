// The search terms of an AuditEvent in the audit store (migrations/027): 'code=value' texts, as
// the migration derives them from the index rows events had before. `refs` are GIN-indexed: the
// terms that pick few events out of many (references to patients, agents and resources, their
// identifiers, alternative user ids). `codes` are kept unindexed in the row: action, outcome,
// type, subtype, roles, labels and names hold a handful of values each, so an index on them would
// cost every audited request its entries and find nearly every event.
//
// A token is stored twice, 'code=value' (any system) and 'code=system|value' ('code=|value'
// without a system); a reference once, as 'code=Type/id' (an absolute one as written); a string
// twice, 'code=<as written>' for :exact and 'code~<folded>' for the default and :contains.
import type { AuditEvent, CodeableConcept, Coding, Reference } from '@medplum/fhirtypes';
import { parseReference } from '../fhir/search/indexer.ts';
import { normalizeString } from '../fhir/search/normalize.ts';

export interface AuditTerms {
  /** The patients of the event ('Patient/123'): the access filter's compartments. */
  compartments: string[];
  refs: string[];
  codes: string[];
}

/** The search parameters whose terms are in `refs` (indexed); every other one is in `codes`. */
export const INDEXED_CODES: ReadonlySet<string> = new Set(['patient', 'agent', 'entity', 'agent:identifier', 'entity:identifier', 'altid']);

const MAX_STRING = 2000; // as the generic indexer

export const tokenTerms = (code: string, system: string | undefined, value: string): string[] => [`${code}=${value}`, `${code}=${system ?? ''}|${value}`];
export const referenceTerm = (code: string, reference: string): string => {
  const p = parseReference(reference);
  return `${code}=${p.type && p.id ? `${p.type}/${p.id}` : reference}`;
};
export const stringTerms = (code: string, value: string): string[] => {
  const cut = value.slice(0, MAX_STRING);
  return [`${code}=${cut}`, `${code}~${normalizeString(cut)}`];
};

export function auditTerms(e: AuditEvent): AuditTerms {
  const refs = new Set<string>();
  const codes = new Set<string>();
  const compartments = new Set<string>();
  const put = (code: string, terms: string[]) => {
    const into = INDEXED_CODES.has(code) ? refs : codes;
    // Control characters never reach a term: the store joins an event's terms with one of them.
    for (const t of terms) into.add(t.replace(/[\u0000-\u001f]/g, ' '));
  };
  const token = (code: string, system: string | undefined, value: string | undefined) => {
    if (typeof value === 'string' && value) put(code, tokenTerms(code, system, value));
  };
  const coding = (code: string, c: Coding | undefined) => c && token(code, c.system, c.code);
  const concept = (code: string, c: CodeableConcept | undefined) => {
    for (const x of c?.coding ?? []) coding(code, x);
  };
  const string = (code: string, value: string | undefined) => {
    if (typeof value === 'string' && value) put(code, stringTerms(code, value));
  };
  const reference = (code: string, r: Reference | undefined) => {
    if (!r) return;
    if (typeof r.reference === 'string' && r.reference && !r.reference.startsWith('#')) {
      put(code, [referenceTerm(code, r.reference)]);
      const p = parseReference(r.reference);
      // `patient`: the agents and entities whose reference is to a Patient.
      if (p.type === 'Patient' && p.id) {
        put('patient', [`patient=Patient/${p.id}`]);
        compartments.add(`Patient/${p.id}`);
      }
    }
    if (r.identifier?.value) token(`${code}:identifier`, r.identifier.system, r.identifier.value);
  };

  for (const c of e.meta?.security ?? []) coding('_security', c);
  for (const c of e.meta?.tag ?? []) coding('_tag', c);
  token('action', undefined, e.action);
  token('outcome', undefined, e.outcome);
  coding('type', e.type);
  for (const c of e.subtype ?? []) coding('subtype', c);
  for (const a of e.agent ?? []) {
    reference('agent', a.who);
    string('agent-name', a.name);
    string('address', a.network?.address);
    for (const r of a.role ?? []) concept('agent-role', r);
    token('altid', undefined, a.altId);
  }
  for (const x of e.entity ?? []) {
    reference('entity', x.what);
    string('entity-name', x.name);
    coding('entity-role', x.role);
    coding('entity-type', x.type);
  }
  reference('source', e.source?.observer);
  return { compartments: [...compartments].sort(), refs: [...refs].sort(), codes: [...codes].sort() };
}
