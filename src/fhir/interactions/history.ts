// history at instance, type and system level (http.html#history), with _since, _at, _count
// and paging that stays stable while new versions arrive.
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { readVisible, type FhirContext } from '../context.ts';
import { errors } from '../outcome.ts';
import type { FhirResponse } from '../response.ts';
import { toRange } from '../search/dates.ts';
import { lastValue, type Query } from '../search/parse.ts';
import { readHistory } from '../../store/resources.ts';
import { Splicer } from '../splice.ts';

// _list (history.html) is not implemented: it is rejected as unknown rather than silently ignored.
const KNOWN = new Set(['_since', '_at', '_count', '_page_offset', '_page_max', '_format', '_pretty']);

export async function history(ctx: FhirContext, type: string | undefined, id: string | undefined, query: Query): Promise<FhirResponse> {
  for (const k of Object.keys(query)) if (!KNOWN.has(k)) throw errors.invalid(`Unknown history parameter "${k}"`, k);
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
  const page = await readHistory(ctx.ex, { resourceType: type, id, since: sinceRange?.low, at, maxSeq: maxRaw, offset, count, countLimit: ctx.limits.searchTotalLimit }, ctx.access);

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
  const link = (o: number) => {
    const q = new URLSearchParams();
    if (since) q.set('_since', since);
    if (atRaw) q.set('_at', atRaw);
    q.set('_count', String(count));
    q.set('_page_max', page.maxSeq);
    q.set('_page_offset', String(o));
    return `${ctx.baseUrl}/${path}?${q}`;
  };
  // The total as for a search: exact up to SEARCH_TOTAL_LIMIT versions, left out beyond (Bundle.total is optional).
  const bundle: Bundle = { resourceType: 'Bundle', type: 'history' };
  if (page.total !== undefined) bundle.total = page.total;
  bundle.link = [{ relation: 'self', url: link(offset) }];
  if (page.hasNext && count > 0) bundle.link.push({ relation: 'next', url: link(offset + count) });
  if (offset > 0) bundle.link.push({ relation: 'previous', url: link(Math.max(0, offset - count)) });
  if (entries.length) bundle.entry = entries; // FHIR JSON has no empty arrays
  return { status: 200, raw: splicer.text(bundle), headers: {} };
}
