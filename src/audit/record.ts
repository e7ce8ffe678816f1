// From an AuditEvent to the row the audit store writes (src/store/audit.ts, migrations/027): a
// server-assigned id, meta (versionId 1, lastUpdated = recorded), the JSON text and its search
// terms (src/audit/terms.ts). Audit records are not validated: the server writes them, from fixed
// shapes (test/audit.test.ts validates them with $validate).
import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { AuditRecord } from '../store/audit.ts';
import { storedJson } from '../fhir/stored-json.ts';
import { auditTerms } from './terms.ts';

export function toRecord(event: AuditEvent): AuditRecord {
  const id = randomUUID();
  const recorded = event.recorded ?? new Date().toISOString();
  // The server assigns the id: one the event carries would make its JSON disagree with its row.
  const { resourceType, meta, id: _ignored, ...rest } = event;
  const stamped = { resourceType, id, meta: { ...(meta ?? {}), versionId: '1', lastUpdated: recorded }, ...rest, recorded } as AuditEvent;
  return { id, recorded, content: storedJson(stamped), ...auditTerms(stamped) };
}
