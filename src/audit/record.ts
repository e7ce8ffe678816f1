// From an AuditEvent to the row the store writes: a server-assigned id, meta (versionId 1,
// lastUpdated), the JSON text, and its search index rows. Audit records are not validated (the
// server writes them, from fixed shapes: test/audit.test.ts validates them with $validate) and
// get no full-text rows: _text/_content on the audit trail are not worth a tsvector per request.
//
// The index rows are built directly from the event (auditIndexRows), not by evaluating the
// AuditEvent SearchParameters' FHIRPath: the server builds the event, so its shape is known, and
// FHIRPath was ~90% of the JavaScript an event cost. They are the rows indexResource() gives
// (same codes, values, normalisation, compartments; checked against it for every shape
// src/audit/event.ts builds). When the AuditEvent search parameters are not exactly R4's (a custom
// SearchParameter on AuditEvent, an overlaid expression), the generic indexer is used instead.
import { randomUUID } from 'node:crypto';
import type { AuditEvent, CodeableConcept, Coding, Reference } from '@medplum/fhirtypes';
import { getPatientCompartmentParams, getSearchParams, searchParametersVersion } from '../fhir/definitions.ts';
import { dropDuplicateRows, emptyRows, indexResource, parseReference, type IndexRows } from '../fhir/search/indexer.ts';
import { normalizeString } from '../fhir/search/normalize.ts';
import { toRange } from '../fhir/search/dates.ts';
import type { AuditRecord } from '../store/audit.ts';
import { storedJson } from '../fhir/stored-json.ts';

export function toRecord(event: AuditEvent): AuditRecord {
  const id = randomUUID();
  const lastUpdated = event.recorded ?? new Date().toISOString();
  // The server assigns the id: one the event carries would make its JSON disagree with its row.
  const { resourceType, meta, id: _ignored, ...rest } = event;
  const stamped = { resourceType, id, meta: { ...(meta ?? {}), versionId: '1', lastUpdated }, ...rest } as AuditEvent;
  let rows: IndexRows;
  if (standardParams()) rows = auditIndexRows(stamped);
  else {
    rows = indexResource(stamped);
    rows.text = { narrative: null, content: null };
  }
  return { id, lastUpdated, content: storedJson(stamped), rows };
}

// ---------------------------------------------------------------- direct index rows

/** R4's AuditEvent search parameters (with the common ones), by code: what auditIndexRows() writes rows for. */
const R4_PARAMS: Record<string, string> = {
  _id: 'AuditEvent.id',
  _lastUpdated: 'AuditEvent.meta.lastUpdated',
  _profile: 'AuditEvent.meta.profile',
  _security: 'AuditEvent.meta.security',
  _source: 'AuditEvent.meta.source',
  _tag: 'AuditEvent.meta.tag',
  action: 'AuditEvent.action',
  address: 'AuditEvent.agent.network.address',
  agent: 'AuditEvent.agent.who',
  'agent-name': 'AuditEvent.agent.name',
  'agent-role': 'AuditEvent.agent.role',
  altid: 'AuditEvent.agent.altId',
  date: 'AuditEvent.recorded',
  entity: 'AuditEvent.entity.what',
  'entity-name': 'AuditEvent.entity.name',
  'entity-role': 'AuditEvent.entity.role',
  'entity-type': 'AuditEvent.entity.type',
  outcome: 'AuditEvent.outcome',
  patient: 'AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)',
  policy: 'AuditEvent.agent.policy',
  site: 'AuditEvent.source.site',
  source: 'AuditEvent.source.observer',
  subtype: 'AuditEvent.subtype',
  type: 'AuditEvent.type',
};

let checkedVersion = -1;
let standard = false;

/** Whether the AuditEvent search parameters are exactly R4's (rechecked when SearchParameters change). */
function standardParams(): boolean {
  const version = searchParametersVersion();
  if (version !== checkedVersion) {
    const params = getSearchParams('AuditEvent');
    standard =
      params.size === Object.keys(R4_PARAMS).length &&
      [...params.values()].every((p) => R4_PARAMS[p.code] === p.expression) &&
      getPatientCompartmentParams('AuditEvent').every((c) => c === 'patient');
    checkedVersion = version;
  }
  return standard;
}

const MAX_STRING = 2000; // as the generic indexer: btree entries have a size limit

/** The search index rows of an AuditEvent as the server builds it (src/audit/event.ts), without FHIRPath. */
export function auditIndexRows(e: AuditEvent): IndexRows {
  const rows = emptyRows();
  const str = (code: string, value: string | undefined) => {
    if (typeof value !== 'string' || !value) return;
    const cut = value.slice(0, MAX_STRING);
    rows.string.code.push(code);
    rows.string.value.push(cut);
    rows.string.norm.push(normalizeString(cut));
  };
  const tok = (code: string, system: string | undefined, value: string | undefined, display?: string) => {
    if (system === undefined && value === undefined && display === undefined) return;
    rows.token.code.push(code);
    rows.token.system.push(system ?? null);
    rows.token.value.push(value ?? null);
    rows.token.display.push(display ? normalizeString(display).slice(0, MAX_STRING) : null);
  };
  const coding = (code: string, c: Coding | undefined) => {
    if (c) tok(code, c.system, c.code, c.display);
  };
  const concept = (code: string, c: CodeableConcept | undefined) => {
    if (!c) return;
    for (const x of c.coding ?? []) tok(code, x.system, x.code, x.display);
    if (c.text) tok(code, undefined, undefined, c.text);
  };
  // `patient`: the agents and entities whose reference resolves to a Patient, each distinct one once (FHIRPath's union).
  const patientRefs = new Map<string, Reference>();
  const reference = (code: string, r: Reference | undefined) => {
    if (!r) return;
    if (typeof r.reference === 'string' && !r.reference.startsWith('#')) {
      const p = parseReference(r.reference);
      rows.reference.code.push(code);
      rows.reference.targetType.push(p.type ?? null);
      rows.reference.targetId.push(p.id ?? null);
      rows.reference.url.push(p.url ?? null);
      if (code !== 'patient' && p.type === 'Patient' && p.id) patientRefs.set(JSON.stringify(r), r);
    }
    if (r.identifier && (r.identifier.system || r.identifier.value)) tok(`${code}:identifier`, r.identifier.system, r.identifier.value);
  };

  for (const c of e.meta?.security ?? []) coding('_security', c);
  for (const c of e.meta?.tag ?? []) coding('_tag', c);
  if (e.action) tok('action', undefined, e.action);
  for (const a of e.agent ?? []) str('address', a.network?.address);
  for (const a of e.agent ?? []) reference('agent', a.who);
  for (const a of e.agent ?? []) str('agent-name', a.name);
  for (const a of e.agent ?? []) for (const r of a.role ?? []) concept('agent-role', r);
  for (const a of e.agent ?? []) if (a.altId) tok('altid', undefined, a.altId);
  if (e.recorded) {
    const r = toRange(e.recorded);
    if (r) {
      rows.date.code.push('date');
      rows.date.low.push(r.low);
      rows.date.high.push(r.high);
    }
  }
  for (const x of e.entity ?? []) reference('entity', x.what);
  for (const x of e.entity ?? []) str('entity-name', x.name);
  for (const x of e.entity ?? []) coding('entity-role', x.role);
  for (const x of e.entity ?? []) coding('entity-type', x.type);
  if (e.outcome) tok('outcome', undefined, e.outcome);
  for (const r of patientRefs.values()) reference('patient', r);
  reference('source', e.source?.observer);
  for (const c of e.subtype ?? []) coding('subtype', c);
  coding('type', e.type);
  const compartments = new Set<string>();
  for (let i = 0; i < rows.reference.code.length; i++) {
    if (rows.reference.code[i] === 'patient') compartments.add(`Patient/${rows.reference.targetId[i]}`);
  }
  rows.compartments = [...compartments];
  dropDuplicateRows(rows);
  return rows;
}
