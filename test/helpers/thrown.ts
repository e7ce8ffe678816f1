// The FhirError a synchronous call throws (undefined if it returns); any other error is rethrown.
import { FhirError } from '../../src/fhir/outcome.ts';

export function thrown(fn: () => unknown): FhirError | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof FhirError) return error;
    throw error;
  }
  return undefined;
}
