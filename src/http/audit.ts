// Traceability: every request under /fhir leaves an AuditEvent (src/audit/event.ts), answered or
// refused (401, 403, 404, 4xx, 5xx), with AUTH on or off, committed before its answer leaves:
// the onSend hook hands the event to the group-commit writer (src/audit/writer.ts) and holds the
// answer until its batch is committed. If the audit record cannot be written, the answer is
// withheld: the client gets a 500 OperationOutcome (503 when the database is unavailable) instead
// of the result, so no data leaves untraced; a write the request made may have been applied, which
// the OperationOutcome says. The AuditEvent resource is read-only through the API (405),
// including inside batch and transaction bundles, whether or not auditing is on.
//
// Registered before the FHIR routes with skip-override, so its hooks cover them.
import type { Bundle } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import { buildAuditEvent, outcomeText, type AuditAuth } from '../audit/event.ts';
import { toRecord } from '../audit/record.ts';
import { GroupCommitWriter, type WriterStats } from '../audit/writer.ts';
import { FhirError, issue, outcome } from '../fhir/outcome.ts';
import type { Db } from '../store/db.ts';
import { insertAuditRecords, lastContent, type AuditRecord } from '../store/audit.ts';
import { FHIR_JSON } from './send.ts';

export const SERVER_NAME = 'fhir-coordination';

declare module 'fastify' {
  interface FastifyInstance {
    /** The audit trail's writer statistics (AUDIT=on); undefined when auditing is off. */
    auditTrail?: { stats: WriterStats };
  }
}

export interface AuditPluginOptions {
  db: Db;
  config: Config;
}

function pathOf(request: FastifyRequest): string {
  return request.url.split('?', 1)[0];
}

function isFhir(path: string): boolean {
  return path === '/fhir' || path.startsWith('/fhir/');
}

function segments(path: string): string[] {
  const raw = path.replace(/^\/fhir\/?/, '').split('/').filter(Boolean);
  try {
    return raw.map(decodeURIComponent);
  } catch {
    return raw;
  }
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** A write to the audit trail: the AuditEvent type, written with a method that is not a search or an operation. */
function writesAuditEvent(method: string, path: string[]): boolean {
  if (!WRITE_METHODS.has(method) || path[0] !== 'AuditEvent') return false;
  const last = path[path.length - 1];
  if (method === 'POST' && (last === '_search' || last.startsWith('$'))) return false;
  if (method === 'GET') return false;
  return true;
}

function readOnly(where?: string): FhirError {
  const text = 'AuditEvent resources are written by the server only: the audit trail cannot be created, updated, patched or deleted through the API';
  return new FhirError(405, issue('error', 'not-supported', where ? `${where}: ${text}` : text, where), { allow: 'GET, HEAD' });
}

/** Throws 405 when the request, or an entry of its bundle, would write an AuditEvent. */
export function guardAuditTrail(method: string, path: string[], body: unknown, baseUrl: string): void {
  if (writesAuditEvent(method, path)) throw readOnly();
  if (method !== 'POST' || path.length !== 0) return;
  const bundle = body as Bundle | undefined;
  if (!bundle || bundle.resourceType !== 'Bundle' || !Array.isArray(bundle.entry)) return;
  bundle.entry.forEach((entry, i) => {
    const r = entry?.request;
    if (!r || typeof r.url !== 'string' || typeof r.method !== 'string') return;
    let url = r.url;
    if (url.startsWith(baseUrl + '/')) url = url.slice(baseUrl.length + 1);
    const q = url.indexOf('?');
    const path = (q < 0 ? url : url.slice(0, q)).split('/').filter(Boolean);
    let decoded: string[];
    try {
      decoded = path.map(decodeURIComponent);
    } catch {
      decoded = path;
    }
    // An absolute URL on another base is refused by the transaction code; its last type segment still counts here.
    const fromType = decoded.findIndex((s) => s === 'AuditEvent');
    if (fromType >= 0 && writesAuditEvent(r.method.toUpperCase(), decoded.slice(fromType))) throw readOnly(`Bundle.entry[${i}]`);
    if (r.method.toUpperCase() === 'POST' && entry.resource?.resourceType === 'AuditEvent' && decoded.length <= 1) throw readOnly(`Bundle.entry[${i}]`);
  });
}

export async function auditPlugin(app: FastifyInstance, opts: AuditPluginOptions): Promise<void> {
  const { db, config } = opts;
  const baseOf = (request: FastifyRequest) => config.baseUrl ?? `${request.protocol}://${request.host}/fhir`;

  // The trail is read-only through the API, audited or not.
  app.addHook('preHandler', async (request) => {
    const path = pathOf(request);
    if (!isFhir(path)) return;
    guardAuditTrail(request.method, segments(path), request.body, baseOf(request));
  });

  if (config.audit === 'off') return;

  const writer = new GroupCommitWriter<AuditRecord>((records) => insertAuditRecords(db, records), {
    maxBatch: config.auditBatchSize,
    maxWaitMs: config.auditBatchWaitMs,
    concurrency: db.kind === 'pglite' ? 1 : config.auditBatchConcurrency, // one connection: flushes queue anyway
  });
  app.decorate('auditTrail', { stats: writer.stats });
  app.addHook('onClose', () => writer.drained());

  app.addHook('onSend', async (request, reply, payload) => {
    const path = pathOf(request);
    if (!isFhir(path)) return payload;
    const text = typeof payload === 'string' ? payload : undefined;
    const status = reply.statusCode;
    const end = new Date();
    let record: AuditRecord;
    try {
      const location = reply.getHeader('location');
      const parts = segments(path);
      // A deletion's answer is empty: the patients it concerned are those of the last version.
      const deletedContent =
        request.method === 'DELETE' && status < 300 && parts.length === 2 && parts[0] !== 'AuditEvent' ? await lastContent(db, parts[0], parts[1]) : undefined;
      const event = buildAuditEvent(
        {
          requestId: String(request.id),
          method: request.method,
          url: request.url,
          query: (request.query ?? {}) as Record<string, string[]>,
          body: request.body,
          status,
          payload: text,
          location: typeof location === 'string' ? location : undefined,
          auth: request.auth as AuditAuth | undefined,
          ip: request.ip,
          start: new Date(end.getTime() - reply.elapsedTime),
          end,
          baseUrl: baseOf(request),
          deletedContent,
        },
        parts,
        { serverName: SERVER_NAME, outcomeText: outcomeText(text, status) }
      );
      record = toRecord(event);
    } catch (err) {
      return withheld(request, reply, err, 'could not be built');
    }
    try {
      await writer.write(record);
    } catch (err) {
      return withheld(request, reply, err, 'could not be committed');
    }
    return payload;
  });
}

const UNAVAILABLE = /^(08|53|57)/;

/** The answer when its audit record failed: the result is withheld, and the log keeps the trace. */
function withheld(request: FastifyRequest, reply: FastifyReply, err: unknown, what: string): string {
  const code = (err as { code?: unknown })?.code;
  const unavailable = (typeof code === 'string' && UNAVAILABLE.test(code)) || /ECONNREFUSED|ECONNRESET|closed|terminat/i.test(String((err as Error)?.message ?? ''));
  const status = unavailable ? 503 : 500;
  // The log line is the trace of last resort: who, what, status; never the token or the body.
  request.log.error(
    { err, audit: { method: request.method, url: request.url.split('?', 1)[0], status: reply.statusCode, agent: describeAgent(request.auth as AuditAuth | undefined), ip: request.ip } },
    `audit record ${what}: answer withheld`
  );
  for (const h of ['location', 'etag', 'last-modified', 'content-location', 'content-length', 'x-progress']) reply.removeHeader(h);
  reply.code(status).header('content-type', FHIR_JSON);
  if (unavailable) reply.header('retry-after', '5');
  const text =
    `The audit trail could not record this interaction, so its result is withheld. A write it made may nevertheless have been applied: read the resource before retrying. (${what})`;
  return JSON.stringify(outcome([issue('error', unavailable ? 'transient' : 'exception', text)]));
}

function describeAgent(auth: AuditAuth | undefined): string {
  const id = auth?.identity as Record<string, unknown> | undefined;
  if (!id) return 'anonymous';
  return String(id.practitioner ?? id.patient ?? id.relatedPerson ?? id.clientId ?? id.kind);
}

(auditPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
