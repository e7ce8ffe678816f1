// The input parameters of an operation posted in the body (R4 operations.html#request): a
// Parameters resource, or a form whose fields stand for string parameters. Query-string
// parameters are read by each operation, which knows which of them are its own.
import type { ParametersParameter, Resource } from '@medplum/fhirtypes';
import { errors } from '../outcome.ts';
import { parseQueryString } from '../request.ts';

/** The body's parameters, each with a name; none for an empty body. */
export function bodyParameters(op: string, body: unknown): ParametersParameter[] {
  if (body === undefined || body === null || body === '') return [];
  if (typeof body === 'string') {
    return Object.entries(parseQueryString(body)).flatMap(([name, values]) => values.map((v) => ({ name, valueString: v })));
  }
  const resource = body as Resource;
  if (resource.resourceType !== 'Parameters') {
    throw errors.invalid(`${op} takes a Parameters resource in the body, not ${resource.resourceType ?? 'this'}`);
  }
  for (const p of resource.parameter ?? []) {
    if (!p.name) throw errors.invalid(`${op}: every parameter needs a name`, 'Parameters.parameter.name');
  }
  return resource.parameter ?? [];
}

/** A parameter's primitive value (value[x] a string, number or boolean) as text; undefined for a complex one. */
export function simpleValue(p: ParametersParameter): string | undefined {
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith('value') && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) return String(v);
  }
  return undefined;
}
