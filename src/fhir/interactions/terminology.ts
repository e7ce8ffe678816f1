// The terminology operations (R4 OperationDefinitions ValueSet-expand, ValueSet-validate-code,
// CodeSystem-validate-code, CodeSystem-lookup, CodeSystem-subsumes), at type and instance level,
// GET (parameters in the query) or POST (a Parameters resource, or a form). They go through the
// terminology in use (terminology/index.ts): the ValueSets and CodeSystems stored on the server,
// those of the R4 base specification, and any source added there. An unknown ValueSet or
// CodeSystem is a 404 naming it, a missing or contradictory parameter a 400; a ValueSet whose
// expansion needs what this server does not have is a 400 (as token :in is), too many codes a
// 400 too-costly.
import { randomUUID } from 'node:crypto';
import type {
  CodeableConcept, Coding, Parameters, ParametersParameter, Resource, ValueSet, ValueSetExpansionContains, ValueSetExpansionParameter,
} from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import { errors } from '../outcome.ts';
import type { FhirRequest } from '../request.ts';
import { bodyParameters, simpleValue } from './operation-input.ts';
import type { FhirResponse } from '../response.ts';
import {
  expandValueSet, lookupCode, MAX_EXPANSION, subsumption, validateCodeInValueSet, type CodeValidation, type CodingToValidate, type LookupResult, type TerminologyContext,
} from '../terminology/index.ts';

const def = (name: string, id: string) => ({ name, definition: `http://hl7.org/fhir/OperationDefinition/${id}` });
/** The operations as the CapabilityStatement names them (on ValueSet and CodeSystem). */
export const TERMINOLOGY_OPERATIONS = {
  expand: def('expand', 'ValueSet-expand'),
  valueSetValidateCode: def('validate-code', 'ValueSet-validate-code'),
  codeSystemValidateCode: def('validate-code', 'CodeSystem-validate-code'),
  lookup: def('lookup', 'CodeSystem-lookup'),
  subsumes: def('subsumes', 'CodeSystem-subsumes'),
};

// ---------------------------------------------------------------------------------------------
// Input parameters: from the query string, a Parameters body or a form body, each by name.

class OpParams {
  private readonly byName = new Map<string, ParametersParameter[]>();
  private readonly op: string;

  constructor(op: string, req: FhirRequest) {
    this.op = op;
    for (const [name, values] of Object.entries(req.query)) {
      if (name === '_format' || name === '_pretty' || name === '_summary' || name === '_elements') continue;
      for (const v of values) this.push({ name, valueString: v });
    }
    for (const p of bodyParameters(op, req.body)) this.push(p);
  }

  private push(p: ParametersParameter): void {
    let list = this.byName.get(p.name!);
    if (!list) this.byName.set(p.name!, (list = []));
    list.push(p);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Every occurrence of a 0..* parameter. */
  all(name: string): ParametersParameter[] {
    return this.byName.get(name) ?? [];
  }

  private one(name: string): ParametersParameter | undefined {
    const list = this.byName.get(name);
    if (!list) return undefined;
    if (list.length > 1) throw errors.invalid(`${this.op}: the parameter ${name} is given ${list.length} times; it takes one value`, name);
    return list[0];
  }

  /** A primitive parameter (string, uri, code, canonical…), as text. */
  str(name: string): string | undefined {
    const p = this.one(name);
    if (!p) return undefined;
    const s = simpleValue(p);
    if (s === undefined) throw errors.invalid(`${this.op}: the parameter ${name} takes a simple value`, name);
    if (s === '') throw errors.invalid(`${this.op}: the parameter ${name} is empty`, name);
    return s;
  }

  int(name: string): number | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    if (!/^\d{1,9}$/.test(s)) throw errors.invalid(`${this.op}: ${name} must be a non-negative integer, not "${s}"`, name);
    return Number(s);
  }

  bool(name: string): boolean | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    if (s !== 'true' && s !== 'false') throw errors.invalid(`${this.op}: ${name} must be true or false, not "${s}"`, name);
    return s === 'true';
  }

  coding(name: string): Coding | undefined {
    const p = this.one(name);
    if (!p) return undefined;
    if (!p.valueCoding) throw errors.invalid(`${this.op}: the parameter ${name} takes a Coding (valueCoding, in a Parameters body)`, name);
    return p.valueCoding;
  }

  codeableConcept(name: string): CodeableConcept | undefined {
    const p = this.one(name);
    if (!p) return undefined;
    if (!p.valueCodeableConcept) throw errors.invalid(`${this.op}: the parameter ${name} takes a CodeableConcept (valueCodeableConcept, in a Parameters body)`, name);
    return p.valueCodeableConcept;
  }

  resource<T extends Resource>(name: string, type: T['resourceType']): T | undefined {
    const p = this.one(name);
    if (!p) return undefined;
    if (p.resource?.resourceType !== type) throw errors.invalid(`${this.op}: the parameter ${name} takes a ${type} resource (in a Parameters body)`, name);
    return p.resource as T;
  }

  /** Parameters of the OperationDefinition this server does not honour: refused rather than ignored. */
  refuse(...names: string[]): void {
    for (const name of names) {
      if (this.has(name)) throw errors.notSupported(`${this.op}: the parameter ${name} is not supported by this server`);
    }
  }
}

function parameters(list: (ParametersParameter | undefined)[]): FhirResponse {
  const resource: Parameters = { resourceType: 'Parameters', parameter: list.filter((p): p is ParametersParameter => !!p) };
  return { status: 200, resource, headers: {} };
}

const notFound = (what: string) => errors.notFound(`${what} is not known to this server`);

/** One request: what it looks up is looked up once (nothing is written meanwhile). */
const tcOf = (ctx: FhirContext): TerminologyContext => ({ ex: ctx.ex, memo: new Map() });

// ---------------------------------------------------------------------------------------------
// ValueSet: which one. Instance level: ValueSet/[id]; type level: url (+ valueSetVersion), or a
// valueSet resource in the body.

function valueSetRef(p: OpParams, op: string, id: string | undefined): { ref: string | ValueSet; label: string } {
  const url = p.str('url');
  const version = p.str('valueSetVersion');
  const inline = p.resource<ValueSet>('valueSet', 'ValueSet');
  p.refuse('context');
  if (id !== undefined) {
    if (url !== undefined || inline) throw errors.invalid(`${op} on ValueSet/${id}: url and valueSet are for the type level (ValueSet/${op})`);
    if (version !== undefined) throw errors.invalid(`${op} on ValueSet/${id}: valueSetVersion is for the type level, with url`, 'valueSetVersion');
    return { ref: `ValueSet/${id}`, label: `ValueSet/${id}` };
  }
  if (url !== undefined && inline) throw errors.invalid(`${op}: give the ValueSet by url or as a valueSet resource, not both`);
  if (inline) {
    if (version !== undefined) throw errors.invalid(`${op}: valueSetVersion goes with url, not with a valueSet resource`, 'valueSetVersion');
    return { ref: inline, label: inline.url ?? 'the ValueSet given' };
  }
  if (url === undefined) throw errors.invalid(`${op} needs the ValueSet: url (a canonical URL, optionally with valueSetVersion) or a valueSet resource; or call it on ValueSet/[id]`, 'url');
  const bar = url.lastIndexOf('|');
  if (bar >= 0 && version !== undefined && url.slice(bar + 1) !== version) {
    throw errors.invalid(`${op}: url ${url} names version ${url.slice(bar + 1)} and valueSetVersion says ${version}`, 'valueSetVersion');
  }
  const ref = version !== undefined && bar < 0 ? `${url}|${version}` : url;
  return { ref, label: ref };
}

// ---------------------------------------------------------------------------------------------
// $expand

/** Lower-cased, without accents: the text filter is accent- and case-insensitive. */
const fold = (s: string) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/** The $expand parameters taken besides the ValueSet, and how the text filter reads (stated in TerminologyCapabilities). */
export const EXPAND_PARAMETERS = ['filter', 'count', 'offset', 'includeDesignations', 'includeDefinition'] as const;
export const EXPAND_TEXT_FILTER = 'Every word of the filter, case- and accent-insensitive, in the code or the display (and the designations with includeDesignations)';

/** GET/POST [base]/ValueSet/$expand, [base]/ValueSet/[id]/$expand. */
export async function expandOperation(ctx: FhirContext, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const op = '$expand';
  const p = new OpParams(op, req);
  const { ref, label } = valueSetRef(p, op, id);
  p.refuse('date', 'exclude-system', 'system-version', 'check-system-version', 'force-system-version', 'contextDirection');
  const filter = p.str('filter');
  const count = p.int('count');
  const offset = p.int('offset') ?? 0;
  const includeDesignations = p.bool('includeDesignations') ?? false;
  const includeDefinition = p.bool('includeDefinition') ?? false;
  const exp = await expandValueSet(tcOf(ctx), ref, MAX_EXPANSION);
  if (!exp) throw notFound(`ValueSet ${label}`);
  let codes = exp.contains;
  if (filter !== undefined) {
    // Every word of the filter, in the code, the display or (asked for) a designation.
    const words = fold(filter).split(/\s+/).filter(Boolean);
    codes = codes.filter((c) => {
      const text = fold([c.code, c.display ?? '', ...(includeDesignations ? (c.designation ?? []).map((d) => d.value ?? '') : [])].join(' '));
      return words.every((w) => text.includes(w));
    });
  }
  const page = codes.slice(offset, count === undefined ? undefined : offset + count);
  const contains: ValueSetExpansionContains[] = page.map((c) => {
    const out: ValueSetExpansionContains = { system: c.system };
    if (c.version) out.version = c.version;
    out.code = c.code;
    if (c.display !== undefined) out.display = c.display;
    if (includeDesignations && c.designation?.length) out.designation = c.designation;
    return out;
  });
  const parameter: ValueSetExpansionParameter[] = [];
  if (filter !== undefined) parameter.push({ name: 'filter', valueString: filter });
  if (count !== undefined) parameter.push({ name: 'count', valueInteger: count });
  if (p.has('offset')) parameter.push({ name: 'offset', valueInteger: offset });
  if (p.has('includeDesignations')) parameter.push({ name: 'includeDesignations', valueBoolean: includeDesignations });
  if (p.has('includeDefinition')) parameter.push({ name: 'includeDefinition', valueBoolean: includeDefinition });
  const used = new Set(exp.contains.map((c) => (c.version ? `${c.system}|${c.version}` : c.system)));
  for (const u of used) parameter.push({ name: 'used-codesystem', valueUri: u });
  const source = exp.resource ?? (typeof ref === 'string' ? undefined : ref);
  const vs: ValueSet = {
    resourceType: 'ValueSet',
    ...(source?.id ? { id: source.id } : {}),
    ...(exp.url ? { url: exp.url } : {}),
    ...(exp.version ? { version: exp.version } : {}),
    ...(source?.name ? { name: source.name } : {}),
    ...(source?.title ? { title: source.title } : {}),
    status: source?.status ?? 'active',
    ...(includeDefinition && source?.compose ? { compose: source.compose } : {}),
    expansion: {
      identifier: `urn:uuid:${randomUUID()}`,
      timestamp: new Date().toISOString(),
      total: codes.length,
      ...(count !== undefined || p.has('offset') ? { offset } : {}),
      ...(parameter.length ? { parameter } : {}),
      ...(contains.length ? { contains } : {}),
    },
  };
  return { status: 200, resource: vs, headers: {} };
}

// ---------------------------------------------------------------------------------------------
// The code to validate: code (+ system, systemVersion/version, display), coding, or codeableConcept.

interface ToValidate {
  codings: CodingToValidate[];
  /** A CodeableConcept: true when one of its codings is valid. */
  concept: boolean;
}

function codeToValidate(p: OpParams, op: string, versionParam: 'systemVersion' | 'version'): ToValidate {
  const code = p.str('code');
  const coding = p.coding('coding');
  const cc = p.codeableConcept('codeableConcept');
  const given = [code !== undefined, !!coding, !!cc].filter(Boolean).length;
  if (given !== 1) throw errors.invalid(`${op} needs one (and only one) of code, coding or codeableConcept; ${given} given`);
  if (code !== undefined) {
    const c: CodingToValidate = { code, system: p.str('system'), display: p.str('display'), version: p.str(versionParam) };
    return { codings: [c], concept: false };
  }
  for (const name of ['system', 'display', versionParam]) {
    if (p.has(name)) throw errors.invalid(`${op}: ${name} goes with code; a ${coding ? 'coding' : 'codeableConcept'} carries its own`, name);
  }
  const list = coding ? [coding] : (cc!.coding ?? []);
  if (!list.length) throw errors.invalid(`${op}: the codeableConcept has no coding to validate`, 'codeableConcept');
  const codings = list.map((c) => {
    if (!c.code) throw errors.invalid(`${op}: a coding without a code cannot be validated`, coding ? 'coding' : 'codeableConcept');
    return { code: c.code, system: c.system, display: c.display, version: c.version };
  });
  return { codings, concept: !coding };
}

/** result, message, display for one or several codings (a CodeableConcept: valid when one of them is). */
function validationResult(results: CodeValidation[], concept: boolean): FhirResponse {
  const good = results.find((r) => r.result === true);
  const chosen = good ?? results.find((r) => r.result === undefined) ?? results[0];
  const result = !!good;
  let message = chosen.message;
  if (!good && chosen.result === undefined) message = `Cannot validate: ${chosen.message}`;
  if (concept && !good && results.length > 1) message = results.map((r) => r.message).filter(Boolean).join('; ');
  return parameters([
    { name: 'result', valueBoolean: result },
    message ? { name: 'message', valueString: message } : undefined,
    chosen.display !== undefined ? { name: 'display', valueString: chosen.display } : undefined,
  ]);
}

/** GET/POST [base]/ValueSet/$validate-code, [base]/ValueSet/[id]/$validate-code. */
export async function valueSetValidateCode(ctx: FhirContext, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const op = '$validate-code';
  const p = new OpParams(op, req);
  const { ref, label } = valueSetRef(p, op, id);
  p.refuse('date');
  const { codings, concept } = codeToValidate(p, op, 'systemVersion');
  const tc = tcOf(ctx);
  const results: CodeValidation[] = [];
  for (const c of codings) {
    const r = await validateCodeInValueSet(tc, ref, c);
    if (r.valueSetUnknown) throw notFound(`ValueSet ${label}`);
    results.push(r);
    if (r.result === true) break;
  }
  return validationResult(results, concept);
}

// ---------------------------------------------------------------------------------------------
// CodeSystem: instance level CodeSystem/[id], else by url or system.

function codeSystemRef(id: string | undefined): string | undefined {
  return id === undefined ? undefined : `CodeSystem/${id}`;
}

/** The CodeSystem's details, or a 404 naming it. */
async function knownCodeSystem(ctx: FhirContext, system: string, code: string, version: string | undefined, label: string): Promise<LookupResult> {
  const r = await lookupCode({ ex: ctx.ex }, system, code, version);
  if (!r) throw notFound(`CodeSystem ${label}${version ? ` (version ${version})` : ''}`);
  return r;
}

/** GET/POST [base]/CodeSystem/$validate-code, [base]/CodeSystem/[id]/$validate-code. */
export async function codeSystemValidateCode(ctx: FhirContext, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const op = '$validate-code';
  const p = new OpParams(op, req);
  p.refuse('date', 'codeSystem');
  const url = p.str('url');
  if (id !== undefined && url !== undefined) throw errors.invalid(`${op} on CodeSystem/${id}: url is for the type level (CodeSystem/${op})`, 'url');
  const { codings, concept } = codeToValidate(p, op, 'version');
  const results: CodeValidation[] = [];
  for (const c of codings) {
    // The system: the instance, else url; a coding's system must be the same.
    const system = codeSystemRef(id) ?? url ?? c.system;
    if (system === undefined) throw errors.invalid(`${op} needs the CodeSystem: url (or the coding's system), or call it on CodeSystem/[id]`, 'url');
    const label = id !== undefined ? `CodeSystem/${id}` : system;
    const r = await knownCodeSystem(ctx, system, c.code, c.version, label);
    if (c.system !== undefined && c.system !== r.system) {
      if (concept) continue; // another coding of the CodeableConcept may be of this CodeSystem
      throw errors.invalid(`${op}: the coding's system ${c.system} is not the CodeSystem ${r.system}`, 'coding');
    }
    results.push(codeSystemResult(r, c));
    if (results[results.length - 1].result) break;
  }
  if (!results.length) {
    return parameters([{ name: 'result', valueBoolean: false }, { name: 'message', valueString: 'None of the codings is of this CodeSystem' }]);
  }
  return validationResult(results, concept);
}

function codeSystemResult(r: LookupResult, c: CodingToValidate): CodeValidation {
  const concept = r.concept;
  if (!concept) {
    const partial = r.complete ? '' : ' (its content here is partial: a fragment or an example)';
    return { result: false, message: `Unknown code '${c.code}' in CodeSystem ${r.system}${partial}` };
  }
  const displays = [concept.display, ...concept.designation.map((d) => d.value)].filter((d): d is string => !!d);
  const norm = (s: string) => s.trim().replace(/\s+/g, ' ').toLowerCase();
  if (c.display !== undefined && displays.length && !displays.some((d) => norm(d) === norm(c.display!))) {
    return {
      result: false, display: concept.display, wrongDisplay: true,
      message: `Wrong display '${c.display}' for ${r.system}#${c.code}: valid displays are ${[...new Set(displays)].map((d) => `'${d}'`).join(', ')}`,
    };
  }
  return { result: true, display: concept.display };
}

// ---------------------------------------------------------------------------------------------
// $lookup

/** system + code (+ version), or coding; the instance gives the system. */
function systemAndCode(p: OpParams, op: string, id: string | undefined, suffix = '', codeName = 'code', codingName = 'coding'): { system: string; code: string; version?: string; stated?: string } {
  const code = p.str(codeName);
  const coding = p.coding(codingName);
  if ((code !== undefined) === !!coding) throw errors.invalid(`${op} needs ${codeName} or ${codingName}${suffix} (one of them)`, codeName);
  const system = p.str('system');
  const version = p.str('version');
  if (coding) {
    if (!coding.code) throw errors.invalid(`${op}: ${codingName} has no code`, codingName);
    if (system !== undefined && coding.system !== undefined && coding.system !== system) {
      throw errors.invalid(`${op}: ${codingName}'s system ${coding.system} is not the system ${system}`, codingName);
    }
    if (version !== undefined && coding.version !== undefined && coding.version !== version) {
      throw errors.invalid(`${op}: ${codingName}'s version ${coding.version} is not the version ${version}`, codingName);
    }
    const stated = coding.system ?? system;
    const instance = codeSystemRef(id);
    if (!instance && !stated) throw errors.invalid(`${op}: ${codingName} needs a system`, codingName);
    return { system: instance ?? stated!, code: coding.code, version: coding.version ?? version, stated };
  }
  const instance = codeSystemRef(id);
  if (!instance && system === undefined) throw errors.invalid(`${op}: ${codeName} needs a system (or call it on CodeSystem/[id])`, 'system');
  return { system: instance ?? system!, code: code!, version, stated: system };
}

/** GET/POST [base]/CodeSystem/$lookup, [base]/CodeSystem/[id]/$lookup. */
export async function lookupOperation(ctx: FhirContext, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const op = '$lookup';
  const p = new OpParams(op, req);
  p.refuse('date');
  const { system, code, version, stated } = systemAndCode(p, op, id);
  const label = id !== undefined ? `CodeSystem/${id}` : system;
  const r = await knownCodeSystem(ctx, system, code, version, label);
  if (stated !== undefined && stated !== r.system) throw errors.invalid(`${op}: the system ${stated} is not the CodeSystem ${label} (${r.system})`, 'system');
  const c = r.concept;
  if (!c) throw errors.notFound(`The code '${code}' is not in CodeSystem ${r.system}${r.complete ? '' : ' (whose content here is partial)'}`);
  // property: which ones the client wants (all when none is named).
  const wanted = new Set((p.has('property') ? propertyNames(p) : []));
  const want = (name: string) => wanted.size === 0 || wanted.has(name);
  const out: (ParametersParameter | undefined)[] = [
    { name: 'name', valueString: r.name },
    r.version ? { name: 'version', valueString: r.version } : undefined,
    { name: 'display', valueString: c.display ?? code },
  ];
  if (want('designation')) {
    for (const d of c.designation) {
      const part: ParametersParameter[] = [];
      if (d.language) part.push({ name: 'language', valueCode: d.language });
      if (d.use) part.push({ name: 'use', valueCoding: d.use });
      part.push({ name: 'value', valueString: d.value });
      out.push({ name: 'designation', part });
    }
  }
  const property = (name: string, value: ParametersParameter) => out.push({ name: 'property', part: [{ name: 'code', valueCode: name }, { ...value, name: 'value' }] });
  if (c.definition && want('definition')) property('definition', { name: 'value', valueString: c.definition });
  for (const prop of c.property) {
    if (!want(prop.code)) continue;
    const value: ParametersParameter = { name: 'value' };
    for (const [k, v] of Object.entries(prop)) if (k.startsWith('value')) (value as unknown as Record<string, unknown>)[k] = v;
    property(prop.code, value);
  }
  const declared = new Set(c.property.map((x) => x.code));
  if (want('parent') && !declared.has('parent')) for (const parent of c.parents) property('parent', { name: 'value', valueCode: parent });
  if (want('child') && !declared.has('child')) for (const child of c.children) property('child', { name: 'value', valueCode: child });
  return parameters(out);
}

function propertyNames(p: OpParams): string[] {
  // property is 0..*: read each occurrence.
  const names: string[] = [];
  for (const x of p.all('property')) {
    const v = x.valueCode ?? x.valueString;
    if (!v) throw errors.invalid('$lookup: property takes codes', 'property');
    names.push(...v.split(',').map((s) => s.trim()).filter(Boolean));
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// $subsumes

/** GET/POST [base]/CodeSystem/$subsumes, [base]/CodeSystem/[id]/$subsumes. */
export async function subsumesOperation(ctx: FhirContext, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const op = '$subsumes';
  const p = new OpParams(op, req);
  const a = systemAndCode(p, op, id, ' for A', 'codeA', 'codingA');
  const b = systemAndCode(p, op, id, ' for B', 'codeB', 'codingB');
  if (a.system !== b.system) throw errors.invalid(`${op}: codingA (${a.system}) and codingB (${b.system}) are of different systems; this server tests subsumption within one CodeSystem`);
  const version = a.version ?? b.version;
  if (a.version !== undefined && b.version !== undefined && a.version !== b.version) throw errors.invalid(`${op}: codingA and codingB name different versions`);
  const label = id !== undefined ? `CodeSystem/${id}` : a.system;
  if (id !== undefined && (a.stated !== undefined || b.stated !== undefined)) {
    const cs = await knownCodeSystem(ctx, a.system, a.code, version, label);
    for (const stated of [a.stated, b.stated]) {
      if (stated !== undefined && stated !== cs.system) throw errors.invalid(`${op}: the system ${stated} is not the CodeSystem ${label} (${cs.system})`, 'system');
    }
  }
  const outcome = await subsumption({ ex: ctx.ex }, a.system, a.code, b.code, version);
  if (!outcome) throw notFound(`CodeSystem ${label}${version ? ` (version ${version})` : ''}`);
  return parameters([{ name: 'outcome', valueCode: outcome }]);
}
