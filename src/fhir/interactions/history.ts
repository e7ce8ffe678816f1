// history at instance, type and system level (http.html#history), with _since, _at, _count
// and paging that stays stable while new versions arrive.
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { readVisible, type FhirContext } from '../context.ts';
import { errors, FhirError, issue } from '../outcome.ts';
import { AUDIT_RESOURCE_TYPE } from '../../store/audit.ts';
import { auditInstanceHistory } from '../../audit/read.ts';
import type { FhirResponse } from '../response.ts';
import { toRange } from '../search/dates.ts';
import { lastValue, type Query } from '../search/parse.ts';
import { readHistory, type HistoryPosition } from '../../store/resources.ts';
import { Splicer } from '../splice.ts';

// _list (history.html) is not implemented: it is rejected as unknown rather than silently ignored.
// Paging: _page_max (the snapshot), then _page_before / _page_after (a position, keyset) or _page_offset.
const KNOWN = new Set(['_since', '_at', '_count', '_page_offset', '_page_max', '_page_before', '_page_after', '_format', '_pretty']);

/** A page link's position: the entry's lastUpdated to the microsecond, and its sequence number. */
const POSITION = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z),(\d{1,18})$/;
const positionOf = (raw: string | undefined, name: string): HistoryPosition | undefined => {
  if (raw === undefined) return undefined;
  const m = POSITION.exec(raw);
  if (!m) throw errors.invalid(`Malformed paging parameter ${name}`, name);
  return { lastUpdated: m[1], seq: m[2] };
};
const positionText = (p: HistoryPosition) => `${p.lastUpdated},${p.seq}`;

export async function history(ctx: FhirContext, type: string | undefined, id: string | undefined, query: Query): Promise<FhirResponse> {
  for (const k of Object.keys(query)) if (!KNOWN.has(k)) throw errors.invalid(`Unknown history parameter "${k}"`, k);
  if (type === AUDIT_RESOURCE_TYPE) {
    // The trail's events have one version each and no history of the type: it is searched (AuditEvent?date=…&_sort=-date).
    if (id) return auditInstanceHistory(ctx, id);
    throw new FhirError(405, issue('error', 'not-supported', 'The audit trail has no type history: search it instead (AuditEvent?date=ge…&_sort=-date)'), { allow: 'GET' });
  }
  if (type && id && !(await readVisible(ctx, type, id))) throw errors.notFound(`${type}/${id} not found`);
  const since = lastValue(query, '_since');
  const sinceRange = since !== undefined ? toRange(since) : undefined;
  if (since !== undefined && (!sinceRange || !since.includes('T'))) throw errors.invalid(`_since must be an instant, not "${since}"`, '_since');
  const atRaw = lastValue(query, '_at');
  const at = atRaw !== undefined ? toRange(atRaw) : undefined;
  if (atRaw !== undefined && !at) throw errors.invalid(`_at must be a date or dateTime, not "${atRaw}"`, '_at');
  const countRaw = lastValue(query, '_count');
  if (countRaw !== undefined && !/^\d+$/.test(countRaw)) throw errors.invalid(`_count must be a non-negative integer`, '_count');
  const count = Math.min(countRaw !== undefined ? Number(countRaw) : ctx.limits.defaultCount, ctx.limits.maxCount);
  const offsetRaw = lastValue(query, '_page_offset') ?? '0';
  const maxRaw = lastValue(query, '_page_max');
  if (!/^\d+$/.test(offsetRaw) || (maxRaw !== undefined && !/^\d+$/.test(maxRaw))) throw errors.invalid('Malformed paging parameters');
  const offset = Number(offsetRaw);
  const before = positionOf(lastValue(query, '_page_before'), '_page_before');
  const after = positionOf(lastValue(query, '_page_after'), '_page_after');
  if ((before || after) && (maxRaw === undefined || offsetRaw !== '0' || (before && after))) throw errors.invalid('Malformed paging parameters');
  const start = before ? { position: before, backward: false } : after ? { position: after, backward: true } : undefined;
  const page = await readHistory(
    ctx.ex,
    { resourceType: type, id, since: sinceRange?.low, at, maxSeq: maxRaw, start, offset, count, countLimit: ctx.limits.searchTotalLimit },
    ctx.access
  );

  const splicer = new Splicer();
  const entries: BundleEntry[] = page.entries.map((e) => {
    const url = `${e.resourceType}/${e.id}`;
    const entry: BundleEntry = { fullUrl: `${ctx.baseUrl}/${url}` };
    if (!e.deleted && e.content) entry.resource = splicer.mark(e.content);
    entry.request = { method: e.method as 'POST', url: e.method === 'POST' ? e.resourceType : url };
    entry.response = {
      status: e.deleted ? '204' : e.versionId === 1 ? '201' : '200',
      etag: `W/"${e.versionId}"`,
      lastModified: e.lastUpdated.toISOString(),
    };
    return entry;
  });
  const path = [type, id, '_history'].filter(Boolean).join('/');
  const link = (paging: Record<string, string>) => {
    const q = new URLSearchParams();
    if (since) q.set('_since', since);
    if (atRaw) q.set('_at', atRaw);
    q.set('_count', String(count));
    q.set('_page_max', page.maxSeq);
    for (const [k, v] of Object.entries(paging)) q.set(k, v);
    return `${ctx.baseUrl}/${path}?${q}`;
  };
  // The total as for a search: exact up to SEARCH_TOTAL_LIMIT versions, left out beyond (Bundle.total is optional).
  const bundle: Bundle = { resourceType: 'Bundle', type: 'history' };
  if (page.total !== undefined) bundle.total = page.total;
  // self as asked; next and previous from the page's last and first entries (keyset: a page deep
  // in the history costs what the first does).
  const self: Record<string, string> = start ? { [start.backward ? '_page_after' : '_page_before']: positionText(start.position) } : offset ? { _page_offset: String(offset) } : {};
  bundle.link = [{ relation: 'self', url: link(self) }];
  const backward = start?.backward === true;
  const { positions } = page;
  if (positions.length && count > 0 && (backward || page.more)) bundle.link.push({ relation: 'next', url: link({ _page_before: positionText(positions[positions.length - 1]) }) });
  if (positions.length && (backward ? page.more : !!start || offset > 0)) bundle.link.push({ relation: 'previous', url: link({ _page_after: positionText(positions[0]) }) });
  if (entries.length) bundle.entry = entries; // FHIR JSON has no empty arrays
  return { status: 200, raw: splicer.text(bundle), headers: {} };
}
