// From an AuditEvent to the row the audit store writes (src/store/audit.ts, migrations/027): a
// server-assigned id, meta (versionId 1, lastUpdated = recorded), the JSON text and its search
// terms (src/audit/terms.ts). Audit records are not validated: the server writes them, from fixed
// shapes (test/audit.test.ts validates them with $validate).
import { randomBytes } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { AuditRecord } from '../store/audit.ts';
import { storedJson } from '../fhir/stored-json.ts';
import { auditTerms } from './terms.ts';

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. Events are
 * written in time order, so their ids land at the right end of the id index, as their times do in
 * the time index: a random UUID lands on a random leaf page, and once a trail of millions of
 * events outgrows memory, every insert would read one back (measured at 1.2 million events, still
 * in memory: about 10% less database CPU per event; scripts/bench-audit-insert.ts).
 * (crypto.randomUUIDv7 exists from Node 24 on; the server also runs on 22.)
 */
export function timeOrderedUuid(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f); // version 7
  b[8] = 0x80 | (b[8] & 0x3f); // variant 10
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function toRecord(event: AuditEvent): AuditRecord {
  const id = timeOrderedUuid();
  const recorded = event.recorded ?? new Date().toISOString();
  // The server assigns the id: one the event carries would make its JSON disagree with its row.
  const { resourceType, meta, id: _ignored, ...rest } = event;
  const stamped = { resourceType, id, meta: { ...(meta ?? {}), versionId: '1', lastUpdated: recorded }, ...rest, recorded } as AuditEvent;
  return { id, recorded, content: storedJson(stamped), ...auditTerms(stamped) };
}
