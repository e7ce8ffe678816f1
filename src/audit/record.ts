// From an AuditEvent to the row the store writes: a server-assigned id, meta (versionId 1,
// lastUpdated), the JSON text, and its search index rows. Audit records are not validated (the
// server writes them, from fixed shapes: test/audit.test.ts validates them with $validate) and
// get no full-text rows: _text/_content on the audit trail are not worth a tsvector per request.
import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import { indexResource } from '../fhir/search/indexer.ts';
import type { AuditRecord } from '../store/audit.ts';

export function toRecord(event: AuditEvent): AuditRecord {
  const id = randomUUID();
  const lastUpdated = event.recorded ?? new Date().toISOString();
  const { resourceType, meta, ...rest } = event;
  const stamped = { resourceType, id, meta: { ...(meta ?? {}), versionId: '1', lastUpdated }, ...rest } as AuditEvent;
  const rows = indexResource(stamped);
  rows.text = { narrative: null, content: null };
  return { id, lastUpdated, content: JSON.stringify(stamped), rows };
}
