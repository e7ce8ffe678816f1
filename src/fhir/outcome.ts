// OperationOutcome construction and the one error type every layer throws.
// The HTTP layer turns a FhirError into its status and OperationOutcome body.
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueCode = OperationOutcomeIssue['code'];

export function issue(
  severity: OperationOutcomeIssue['severity'],
  code: IssueCode,
  text: string,
  expression?: string | string[]
): OperationOutcomeIssue {
  const result: OperationOutcomeIssue = { severity, code, details: { text } };
  if (expression !== undefined) result.expression = Array.isArray(expression) ? expression : [expression];
  return result;
}

export function outcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

export function informational(text: string): OperationOutcome {
  return outcome([issue('information', 'informational', text)]);
}

export class FhirError extends Error {
  readonly status: number;
  readonly issues: OperationOutcomeIssue[];
  readonly headers: Record<string, string>;

  constructor(status: number, issues: OperationOutcomeIssue[] | OperationOutcomeIssue, headers: Record<string, string> = {}) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list.map((i) => i.details?.text ?? i.diagnostics ?? i.code).join('; '));
    this.status = status;
    this.issues = list;
    this.headers = headers;
  }

  get outcome(): OperationOutcome {
    return outcome(this.issues);
  }
}

/** Shorthands for the statuses the REST layer uses; each names the FHIR issue code that fits it. */
export const errors = {
  invalid: (text: string, expression?: string | string[]) => new FhirError(400, issue('error', 'invalid', text, expression)),
  structure: (text: string, expression?: string | string[]) => new FhirError(400, issue('error', 'structure', text, expression)),
  notFound: (text: string) => new FhirError(404, issue('error', 'not-found', text)),
  notSupported: (text: string, status = 400) => new FhirError(status, issue('error', 'not-supported', text)),
  gone: (text: string, headers?: Record<string, string>) => new FhirError(410, issue('error', 'deleted', text), headers),
  conflict: (text: string) => new FhirError(409, issue('error', 'conflict', text)),
  preconditionFailed: (text: string) => new FhirError(412, issue('error', 'conflict', text)),
  multipleMatches: (text: string) => new FhirError(412, issue('error', 'multiple-matches', text)),
  unprocessable: (text: string, expression?: string | string[]) => new FhirError(422, issue('error', 'processing', text, expression)),
};
