// Patient/[id]/$everything, and Patient/$everything for the patient in context (R4 OperationDefinition
// Patient-everything): the patient, every resource in their compartment, and the resources those
// reference, as a paged searchset.
// It is a search with a scope: the compartment, the care-date window, the types and the access
// filter all apply inside the SQL, page by page, as for any search (search/search.ts).
//
// Parameters: start and end (care dates; a resource is in the window when one of its care dates
// overlaps it; the care date of a type is its `date` parameter, or CARE_DATE_PARAMS below; a
// resource of a type without one, or without a value, is always returned), _since (changed at or
// after this instant: meta.lastUpdated), _type (among the compartment's types), _count, and the
// usual result parameters (_elements, _summary, _total).
import { readVisible, type FhirContext } from '../context.ts';
import { getCompartmentTypes, getSearchParam, isResourceType } from '../definitions.ts';
import { errors, FhirError, issue } from '../outcome.ts';
import type { FhirRequest } from '../request.ts';
import { bodyParameters, simpleValue } from './operation-input.ts';
import type { FhirResponse } from '../response.ts';
import { lastValue, type Query } from '../search/parse.ts';
import { search } from '../search/search.ts';
import { respond } from './search.ts';
import { toRange } from '../search/dates.ts';
import type { SqlParams } from '../search/sql.ts';

export const EVERYTHING_OPERATION = { name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' };

/** The operation's own parameters, besides the search's result parameters. */
const OPERATION_PARAMS = ['start', 'end', '_since'];

/** Care dates of compartment types without a `date` search parameter. */
const CARE_DATE_PARAMS: Record<string, string> = {
  Communication: 'sent',
  CommunicationRequest: 'authored',
  Condition: 'onset-date',
  MedicationRequest: 'authoredon',
  QuestionnaireResponse: 'authored',
  ServiceRequest: 'authored',
  Task: 'authored-on',
};

let compartmentTypes: string[] | undefined;
/** Patient, and every type with a parameter that puts it in a Patient's compartment. */
function patientCompartmentTypes(): string[] {
  return (compartmentTypes ??= getCompartmentTypes('Patient').filter(isResourceType));
}

/** "Type|code" of each compartment type's care-date parameter (looked up each time: custom SearchParameters may add or change one). */
function careDateKeys(): string[] {
  return patientCompartmentTypes().flatMap((t) => {
    const code = getSearchParam(t, 'date')?.type === 'date' ? 'date' : CARE_DATE_PARAMS[t];
    return code && getSearchParam(t, code)?.type === 'date' ? [`${t}|${code}`] : [];
  });
}

function dateParam(query: Query, name: string): { low: string; high: string } | undefined {
  const value = lastValue(query, name);
  if (value === undefined || value === '') return undefined;
  const range = toRange(value);
  if (!range) throw new FhirError(400, issue('error', 'invalid', `$everything: ${name} must be a date, not "${value}"`, name));
  return range;
}

/** The query string, with the primitive parameters of a POST body (a form or a Parameters resource) added. */
function operationQuery(req: FhirRequest): Query {
  const query: Query = { ...req.query };
  for (const p of bodyParameters('$everything', req.body)) {
    const value = simpleValue(p);
    if (value !== undefined) query[p.name!] = [...(query[p.name!] ?? []), value];
  }
  return query;
}

/**
 * Patient/[id]/$everything, or Patient/$everything (id undefined): the patient in the token's
 * context; without one, an error, as R4 allows, rather than every patient the caller may see.
 */
export async function everything(ctx: FhirContext, named: string | undefined, req: FhirRequest): Promise<FhirResponse> {
  const id = named ?? ctx.patientInContext?.replace(/^Patient\//, '');
  if (!id) throw errors.invalid('Patient/$everything needs a patient in context (a patient token, or a launch with a patient); otherwise name one: Patient/[id]/$everything');
  const query = operationQuery(req);
  const start = dateParam(query, 'start');
  const end = dateParam(query, 'end');
  const since = dateParam(query, '_since');
  if (start && end && start.low >= end.high) throw errors.invalid('$everything: start must be before end');
  // The patient must exist and be visible to the caller: a hidden patient is answered as a missing one.
  const patient = await readVisible(ctx, 'Patient', id);
  if (!patient) throw errors.notFound(`Patient/${id} is not known`);
  if (patient.deleted) throw errors.gone(`Patient/${id} was deleted`);
  const condition = (params: SqlParams): string => {
    const terms: string[] = [];
    if (since) terms.push(`r.last_updated >= ${params.add(since.low)}::timestamptz`);
    if (start || end) {
      const keys = params.add(careDateKeys());
      const overlaps = [start && `d.high > ${params.add(start.low)}::timestamptz`, end && `d.low < ${params.add(end.high)}::timestamptz`].filter(Boolean).join(' AND ');
      const careDate = `SELECT 1 FROM sp_date d WHERE d.rid = r.rid AND d.resource_type || '|' || d.code = ANY(${keys}::text[])`;
      terms.push(`(NOT EXISTS (${careDate}) OR EXISTS (${careDate} AND ${overlaps}))`);
    }
    return terms.length ? terms.join(' AND ') : 'true';
  };
  const result = await search(ctx, undefined, query, {
    strict: false,
    path: `Patient/${id}/$everything`,
    compartment: `Patient/${id}`,
    types: patientCompartmentTypes(),
    operationParams: OPERATION_PARAMS,
    condition,
    includeReferenced: true,
  });
  return respond(result);
}
