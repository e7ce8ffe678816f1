// $reindex (system and type level) and the status of reindex jobs, in the FHIR asynchronous
// request pattern (async.html, as bulk data uses it): the kick-off answers 202 Accepted with
// Content-Location, the job's status URL; GET on it answers 202 with X-Progress while the job
// runs, then 200 with a Parameters giving the counts; DELETE cancels the job.
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import { errors, informational } from '../outcome.ts';
import { cancelJob, enqueueReindex, readJob, runnerFor, type JobRow } from '../reindex-jobs.ts';
import type { FhirRequest } from '../request.ts';
import type { FhirResponse } from '../response.ts';

/** The canonical URL of the operation, as the CapabilityStatement names it. */
export const REINDEX_OPERATION = { name: 'reindex', definition: 'urn:fhir-coordination:OperationDefinition/reindex' };

export function reindexStatusUrl(baseUrl: string, jobId: string): string {
  return `${baseUrl}/$reindex-status/${encodeURIComponent(jobId)}`;
}

/** POST [base]/$reindex, POST [base]/[type]/$reindex: queues a job; 202 with its status URL. */
export async function reindex(ctx: FhirContext, type: string | undefined, _req: FhirRequest): Promise<FhirResponse> {
  const id = await enqueueReindex(ctx.ex, {
    types: type ? [type] : undefined,
    reason: type ? `$reindex of ${type}` : '$reindex of every resource type',
  });
  if (!ctx.inTransaction) runnerFor(ctx.db)?.poke();
  const url = reindexStatusUrl(ctx.baseUrl, id);
  return {
    status: 202,
    resource: informational(`Reindex job ${id} accepted for ${type ?? 'every resource type'}; its status: ${url}`),
    headers: { 'content-location': url },
  };
}

function progressText(job: JobRow): string {
  if (job.status === 'queued') return 'queued';
  const total = Number(job.total ?? 0);
  const done = Number(job.reindexed) + Number(job.skipped) + Number(job.failed);
  if (job.phase === 'catchup') return `reindexed ${job.reindexed} of ${total} resources; catching up with writes made meanwhile (${job.caught_up} so far)`;
  const pct = total ? Math.min(100, Math.floor((done / total) * 100)) : 0;
  return `reindexed ${done} of ${total} resources (${pct}%)`;
}

const iso = (v: Date | string | null) => (v === null ? undefined : new Date(v).toISOString());

function jobParameters(job: JobRow): Parameters {
  const p: ParametersParameter[] = [
    { name: 'job', valueString: job.id },
    { name: 'status', valueCode: job.status },
    { name: 'reason', valueString: job.reason },
  ];
  for (const t of job.types ?? []) p.push({ name: 'type', valueCode: t });
  const count = (name: string, v: string | null) => p.push({ name, valueInteger: Number(v ?? 0) });
  count('total', job.total);
  count('reindexed', job.reindexed);
  count('caughtUp', job.caught_up);
  count('skipped', job.skipped);
  count('failed', job.failed);
  for (const [name, v] of [['created', job.created_at], ['started', job.started_at], ['finished', job.finished_at]] as const) {
    const t = iso(v);
    if (t) p.push({ name, valueInstant: t });
  }
  if (job.error) p.push({ name: 'error', valueString: job.error });
  return { resourceType: 'Parameters', parameter: p };
}

/** GET [base]/$reindex-status/[job]: 202 + X-Progress while queued or running, then 200 + Parameters. */
export async function reindexStatus(ctx: FhirContext, jobId: string): Promise<FhirResponse> {
  const job = await readJob(ctx.ex, jobId);
  if (!job) throw errors.notFound(`No reindex job "${jobId}"`);
  if (job.status === 'cancelled') throw errors.notFound(`Reindex job "${jobId}" was cancelled`);
  if (job.status === 'queued' || job.status === 'running') {
    const text = progressText(job);
    return { status: 202, resource: informational(`Reindex job ${job.id}: ${text}`), headers: { 'x-progress': text, 'retry-after': '1' } };
  }
  // completed, or failed: the request for the status succeeded either way; `status` and
  // `error` in the Parameters tell which.
  return { status: 200, resource: jobParameters(job), headers: {} };
}

/** DELETE [base]/$reindex-status/[job]: cancels it (202); later status requests answer 404. */
export async function cancelReindex(ctx: FhirContext, jobId: string): Promise<FhirResponse> {
  if (!(await cancelJob(ctx.ex, jobId))) {
    const job = await readJob(ctx.ex, jobId);
    if (!job || job.status === 'cancelled') throw errors.notFound(`No reindex job "${jobId}" to cancel`);
    throw errors.conflict(`Reindex job "${jobId}" is already ${job.status}`);
  }
  return { status: 202, resource: informational(`Reindex job ${jobId} cancelled`), headers: {} };
}
