// Reading the audit trail by id (read, vread, instance history) from its own store
// (src/store/audit.ts): an event has one version, never updated or deleted. The caller's access
// filter applies as it does to resources (src/fhir/context.ts readVisible): a hidden event is
// answered as a missing one.
import type { Bundle } from '@medplum/fhirtypes';
import type { FhirContext } from '../fhir/context.ts';
import { AUDIT_RESOURCE_TYPE, readAuditEvent } from '../store/audit.ts';
import type { SqlParams } from '../fhir/search/sql.ts';
import type { StoredResource } from '../store/resources.ts';
import { errors } from '../fhir/outcome.ts';
import { Splicer } from '../fhir/splice.ts';
import type { FhirResponse } from '../fhir/response.ts';

export async function readVisibleAuditEvent(ctx: FhirContext, id: string): Promise<StoredResource | undefined> {
  const access = ctx.access;
  // One query whatever the filter: the row, the stamp that confirms cached rights, and the SQL
  // condition's verdict for when the filter cannot decide in memory (a professional's own events).
  // The trail's condition is on the row's own columns, so computing it when unused costs little.
  const { event, compartments, visible, stamp } = await readAuditEvent(ctx.ex, id, { condition: auditCondition(ctx), withStamp: !!access?.confirm });
  if (access?.confirm) access.confirm(stamp ?? '0');
  if (!event || !access) return event;
  return (access.admits?.(AUDIT_RESOURCE_TYPE, compartments, 0) ?? visible) ? event : undefined;
}

/** The caller's access filter as a condition on an event's row (alias a), when there is one. */
export function auditCondition(ctx: FhirContext): ((alias: string, params: SqlParams) => string) | undefined {
  const access = ctx.access;
  return access && ((alias, params) => access.condition(alias, params, AUDIT_RESOURCE_TYPE));
}

/** The history of one event: its only version. */
export async function auditInstanceHistory(ctx: FhirContext, id: string): Promise<FhirResponse> {
  const event = await readVisibleAuditEvent(ctx, id);
  if (!event) throw errors.notFound(`${AUDIT_RESOURCE_TYPE}/${id} not found`);
  const splicer = new Splicer();
  const url = `${ctx.baseUrl}/${AUDIT_RESOURCE_TYPE}/${id}/_history`;
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    total: 1,
    link: [{ relation: 'self', url }],
    entry: [
      {
        fullUrl: `${ctx.baseUrl}/${AUDIT_RESOURCE_TYPE}/${id}`,
        resource: splicer.mark(event.content!),
        request: { method: 'POST', url: AUDIT_RESOURCE_TYPE },
        response: { status: '201', etag: 'W/"1"', lastModified: event.lastUpdated.toISOString() },
      },
    ],
  };
  return { status: 200, raw: splicer.text(bundle), headers: {} };
}
