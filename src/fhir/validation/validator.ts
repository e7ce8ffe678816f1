// The profile validator: walks a resource against the snapshot of each StructureDefinition it
// must conform to (its base type, the profiles it declares, the profiles asked for) and reports
// every problem as an OperationOutcome issue with a FHIRPath expression.
//
// Why our own walker rather than @medplum/core's validateResource (which still checks the R4
// structure of every write, see ../validate.ts): French profiles are mostly slicing — INS and
// RPPS identifiers sliced on type/system, extensions sliced on url — and validating each item
// against the slice it matches (its own cardinalities, patterns and children), closed and
// ordered slicing, profile/exists discriminators, extension contexts and terminology bindings
// need the snapshot itself, element by element. Invariants run on HL7's fhirpath.js with the R4
// model (compiled once per expression); ele-1 and ext-1, which apply to every element, are
// checked natively. The walk is synchronous; terminology bindings and referenced resources are
// collected during the walk and checked afterwards (they may need the database).
import type { Bundle, ElementDefinitionConstraint, OperationOutcomeIssue, Questionnaire, Resource, StructureDefinition } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { catalog } from '../conformance/catalog.ts';
import { isResourceType } from '../definitions.ts';
import { checkBundle, resolveInBundle } from './bundle.ts';
import { checkQuestionnaire } from './questionnaire.ts';
import { choiceKey, compileStructure, type CompiledStructure, type ElementNode } from './elements.ts';
import { isPrimitive, normalTypeCode, PRIMITIVE_JSON, primitiveProblem } from './primitives.ts';

const CORE = 'http://hl7.org/fhir/StructureDefinition/';
// Checked natively: ele-1 and ext-1 apply everywhere; txt-1/txt-2 use htmlChecks(), which fhirpath.js lacks;
// dom-3 applies as(canonical) to a collection, which fhirpath.js refuses (it wants a singleton).
const NATIVE_CONSTRAINTS = new Set(['ele-1', 'ext-1', 'txt-1', 'txt-2', 'dom-3']);
/**
 * R4 invariants whose expression says other than their own human text, by key and published
 * expression: the corrected expression is evaluated instead.
 */
const CORRECTED_INVARIANTS: Record<string, Record<string, string>> = {
  // "If there are more than one enableWhen, enableBehavior must be specified" (R5 corrects > 2 to > 1).
  'que-12': { 'enableWhen.count() > 2 implies enableBehavior.exists()': 'enableWhen.count() > 1 implies enableBehavior.exists()' },
  // "the value must be a boolean": answer is a FHIR boolean, which fhirpath.js keeps apart from System.Boolean.
  'que-7': { "operator = 'exists' implies (answer is Boolean)": "operator = 'exists' implies (answer is boolean)" },
};
const ABSOLUTE_URI = /^[a-z][a-z0-9+.-]*:/i;
/** Rules of a resource type beyond its StructureDefinition, by type (bundle.ts, questionnaire.ts). */
const RESOURCE_RULES: Record<string, (resource: Resource, path: string) => OperationOutcomeIssue[]> = {
  Bundle: (r, path) => checkBundle(r as Bundle, path),
  Questionnaire: (r, path) => checkQuestionnaire(r as Questionnaire, path),
};
const LEXICAL_BASE64 = /^[\sA-Za-z0-9+/=]*$/;
const XML_ENTITIES = new Set(['&lt;', '&gt;', '&amp;', '&quot;', '&apos;']);
const HYPERLINK_SCHEMES = new Set(['http', 'https', 'ftp', 'mailto', 'tel', 'data']);
/** Extension contexts R4's own definitions use beyond what the extension declares: every 4.0.1 snapshot puts structuredefinition-fhir-type on ElementDefinition.type. */
const EXTRA_CONTEXTS: Record<string, string[]> = { 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type': ['ElementDefinition.type'] };
/** URLs at a domain reserved for examples (RFC 2606: example.org, example.com, example.net and their subdomains). */
const EXAMPLE_DOMAIN = /^https?:\/\/([^/]+\.)?example\.(org|com|net)(\/|$)/;

export type Severity = 'error' | 'warning' | 'information';

export interface WalkOptions {
  /** What to do with an extension whose definition is unknown (modifier extensions are always errors). */
  unknownExtensions: 'ignore' | 'warning' | 'error';
  /** The package ("name#version") unversioned canonicals resolve in first (see ConformanceCatalog.resolve). */
  packageContext?: string;
}

/** A coded value met during the walk, whose binding is checked once the walk is over. */
export interface PendingBinding {
  path: string;
  type: string;
  value: unknown;
  strength: string;
  valueSet: string;
  elementPath: string;
  /** The package the binding's definition comes from (its ValueSet resolves there first). */
  context?: string;
}

/** A reference whose target must conform to one of these profiles, checked after the walk. */
export interface PendingReference {
  path: string;
  reference: string;
  profiles: string[];
  /** The target, when it is contained in the resource or in the same Bundle. */
  target?: Resource;
  /** The package of the profile that asks: its own dependencies resolve the target profiles. */
  context?: string;
}

interface Item {
  value: unknown;
  /** The primitive's `_name` companion (id, extension). */
  ext?: Record<string, unknown>;
  path: string;
}

type Compiled = (resource: unknown, env: Record<string, unknown>) => unknown[];
const compiledPaths = new Map<string, Compiled | Error>();

function compileInvariant(base: string, expression: string): Compiled | Error {
  const key = `${base}\u0000${expression}`;
  let fn = compiledPaths.get(key);
  if (!fn) {
    try {
      fn = fhirpath.compile({ base, expression }, r4Model, { resolveInternalTypes: true, traceFn: () => undefined }) as unknown as Compiled;
    } catch (err) {
      fn = err as Error;
    }
    compiledPaths.set(key, fn);
  }
  return fn;
}

export function issueAt(severity: Severity | 'fatal', code: string, text: string, expression?: string): OperationOutcomeIssue {
  const i: OperationOutcomeIssue = { severity, code: code as OperationOutcomeIssue['code'], details: { text } };
  if (expression) i.expression = [expression];
  return i;
}

function deepEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || typeof a !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEquals(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => deepEquals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** A pattern matches when every value it has is in the instance (arrays: each pattern item matches some instance item). */
export function matchesPattern(value: unknown, pattern: unknown): boolean {
  if (pattern === null || typeof pattern !== 'object') return value === pattern;
  if (Array.isArray(pattern)) {
    const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
    return pattern.every((p) => values.some((v) => matchesPattern(v, p)));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.entries(pattern).every(([k, p]) => matchesPattern((value as Record<string, unknown>)[k], p));
}

/** The values at a discriminator path (dotted names, `$this`, extension('url'), resolve() is not followed). */
function valuesAt(value: unknown, path: string): unknown[] {
  let current: unknown[] = [value];
  if (path === '$this') return current;
  const steps = path.match(/extension\('[^']*'\)|extension\("[^"]*"\)|[^.]+/g) ?? [];
  for (const step of steps) {
    const next: unknown[] = [];
    const ext = /^extension\(['"](.*)['"]\)$/.exec(step);
    for (const v of current) {
      if (typeof v !== 'object' || v === null) continue;
      const o = v as Record<string, unknown>;
      if (ext) {
        for (const e of (o.extension as Record<string, unknown>[] | undefined) ?? []) if (e?.url === ext[1]) next.push(e);
        continue;
      }
      if (step === 'resolve()' || step.startsWith('ofType(')) {
        next.push(v);
        continue;
      }
      let found = o[step];
      if (found === undefined) {
        // A choice element named without its type: value → valueQuantity, valueString...
        const key = Object.keys(o).find((k) => k.startsWith(step) && /^[A-Z]/.test(k.slice(step.length)));
        if (key) found = o[key];
      }
      if (Array.isArray(found)) next.push(...found);
      else if (found !== undefined) next.push(found);
    }
    current = next;
  }
  return current;
}

let typeStructures = new WeakMap<ElementNode, Map<string, CompiledStructure | undefined>>();
let typeStructuresAt = -1;

/** One walk of one resource against one StructureDefinition. */
export class Walker {
  readonly issues: OperationOutcomeIssue[] = [];
  readonly bindings: PendingBinding[] = [];
  readonly references: PendingReference[] = [];
  private readonly resources: Resource[] = [];
  private root: Resource | undefined;
  private readonly options: WalkOptions;
  /** The package of the definition being walked (its canonicals resolve there first). */
  private context: string | undefined;
  /** Issue paths of the resources being walked (outermost first), to give extension contexts paths from their resource. */
  private readonly resourcePaths: string[] = [];
  /** The Bundles being walked (outermost first): references made in their entries resolve there. */
  private readonly bundles: { bundle: Bundle; path: string }[] = [];

  constructor(options: WalkOptions) {
    this.options = options;
    this.context = options.packageContext;
  }

  private structure(canonical: string): StructureDefinition | undefined {
    return catalog.structure(canonical, this.context)?.sd;
  }

  /** An issue path made relative to the resource it is in: Bundle.entry[0].resource.name[0] → Patient.name. */
  private elementPath(path: string): string {
    const prefix = this.resourcePaths.at(-1) ?? '';
    const type = this.resources.at(-1)?.resourceType ?? '';
    return holderPath(path.startsWith(prefix) ? type + path.slice(prefix.length) : path);
  }

  private add(severity: Severity, code: string, text: string, path: string): void {
    this.issues.push(issueAt(severity, code, text, path));
  }

  /** Validates a resource (or a resource nested in another) against a StructureDefinition with a snapshot. */
  walkResource(resource: Resource, sd: StructureDefinition, path: string): void {
    const structure = compileStructure(sd);
    if (sd.type !== resource.resourceType && !(sd.type === 'Resource' || sd.type === 'DomainResource')) {
      this.add('error', 'structure', `The profile ${sd.url} is for ${sd.type}, not ${resource.resourceType}`, path);
      return;
    }
    const outer = this.root === undefined;
    if (outer) this.root = resource;
    this.resources.push(resource);
    this.resourcePaths.push(path);
    const context = this.context;
    this.context = catalog.originOf(sd) ?? context;
    const bundle = resource.resourceType === 'Bundle';
    if (bundle) this.bundles.push({ bundle: resource as Bundle, path });
    // The rules a resource type's page states beyond its definition, once (with its base definition).
    if (sd.url === CORE + resource.resourceType) this.issues.push(...(RESOURCE_RULES[resource.resourceType]?.(resource, path) ?? []));
    try {
      // Resource.id is an id (1 to 64 of A-Z a-z 0-9 - .), though its snapshot types it System.String.
      const idProblem = typeof resource.id === 'string' ? primitiveProblem('id', resource.id) : undefined;
      if (idProblem) this.add('error', 'value', `Invalid resource id '${resource.id}': it ${idProblem} (1 to 64 letters, digits, '-' or '.')`, `${path}.id`);
      this.checkConstraints(resource, structure.root, path, structure.root.path);
      this.walkChildren(resource as unknown as Record<string, unknown>, structure.root.children, path, structure, { paths: [resource.resourceType], type: resource.resourceType }, true);
    } finally {
      this.resources.pop();
      this.resourcePaths.pop();
      if (bundle) this.bundles.pop();
      this.context = context;
      if (outer) this.root = undefined;
    }
  }

  private walkChildren(
    obj: Record<string, unknown>,
    children: ElementNode[],
    path: string,
    structure: CompiledStructure,
    holder: Holder,
    isResource = false
  ): void {
    const seen = new Set<string>(isResource ? ['resourceType'] : []);
    for (const child of children) {
      for (const { key, type, items } of this.itemsOf(obj, child, path, seen)) {
        const count = items.length;
        const shown = `${path}.${child.choice ? child.name.slice(0, -3) : key}`;
        if (count < child.min) {
          this.add('error', 'required', `${child.id}: minimum required = ${child.min}, but only found ${count}`, shown);
        } else if (count > child.max) {
          this.add('error', 'structure', `${child.id}: max allowed = ${child.max}, but found ${count}`, shown);
        }
        const slices = child.slices.length ? this.assignSlices(items, child, type, structure) : undefined;
        items.forEach((item, i) => this.walkItem(item, slices?.[i] ?? child, type, structure, holder));
      }
    }
    for (const key of Object.keys(obj)) {
      if (seen.has(key)) continue;
      const bare = key.startsWith('_') ? key.slice(1) : key;
      if (seen.has(bare)) continue;
      this.add('error', 'structure', `Unrecognized property '${key}'`, `${path}.${key}`);
    }
  }

  /** The JSON values of one element: for a choice, one group per type present. Marks the keys consumed. */
  private itemsOf(obj: Record<string, unknown>, child: ElementNode, path: string, seen: Set<string>): { key: string; type?: string; items: Item[] }[] {
    const groups: { key: string; type?: string; items: Item[] }[] = [];
    if (child.choice) {
      const stem = child.name.slice(0, -3);
      for (const key of Object.keys(obj)) {
        const bare = key.startsWith('_') ? key.slice(1) : key;
        if (!bare.startsWith(stem) || !/^[A-Z]/.test(bare.slice(stem.length)) || seen.has(bare)) continue;
        const type = child.types.find((t) => choiceKey(child.name, normalTypeCode(t.code)) === bare);
        if (!type) {
          // Only claim names that are a FHIR type; other keys stay unrecognized.
          const suffix = bare.slice(stem.length);
          const asType = isPrimitive(suffix[0].toLowerCase() + suffix.slice(1)) ? suffix[0].toLowerCase() + suffix.slice(1) : suffix;
          if (isPrimitive(asType) || catalog.resolve('StructureDefinition', CORE + asType)) {
            seen.add(bare);
            this.add('error', 'structure', `${child.id}: type ${asType} is not allowed here (allowed: ${child.types.map((t) => t.code).join(', ')})`, `${path}.${bare}`);
          }
          continue;
        }
        seen.add(bare);
        const code = normalTypeCode(type.code);
        const shownPath = `${path}.${stem}.ofType(${code[0].toUpperCase()}${code.slice(1)})`;
        groups.push({ key: bare, type: code, items: this.collect(obj, bare, false, shownPath) });
      }
      if (groups.length > 1) this.add('error', 'structure', `${child.id}: only one of ${groups.map((g) => g.key).join(', ')} may be present`, `${path}.${stem}`);
      if (groups.length === 0) groups.push({ key: stem, items: [] });
      return groups;
    }
    seen.add(child.name);
    return [{ key: child.name, items: this.collect(obj, child.name, child.array, `${path}.${child.name}`, child.id) }];
  }

  private collect(obj: Record<string, unknown>, key: string, array: boolean, shown: string, id?: string): Item[] {
    let value = obj[key];
    let ext = obj[`_${key}`];
    if (value === undefined && ext === undefined) return [];
    if (array) {
      for (const [k, v] of [[key, value], [`_${key}`, ext]] as const) {
        if (v !== undefined && !Array.isArray(v)) this.add('error', 'structure', `${id ?? key}: '${k}' must be a JSON array`, shown);
        else if (Array.isArray(v) && v.length === 0) this.add('error', 'structure', `${id ?? key}: '${k}' is an empty array (leave the property out instead)`, shown);
      }
      value = Array.isArray(value) ? value : value === undefined ? [] : [value];
      ext = Array.isArray(ext) ? ext : ext === undefined ? [] : [ext];
      const values = value as unknown[];
      const exts = ext as unknown[];
      const items: Item[] = [];
      for (let i = 0; i < Math.max(values.length, exts.length); i++) {
        const v = values[i] ?? undefined;
        const e = (exts[i] ?? undefined) as Record<string, unknown> | undefined;
        if (v === undefined && e === undefined) {
          this.add('error', 'structure', `${id ?? key}: null is only allowed where the _${key} array has an entry at the same position`, `${shown}[${i}]`);
          continue;
        }
        items.push({ value: v, ext: e, path: `${shown}[${i}]` });
      }
      return items;
    }
    if (Array.isArray(value) || Array.isArray(ext)) {
      this.add('error', 'structure', `${id ?? key}: '${key}' must be a single value, not an array`, shown);
      return [];
    }
    return [{ value: value === null ? undefined : value, ext: ext as Record<string, unknown> | undefined, path: shown }];
  }

  // ---- slicing --------------------------------------------------------------------------

  private assignSlices(items: Item[], element: ElementNode, type: string | undefined, structure: CompiledStructure): (ElementNode | undefined)[] {
    const slicing = element.ed.slicing;
    const slices = element.slices;
    const assigned = items.map((item) => slices.find((slice) => this.inSlice(item, element, slice, type, structure)));
    // Choice type slices (value[x]:valueQuantity) have no slicing entry: nothing more to check.
    if (!slicing) return assigned;
    const counts = new Map<ElementNode, number>();
    for (const s of assigned) if (s) counts.set(s, (counts.get(s) ?? 0) + 1);
    const shown = items[0]?.path.replace(/\[\d+\]$/, '') ?? element.path;
    for (const slice of slices) {
      const n = counts.get(slice) ?? 0;
      if (n < slice.min) this.add('error', 'required', `${slice.id}: minimum required = ${slice.min}, but only found ${n} (slice '${slice.sliceName}')`, shown);
      else if (n > slice.max) this.add('error', 'structure', `${slice.id}: max allowed = ${slice.max}, but found ${n} (slice '${slice.sliceName}')`, shown);
    }
    let lastIndex = -1;
    let unmatchedSeen = false;
    items.forEach((item, i) => {
      const slice = assigned[i];
      if (!slice) {
        unmatchedSeen = true;
        if (slicing.rules === 'closed') this.add('error', 'structure', `${element.id}: this element does not match any known slice and the slicing is closed (${this.describeSlicing(element)})`, item.path);
        return;
      }
      if (slicing.rules === 'openAtEnd' && unmatchedSeen) this.add('error', 'structure', `${element.id}: slice '${slice.sliceName}' comes after an element matching no slice, but the slicing is open at the end only`, item.path);
      const index = slices.indexOf(slice);
      if (slicing.ordered && index < lastIndex) this.add('error', 'structure', `${element.id}: slice '${slice.sliceName}' is out of order (the slicing is ordered)`, item.path);
      lastIndex = Math.max(lastIndex, index);
    });
    return assigned;
  }

  private describeSlicing(element: ElementNode): string {
    return (element.ed.slicing?.discriminator ?? []).map((d) => `${d.type}:${d.path}`).join(', ') || 'no discriminator';
  }

  private inSlice(item: Item, element: ElementNode, slice: ElementNode, type: string | undefined, structure: CompiledStructure): boolean {
    const slicing = element.ed.slicing;
    if (!slicing) {
      // Type slices of a choice element.
      return !!type && slice.types.some((t) => normalTypeCode(t.code) === type);
    }
    const discriminators = slicing.discriminator ?? [];
    if (discriminators.length === 0) return false; // no discriminator: slices are matched by profile validation only
    return discriminators.every((d) => {
      const values = valuesAt(item.value, d.path);
      switch (d.type) {
        case 'value':
        case 'pattern': {
          const expected = this.expectedAt(slice, d.path, structure);
          if (expected === undefined) return false;
          return values.some((v) => (expected.kind === 'fixed' ? deepEquals(v, expected.value) : matchesPattern(v, expected.value)));
        }
        case 'exists': {
          const target = d.path === '$this' ? slice : this.descendant(slice, d.path, structure);
          const mustExist = (target?.min ?? 0) > 0;
          const mustNotExist = target?.max === 0;
          return mustExist ? values.length > 0 : mustNotExist ? values.length === 0 : true;
        }
        case 'type': {
          const target = d.path === '$this' ? slice : this.descendant(slice, d.path, structure);
          const allowed = (target?.types ?? []).map((t) => normalTypeCode(t.code));
          return values.some((v) => {
            const t = typeof v === 'object' && v !== null && 'resourceType' in v ? (v as Resource).resourceType : type;
            return t !== undefined && allowed.includes(t);
          });
        }
        case 'profile': {
          const target = d.path === '$this' ? slice : this.descendant(slice, d.path, structure);
          const profiles = (target?.types ?? []).flatMap((t) => (d.path.endsWith('resolve()') ? [] : t.profile ?? []));
          if (!profiles.length) return false;
          return values.some((v) => profiles.some((p) => this.conforms(v, p, type)));
        }
        default:
          return false;
      }
    });
  }

  /** Whether a value conforms to a profile (a separate walk: profile discriminators, referenced resources); false if the profile is unknown. */
  conforms(value: unknown, profile: string, type?: string): boolean {
    const sd = this.structure(profile);
    if (!sd) return false;
    const w = new Walker({ ...this.options, packageContext: this.context });
    if (typeof value === 'object' && value !== null && 'resourceType' in value) w.walkResource(value as Resource, sd, (value as Resource).resourceType);
    else {
      const structure = compileStructure(sd);
      w.walkItem({ value, path: sd.type }, structure.root, type ?? sd.type, structure, { paths: [sd.type], type: sd.type });
    }
    return !w.issues.some((i) => i.severity === 'error');
  }

  /** The fixed or pattern value a slice sets at a discriminator path. */
  private expectedAt(slice: ElementNode, path: string, structure: CompiledStructure): { kind: 'fixed' | 'pattern'; value: unknown } | undefined {
    for (const target of path === '$this' ? [slice] : this.descendants(slice, path, structure)) {
      if (target.fixed !== undefined) return { kind: 'fixed', value: target.fixed };
      if (target.pattern !== undefined) return { kind: 'pattern', value: target.pattern };
    }
    // Extensions sliced by url, where the slice names its extension by profile only.
    if (path === 'url') {
      const profile = slice.types.find((t) => t.code === 'Extension')?.profile?.[0];
      if (profile) return { kind: 'fixed', value: profile.split('|')[0] };
    }
    return undefined;
  }

  /** The element at a dotted path below a node (in the profile, else in its type's definition). */
  private descendant(node: ElementNode, path: string, structure: CompiledStructure): ElementNode | undefined {
    return this.descendants(node, path, structure)[0];
  }

  /**
   * The elements at a dotted path below a node: through the unsliced element and through its
   * slices (code.coding.code may be fixed in the slice coding:SBPCode only).
   */
  private descendants(node: ElementNode, path: string, structure: CompiledStructure): ElementNode[] {
    let current: ElementNode[] = [node];
    for (const step of path.split('.')) {
      const name = step.replace(/^ofType\(.*\)$/, '');
      if (!name) continue;
      const next: ElementNode[] = [];
      for (const n of current) {
        const child = this.childrenOf(n, structure, undefined).find((c) => c.name === name || (c.choice && c.name.slice(0, -3) === name));
        if (child) next.push(child, ...child.slices);
      }
      current = next;
    }
    return current;
  }

  /** The children to validate a complex value against: unrolled in the profile, else from its type. */
  private childrenOf(node: ElementNode, structure: CompiledStructure, type: string | undefined): ElementNode[] {
    if (node.children.length) return node.children;
    if (node.contentReference) return structure.byId.get(node.contentReference)?.children ?? [];
    const code = type ?? (node.types.length === 1 ? normalTypeCode(node.types[0].code) : undefined);
    if (!code || isPrimitive(code)) return [];
    return this.typeStructure(node, code)?.root.children ?? [];
  }

  // ---- one value ---------------------------------------------------------------------------

  walkItem(item: Item, node: ElementNode, type: string | undefined, structure: CompiledStructure, holder: Holder): void {
    const code = type ?? (node.contentReference ? 'BackboneElement' : node.types.length === 1 ? typeCodeOf(node.types[0]) : node.types.length ? undefined : 'BackboneElement');
    const value = item.value;
    if (code && isPrimitive(code)) {
      this.walkPrimitive(item, node, code, holder);
      return;
    }
    if (code === 'Resource' || (code && isResourceType(code)) || (!code && typeof value === 'object' && value !== null && 'resourceType' in value)) {
      this.walkNested(value, item.path, code);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.add('error', 'structure', `${node.id}: expected a JSON object (${code ?? 'element'}), found ${Array.isArray(value) ? 'an array' : typeof value}`, item.path);
      return;
    }
    const obj = value as Record<string, unknown>;
    if (!Object.keys(obj).some((k) => k !== 'id')) {
      this.add('error', 'invariant', `${node.id}: all FHIR elements must have a @value or children (ele-1)`, item.path);
      return;
    }
    if (node.fixed !== undefined && !deepEquals(obj, node.fixed)) {
      this.add('error', 'value', `${node.id}: the value must be exactly ${JSON.stringify(node.fixed)}`, item.path);
    }
    if (node.pattern !== undefined && !matchesPattern(obj, node.pattern)) {
      this.add('error', 'value', `${node.id}: the value must match the pattern ${JSON.stringify(node.pattern)}`, item.path);
    }
    this.noteBinding(node, code ?? '', obj, item.path);
    if (code === 'Reference') this.checkReference(obj, node, item.path);
    this.checkDatatype(obj, code, item.path);
    const here: Holder = { paths: [this.elementPath(item.path), node.path, node.ed.base?.path ?? node.path], type: code ?? 'BackboneElement' };
    if (code === 'Extension') {
      if (!this.walkExtension(obj, node, item.path, structure, holder)) return;
    }
    this.checkConstraints(obj, node, item.path, node.path);
    // The invariants of the type itself (per-1 on Period, eld-13 on ElementDefinition), which the element's definition does not repeat.
    const ts = code && code !== 'Extension' && code !== 'BackboneElement' && !node.contentReference ? this.typeStructure(node, code) : undefined;
    if (ts) this.checkConstraints(obj, ts.root, item.path, ts.root.path);
    const children = this.childrenOf(node, structure, code);
    if (children.length) {
      const childStructure = node.children.length || node.contentReference ? structure : this.typeStructure(node, code) ?? structure;
      this.walkChildren(obj, children, item.path, childStructure, here);
    }
    // A profile on the type, beside children the profile unrolled itself: conform to it too.
    const typeProfile = code && code !== 'Extension' && node.children.length ? node.types.find((t) => normalTypeCode(t.code) === code)?.profile?.[0] : undefined;
    if (typeProfile) {
      const sd = this.structure(typeProfile);
      if (sd) {
        const ts = compileStructure(sd);
        this.checkConstraints(obj, ts.root, item.path, ts.root.path);
        this.walkChildren(obj, ts.root.children, item.path, ts, here);
      }
    }
  }

  private typeStructure(node: ElementNode, code: string | undefined): CompiledStructure | undefined {
    if (!code) return undefined;
    // Asked for every complex value walked: remembered per element, type and package context.
    if (typeStructuresAt !== catalog.version) {
      typeStructures = new WeakMap();
      typeStructuresAt = catalog.version;
    }
    let known = typeStructures.get(node);
    if (!known) typeStructures.set(node, (known = new Map()));
    const key = `${this.context ?? ''}|${code}`;
    if (known.has(key)) return known.get(key);
    const profile = node.types.find((t) => normalTypeCode(t.code) === code)?.profile?.[0];
    const sd = (profile ? this.structure(profile) : undefined) ?? this.structure(CORE + code);
    const structure = sd ? compileStructure(sd) : undefined;
    known.set(key, structure);
    return structure;
  }

  private walkPrimitive(item: Item, node: ElementNode, code: string, holder: Holder): void {
    const { value, ext, path } = item;
    if (value !== undefined) {
      const expected = PRIMITIVE_JSON[code];
      if (typeof value !== expected) {
        this.add('error', 'structure', `${node.id}: a ${code} must be a JSON ${expected}, found ${Array.isArray(value) ? 'an array' : typeof value}`, path);
      } else {
        const problem = primitiveProblem(code, value);
        if (problem) this.add('error', 'value', `${node.id}: the value '${String(value)}' ${problem}`, path);
        if (code === 'xhtml') this.checkXhtml(String(value), path);
      }
      if (node.fixed !== undefined && value !== node.fixed) this.add('error', 'value', `${node.id}: the value must be '${String(node.fixed)}', not '${String(value)}'`, path);
      if (node.pattern !== undefined && value !== node.pattern) this.add('error', 'value', `${node.id}: the value must be '${String(node.pattern)}', not '${String(value)}'`, path);
      this.noteBinding(node, code, value, path);
    }
    if (ext !== undefined) {
      if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) {
        this.add('error', 'structure', `${node.id}: the _${node.name} companion must be a JSON object`, path);
      } else {
        for (const k of Object.keys(ext)) if (k !== 'id' && k !== 'extension') this.add('error', 'structure', `Unrecognized property '${k}' in the primitive's extensions`, `${path}.${k}`);
        const structure = this.structure(CORE + 'Element');
        const extensions = ext.extension;
        if (structure && Array.isArray(extensions)) {
          const es = compileStructure(structure);
          const extNode = es.root.children.find((c) => c.name === 'extension');
          const here: Holder = { paths: [this.elementPath(path), node.path, node.ed.base?.path ?? node.path], type: code };
          if (extNode) extensions.forEach((e, i) => this.walkItem({ value: e, path: `${path}.extension[${i}]` }, extNode, 'Extension', es, here));
        }
        if (value === undefined && !(Array.isArray(extensions) && extensions.length)) this.add('error', 'invariant', `${node.id}: all FHIR elements must have a @value or children (ele-1)`, path);
      }
    }
    if (value !== undefined) this.checkConstraints(value, node, path, node.path, code);
    void holder;
  }

  /** What the R4 datatypes page says of a datatype's values that its definition cannot express. */
  private checkDatatype(obj: Record<string, unknown>, code: string | undefined, path: string): void {
    // A code system and an identifier namespace are absolute URIs (terminologies.html, datatypes.html#Identifier).
    if ((code === 'Coding' || code === 'Identifier') && typeof obj.system === 'string' && !ABSOLUTE_URI.test(obj.system)) {
      this.add('error', 'value', `${code}.system must be an absolute URI, not '${obj.system}'`, `${path}.system`);
    }
    // Attachment.size: "the number of bytes of data that make up this content (before base64 encoding)".
    if (code === 'Attachment' && typeof obj.data === 'string' && typeof obj.size === 'number' && LEXICAL_BASE64.test(obj.data)) {
      const actual = Buffer.from(obj.data.replace(/\s/g, ''), 'base64').length;
      if (actual !== obj.size) this.add('error', 'value', `Attachment.size says ${obj.size} bytes, but the data has ${actual}`, path);
    }
  }

  private checkXhtml(div: string, path: string): void {
    if (!/^\s*<div[\s>]/.test(div) || !/xmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["']/.test(div)) {
      this.add('error', 'value', 'The narrative must be a <div> in the XHTML namespace (xmlns="http://www.w3.org/1999/xhtml")', path);
    }
    const forbidden = /<\s*(script|form|input|iframe|object|embed|base|link|meta|style|head|body|html)\b/i.exec(div);
    if (forbidden) this.add('error', 'value', `The narrative must not contain a <${forbidden[1]}> element (txt-1)`, path);
    if (/\son[a-z]+\s*=/i.test(div)) this.add('error', 'value', 'The narrative must not contain event attributes such as onclick (txt-1)', path);
    if (!/<img\b/i.test(div) && div.replace(/<[^>]*>/g, '').replace(/&nbsp;|&#160;/g, ' ').trim() === '') this.add('error', 'value', 'The narrative must have some non-whitespace content (txt-2)', path);
    // XHTML is XML without a DTD: only XML's own named entities exist (&nbsp; is &#160;).
    for (const m of new Set(div.match(/&[A-Za-z][A-Za-z0-9]*;/g) ?? [])) {
      if (!XML_ENTITIES.has(m)) this.add('error', 'value', `The narrative uses the entity ${m}, which XHTML without a DTD does not define (use a character reference such as &#174;)`, path);
    }
    // A link the reader can follow: a relative URL, a #fragment, or a scheme a browser opens.
    for (const m of div.matchAll(/<a\b[^>]*\shref\s*=\s*["']([a-zA-Z][a-zA-Z0-9+.-]*):[^"']*["']/g)) {
      if (!HYPERLINK_SCHEMES.has(m[1].toLowerCase())) this.add('error', 'value', `The narrative links to '${m[0].replace(/^.*href\s*=\s*["']|["']$/g, '')}', whose scheme '${m[1]}' is not one a reader can follow (${[...HYPERLINK_SCHEMES].join(', ')})`, path);
    }
  }

  /** Returns false when the extension has been validated against its own definition already. */
  private walkExtension(obj: Record<string, unknown>, node: ElementNode, path: string, structure: CompiledStructure, holder: Holder): boolean {
    const hasValue = Object.keys(obj).some((k) => k.startsWith('value'));
    const hasChildren = Array.isArray(obj.extension) && obj.extension.length > 0;
    if (hasValue && hasChildren) this.add('error', 'invariant', 'Must have either extensions or value[x], not both (ext-1)', path);
    if (!hasValue && !hasChildren) this.add('error', 'invariant', 'Must have either extensions or value[x] (ext-1)', path);
    const url = obj.url;
    if (typeof url !== 'string') {
      this.add('error', 'required', 'An extension must have a url', `${path}.url`);
      return true;
    }
    const profiled = node.types.find((t) => t.code === 'Extension')?.profile?.[0];
    // Extensions inside a complex extension's definition are named by relative url; elsewhere the url is absolute.
    if (holder.type !== 'Extension' && !ABSOLUTE_URI.test(url)) {
      this.add('error', 'value', `The extension url '${url}' must be an absolute URL`, `${path}.url`);
      return true;
    }
    if (profiled || node.sliceName || !url.includes(':')) {
      if (profiled && !node.children.length) {
        const ext = this.structure(profiled);
        if (ext) {
          this.walkExtensionDefinition(obj, ext, path, holder);
          return false;
        }
        this.unknownExtension(profiled, path, node.name === 'modifierExtension');
      }
      return true;
    }
    const ext = this.structure(url);
    if (!ext) {
      this.unknownExtension(url, path, node.name === 'modifierExtension');
      return true;
    }
    this.walkExtensionDefinition(obj, ext, path, holder);
    return false;
    void structure;
  }

  private walkExtensionDefinition(obj: Record<string, unknown>, ext: StructureDefinition, path: string, holder: Holder): void {
    if (ext.type !== 'Extension') {
      this.add('error', 'structure', `${ext.url} is a ${ext.type} definition, not an extension`, path);
      return;
    }
    this.checkContext(ext, path, holder);
    const es = compileStructure(ext);
    this.checkConstraints(obj, es.root, path, 'Extension');
    this.walkChildren(obj, es.root.children, path, es, { paths: [this.elementPath(path)], type: 'Extension' });
  }

  private unknownExtension(url: string, path: string, modifier: boolean): void {
    // Domains reserved for examples (RFC 2606) name illustrative extensions, never definitions
    // anyone can fetch: they are accepted as such, with a warning, like the reference validator does.
    if (EXAMPLE_DOMAIN.test(url)) {
      this.add('warning', 'extension', `The extension ${url} is at a domain reserved for examples, so its content is not checked`, path);
      return;
    }
    if (modifier) {
      this.add('error', 'extension', `The modifier extension ${url} is unknown, so the meaning of this resource cannot be established`, path);
      return;
    }
    // R4 core extensions are all known: an unknown one under hl7.org/fhir is an error, unless it
    // names another version (the extensions package, hl7.fhir.uv.extensions, is not shipped).
    if (url.startsWith(CORE) && !url.includes('|')) {
      this.add('error', 'extension', `The extension ${url} is unknown (it is not an R4 core extension)`, path);
      return;
    }
    if (this.options.unknownExtensions === 'ignore') return;
    this.add(this.options.unknownExtensions, 'extension', `The extension ${url} is unknown here, so its content is not checked`, path);
  }

  private checkContext(ext: StructureDefinition, path: string, holder: Holder): void {
    const contexts = [...(ext.context ?? [])];
    if (!contexts.length) return;
    for (const expression of EXTRA_CONTEXTS[ext.url] ?? []) contexts.push({ type: 'element', expression });
    const ok = contexts.some((c) => {
      if (c.type === 'fhirpath') return true;
      const e = c.expression;
      if (c.type === 'extension') return holder.type === 'Extension';
      return e === 'Element' || e === 'Base' || e === holder.type || holder.paths.some((p) => p === e || p.startsWith(`${e}.`)) ||
        ((e === 'Resource' || e === 'DomainResource') && isResourceType(holder.type)) || (e === 'BackboneElement' && holder.type === 'BackboneElement');
    });
    if (!ok) {
      this.add('error', 'structure', `The extension ${ext.url} is not allowed to be used at this point (allowed: ${contexts.map((c) => `${c.type}=${c.expression}`).join(', ')})`, path);
    }
  }

  private walkNested(value: unknown, path: string, declared: string | undefined): void {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.add('error', 'structure', `Expected a resource (a JSON object with resourceType)`, path);
      return;
    }
    const type = (value as Resource).resourceType;
    if (typeof type !== 'string' || !isResourceType(type)) {
      this.add('error', 'structure', `Unknown resource type '${String(type)}'`, path);
      return;
    }
    if (declared && declared !== 'Resource' && declared !== type && declared !== 'DomainResource') {
      this.add('error', 'structure', `Expected a ${declared}, found a ${type}`, path);
    }
    const sd = this.structure(CORE + type);
    if (sd) this.walkResource(value as Resource, sd, path);
    // A contained resource's declared profiles resolve as a resource's own do (validation/index.ts),
    // not in the package of the profile being walked: the same everywhere it is checked.
    for (const p of (value as Resource).meta?.profile ?? []) {
      const profile = catalog.structure(p, this.options.packageContext)?.sd;
      if (profile) this.walkResource(value as Resource, profile, path);
      else this.add('warning', 'not-found', `Profile ${p} is not known to this server, so the resource was not checked against it`, `${path}.meta.profile`);
    }
  }

  // ---- invariants, bindings, references --------------------------------------------------

  private checkConstraints(value: unknown, node: ElementNode, path: string, basePath: string, primitiveType?: string): void {
    const constraints = node.ed.constraint;
    if (!constraints?.length) return;
    for (const c of constraints) {
      if (c.key === 'dom-3') this.checkContainedReferenced(value, path, c);
      if (!c.expression || NATIVE_CONSTRAINTS.has(c.key)) continue;
      if (c.severity !== 'error' && c.severity !== 'warning') continue;
      this.evaluate(c, value, path, basePath.replace(/\[x\]$/, ''), primitiveType);
    }
  }

  /** dom-3: each contained resource is referenced from the resource (or another contained one), unless something refers to '#'. */
  private checkContainedReferenced(value: unknown, path: string, c: ElementDefinitionConstraint): void {
    const contained = (value as { contained?: { id?: string }[] }).contained;
    if (!Array.isArray(contained) || !contained.length) return;
    const local = new Set<string>();
    const collect = (v: unknown): void => {
      if (typeof v === 'string') {
        if (v.startsWith('#')) local.add(v);
        // The narrative refers to contained resources too (<img src="#image">).
        else if (v.startsWith('<div')) for (const m of v.matchAll(/\b(?:src|href)\s*=\s*["'](#[^"']*)["']/g)) local.add(m[1]);
      } else if (Array.isArray(v)) v.forEach(collect);
      else if (v && typeof v === 'object') Object.values(v).forEach(collect);
    };
    collect(value);
    if (local.has('#')) return;
    for (const r of contained) {
      if (typeof r?.id === 'string' && !local.has(`#${r.id}`)) {
        this.add('error', 'invariant', `Constraint failed: dom-3: '${c.human}' (the contained resource ${r.id} is not referenced)`, path);
      }
    }
  }

  private evaluate(c: ElementDefinitionConstraint, value: unknown, path: string, basePath: string, primitiveType?: string): void {
    const fn = compileInvariant(primitiveType ? '' : basePath, CORRECTED_INVARIANTS[c.key]?.[c.expression!] ?? c.expression!);
    if (fn instanceof Error) {
      this.add('warning', 'processing', `The invariant ${c.key} could not be compiled (${fn.message}); not checked`, path);
      return;
    }
    let result: unknown[];
    try {
      const resource = this.resources.at(-1);
      // %rootResource: the resource that holds contained ones (a Bundle entry is its own root).
      let i = this.resources.length - 1;
      while (i > 0 && /\.contained\[\d+\]$/.test(this.resourcePaths[i])) i--;
      result = fn(value, { resource, rootResource: this.resources[i] ?? resource });
    } catch (err) {
      this.add('warning', 'processing', `The invariant ${c.key} could not be evaluated (${(err as Error).message}); not checked`, path);
      return;
    }
    if (result.length === 1 && result[0] === true) return;
    if (result.length === 0) return; // an empty result does not fail an invariant (FHIRPath: unknown)
    this.add(c.severity === 'error' ? 'error' : 'warning', 'invariant', `Constraint failed: ${c.key}: '${c.human ?? c.expression}'`, path);
  }

  private noteBinding(node: ElementNode, type: string, value: unknown, path: string): void {
    const b = node.ed.binding;
    if (!b?.valueSet || (b.strength !== 'required' && b.strength !== 'extensible')) return;
    if (!['code', 'Coding', 'CodeableConcept', 'Quantity', 'string', 'uri'].includes(type)) return;
    this.bindings.push({ path, type, value, strength: b.strength, valueSet: b.valueSet, elementPath: node.id, context: this.context });
  }

  private checkReference(ref: Record<string, unknown>, node: ElementNode, path: string): void {
    const reference = ref.reference;
    if (typeof reference !== 'string') return;
    const targets = node.types.find((t) => t.code === 'Reference')?.targetProfile ?? [];
    let target: Resource | undefined;
    let type: string | undefined;
    if (reference.startsWith('#')) {
      // Contained resources refer to each other and to their container through the container.
      const stack = this.resources as (Resource & { contained?: Resource[] })[];
      const container = [...stack].reverse().find((r) => r.contained?.some((c) => c.id === reference.slice(1))) ?? stack.find((r) => r.contained?.length) ?? stack.at(-1);
      target = reference === '#' ? container : container?.contained?.find((r) => r.id === reference.slice(1));
      if (!target) {
        this.add('error', 'not-found', `The reference ${reference} points to no contained resource`, `${path}.reference`);
        return;
      }
      type = target.resourceType;
    } else {
      const m = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(reference) ?? /^([A-Z][A-Za-z]+)\?/.exec(reference);
      type = m?.[1];
      if (type && !isResourceType(type)) {
        this.add('error', 'structure', `The reference ${reference} names an unknown resource type '${type}'`, `${path}.reference`);
        return;
      }
      const found = this.inBundle(reference, path);
      if (found && found.length > 1) {
        this.add('error', 'invalid', `The reference ${reference} matches ${found.length} entries of the Bundle`, `${path}.reference`);
        return;
      }
      target = found?.[0];
      if (target && type && target.resourceType !== type) {
        this.add('error', 'structure', `The reference ${reference} resolves in the Bundle to a ${target.resourceType}`, `${path}.reference`);
        return;
      }
      type ??= target?.resourceType;
    }
    if (typeof ref.type === 'string' && type && ref.type !== type) {
      this.add('error', 'structure', `The reference's type '${ref.type}' does not match its target '${type}'`, `${path}.type`);
    }
    if (!targets.length || !type) return;
    const allowed = new Set<string>();
    const profiles: string[] = [];
    for (const tp of targets) {
      const sd = catalog.resolve<StructureDefinition>('StructureDefinition', tp, this.context);
      const t = sd?.type ?? (tp.startsWith(CORE) ? tp.slice(CORE.length) : undefined);
      if (!t) return; // a target profile we do not know: the allowed types cannot be told
      allowed.add(t);
      if (sd && sd.derivation === 'constraint') profiles.push(tp);
      else if (t === type) profiles.length = 0; // the base type itself is allowed: any instance will do
    }
    if (!allowed.size || allowed.has('Resource') || allowed.has('Any')) return;
    if (!allowed.has(type)) {
      this.add('error', 'structure', `The reference ${reference} points to a ${type}, which is not allowed here (allowed: ${[...allowed].join(', ')})`, `${path}.reference`);
      return;
    }
    const forType = profiles.filter((p) => catalog.resolve<StructureDefinition>('StructureDefinition', p, this.context)?.type === type);
    const baseAllowed = targets.some((tp) => tp === CORE + type);
    if (forType.length && !baseAllowed) this.references.push({ path: `${path}.reference`, reference, profiles: forType, target, context: this.context });
  }

  /** The resources a reference made at this path resolves to in the innermost Bundle holding it (history bundles excepted), or undefined outside Bundles. */
  private inBundle(reference: string, path: string): Resource[] | undefined {
    const b = this.bundles.at(-1);
    if (!b || b.bundle.type === 'history') return undefined;
    const from = path.startsWith(`${b.path}.entry[`) ? Number(/^\[(\d+)\]/.exec(path.slice(b.path.length + 6))?.[1]) : undefined;
    return resolveInBundle(b.bundle, Number.isInteger(from) ? from : undefined, reference).map((i) => b.bundle.entry![i].resource!).filter(Boolean);
  }
}

const FHIR_TYPE = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

/** A type's code; System.String ids and urls say their FHIR type in an extension (id, uri). */
function typeCodeOf(t: { code: string; extension?: { url: string; valueUrl?: string; valueUri?: string }[] }): string {
  const fhirType = t.extension?.find((e) => e.url === FHIR_TYPE);
  return fhirType ? (fhirType.valueUrl ?? fhirType.valueUri ?? normalTypeCode(t.code)) : normalTypeCode(t.code);
}

/** Where an extension sits: the element's paths (from its resource, in the profile, in its base) and its type. */
interface Holder {
  paths: string[];
  type: string;
}

/** An issue path without indexes and type casts: Patient.address[0].line[1] → Patient.address.line. */
function holderPath(path: string): string {
  return path.replace(/\[\d+\]/g, '').replace(/\.ofType\(([A-Za-z]+)\)/g, (_m, t: string) => t);
}
