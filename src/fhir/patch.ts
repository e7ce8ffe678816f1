// FHIR R4 PATCH semantics: RFC 6902 JSON Patch and FHIRPath Patch (fhirpatch.html).
// Both functions work on a deep clone and never mutate their input. A malformed patch document
// throws a 400 (errors.invalid); a well-formed patch that cannot be applied to this resource
// (failed test, missing path, cardinality or type violation) throws a 422 (errors.unprocessable).
import type { Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4';
import { applyPatch } from 'rfc6902';
import type { Operation } from 'rfc6902';
import { errors } from './outcome.ts';

type Json = Record<string, unknown>;

function isJsonObject(value: unknown): value is Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// JSON Patch (RFC 6902)
// ---------------------------------------------------------------------------------------------

const JSON_PATCH_OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
const FORBIDDEN_TOKENS = new Set(['__proto__', 'constructor', 'prototype']);

/** Splits an RFC 6901 pointer into unescaped tokens, or returns undefined if it is malformed. */
function parsePointer(pointer: string): string[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return undefined;
  const tokens: string[] = [];
  for (const raw of pointer.slice(1).split('/')) {
    if (/~(?![01])/.test(raw)) return undefined;
    tokens.push(raw.replace(/~1/g, '/').replace(/~0/g, '~'));
  }
  return tokens;
}

interface PointerTarget {
  exists: boolean;
  value: unknown;
}

/** Resolves a pointer using own properties and valid array indexes only. */
function resolvePointer(doc: unknown, tokens: string[]): PointerTarget {
  let current: unknown = doc;
  for (const token of tokens) {
    if (Array.isArray(current)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token) || Number(token) >= current.length) return { exists: false, value: undefined };
      current = current[Number(token)];
    } else if (current !== null && typeof current === 'object' && hasOwn(current, token)) {
      current = (current as Json)[token];
    } else {
      return { exists: false, value: undefined };
    }
  }
  return { exists: true, value: current };
}

interface ParsedJsonOp {
  op: Operation;
  path: string[];
  from?: string[];
}

function validateJsonPatch(operations: unknown): ParsedJsonOp[] {
  if (!Array.isArray(operations)) throw errors.invalid('A JSON Patch document must be an array of operations');
  return operations.map((candidate, i) => {
    const where = `JSON Patch operation ${i}`;
    if (!isJsonObject(candidate)) throw errors.invalid(`${where} must be a JSON object`);
    const op = candidate.op;
    if (typeof op !== 'string' || !JSON_PATCH_OPS.has(op)) {
      throw errors.invalid(`${where} has an invalid "op" (${JSON.stringify(op)}); expected one of ${[...JSON_PATCH_OPS].join(', ')}`);
    }
    if (typeof candidate.path !== 'string') throw errors.invalid(`${where} (${op}) requires a string "path"`);
    const path = parsePointer(candidate.path);
    if (!path) throw errors.invalid(`${where} (${op}) has a malformed JSON Pointer path: ${JSON.stringify(candidate.path)}`);
    let from: string[] | undefined;
    if (op === 'move' || op === 'copy') {
      if (typeof candidate.from !== 'string') throw errors.invalid(`${where} (${op}) requires a string "from"`);
      from = parsePointer(candidate.from);
      if (!from) throw errors.invalid(`${where} (${op}) has a malformed JSON Pointer from: ${JSON.stringify(candidate.from)}`);
    }
    if ((op === 'add' || op === 'replace' || op === 'test') && !hasOwn(candidate, 'value')) {
      throw errors.invalid(`${where} (${op}) requires a "value"`);
    }
    for (const token of [...path, ...(from ?? [])]) {
      if (FORBIDDEN_TOKENS.has(token)) throw errors.invalid(`${where} (${op}) uses a forbidden path segment "${token}"`);
    }
    return { op: candidate as unknown as Operation, path, from };
  });
}

/** Checks that the parent of an add/move/copy destination exists and can hold the new member. */
function checkDestination(doc: unknown, tokens: string[], pointer: string): void {
  if (tokens.length === 0) throw errors.unprocessable(`JSON Patch cannot replace the whole resource (path "${pointer}")`);
  const parent = resolvePointer(doc, tokens.slice(0, -1));
  if (!parent.exists || parent.value === null || typeof parent.value !== 'object') {
    throw errors.unprocessable(`JSON Patch path ${pointer} does not exist (its parent is missing or is not an object or array)`);
  }
  const key = tokens[tokens.length - 1];
  if (Array.isArray(parent.value) && key !== '-' && (!/^(0|[1-9][0-9]*)$/.test(key) || Number(key) > parent.value.length)) {
    throw errors.unprocessable(`JSON Patch path ${pointer} is not a valid index of an array of length ${parent.value.length}`);
  }
}

/**
 * Applies an RFC 6902 JSON Patch to a copy of `resource`.
 * Malformed patch document → 400; failed `test`, missing path → 422.
 */
export function applyJsonPatch(resource: Resource, operations: unknown): Resource {
  const parsed = validateJsonPatch(operations);
  const doc: unknown = structuredClone(resource);
  parsed.forEach(({ op, path, from }, i) => {
    const pointer = op.path;
    switch (op.op) {
      case 'add':
        checkDestination(doc, path, pointer);
        break;
      case 'remove':
      case 'replace':
        if (path.length === 0) throw errors.unprocessable(`JSON Patch cannot ${op.op} the whole resource`);
        if (!resolvePointer(doc, path).exists) throw errors.unprocessable(`JSON Patch ${op.op}: path ${pointer} does not exist`);
        break;
      case 'test':
        if (!resolvePointer(doc, path).exists) throw errors.unprocessable(`JSON Patch test failed: path ${pointer} does not exist`);
        break;
      case 'move':
      case 'copy':
        if (!resolvePointer(doc, from ?? []).exists) throw errors.unprocessable(`JSON Patch ${op.op}: from ${op.from} does not exist`);
        if (op.op === 'move' && from && from.length === 0) throw errors.unprocessable('JSON Patch cannot move the whole resource');
        checkDestination(doc, path, pointer);
        break;
    }
    let result: { name: string; message: string } | null;
    try {
      [result] = applyPatch(doc, [op]);
    } catch (error) {
      throw errors.unprocessable(`JSON Patch operation ${i} (${op.op} ${pointer}) failed: ${describe(error)}`);
    }
    if (result) {
      if (result.name === 'TestError') {
        throw errors.unprocessable(`JSON Patch test failed at ${pointer}: the value there is not equal to the expected value`);
      }
      if (result.name === 'InvalidOperationError') throw errors.invalid(`JSON Patch operation ${i} is invalid: ${result.message}`);
      throw errors.unprocessable(`JSON Patch operation ${i} (${op.op} ${pointer}) failed: ${result.message}`);
    }
  });
  if (!isJsonObject(doc)) throw errors.unprocessable('The result of the JSON Patch is not a JSON object');
  return doc as unknown as Resource;
}

// ---------------------------------------------------------------------------------------------
// FHIRPath Patch
// ---------------------------------------------------------------------------------------------

/** The R4 model data of the fhirpath package (same object the evaluator uses). */
interface ModelData {
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
  type2Parent: Record<string, string>;
  path2Type: Record<string, unknown>;
  path2Repeating: Record<string, boolean>;
}
const model = r4Model as unknown as ModelData;

/** The parts of fhirpath's internal ResourceNode that locate a result inside the resource. */
interface FpNode {
  data: unknown;
  _data: unknown;
  parentResNode: FpNode | null;
  path: string | null;
  fhirNodeDataType: string | null;
  propName: string | null;
  index: number | null;
}

function isFpNode(value: unknown): value is FpNode {
  return value !== null && typeof value === 'object' && 'parentResNode' in value && 'propName' in value && 'data' in value;
}

const PRIMITIVE_TYPES = new Set([
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant', 'integer', 'integer64',
  'markdown', 'oid', 'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url', 'uuid', 'xhtml',
]);
const NUMERIC_TYPES = new Set(['decimal', 'integer', 'integer64', 'positiveInt', 'unsignedInt']);

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** 'System.String' → 'string', 'DateTime' (choice suffix) → 'dateTime', 'HumanName' stays. */
function normalizeType(type: string): string {
  if (type.startsWith('System.')) {
    const t = type.slice(7);
    return t === 'String' ? 'string' : t.charAt(0).toLowerCase() + t.slice(1);
  }
  const lower = type.charAt(0).toLowerCase() + type.slice(1);
  return PRIMITIVE_TYPES.has(lower) ? lower : type;
}

function isPrimitiveType(type: string): boolean {
  return PRIMITIVE_TYPES.has(type);
}

function primitiveKind(type: string): string {
  if (type === 'boolean') return 'boolean';
  if (NUMERIC_TYPES.has(type)) return 'number';
  return 'string';
}

function isResourceTypeName(type: string): boolean {
  for (let t: string | undefined = type; t; t = model.type2Parent[t]) if (t === 'Resource') return true;
  return false;
}

function derivesFrom(type: string, ancestor: string): boolean {
  for (let t: string | undefined = type; t; t = model.type2Parent[t]) if (t === ancestor) return true;
  return false;
}

interface ElementInfo {
  /** Model path of the element, e.g. Patient.contact.name. */
  path: string;
  /** Allowed (normalised) types. */
  types: string[];
  choice: boolean;
  repeating: boolean;
  /** Where the children of this element are described: a type name or a backbone path. */
  childTypePath: string | null;
}

/**
 * Looks up element `name` of the type (or backbone element) at `typePath`.
 * Returns null when nothing is known about `typePath`, 'unknown' when the type is known but has no such element.
 */
function elementInfo(typePath: string | null, name: string): ElementInfo | null | 'unknown' {
  if (!typePath) return null;
  for (let t: string | undefined = typePath; t; t = model.type2Parent[t]) {
    let p = `${t}.${name}`;
    p = model.pathsDefinedElsewhere[p] ?? p;
    const choice = model.choiceTypePaths[p];
    if (choice) return { path: p, types: choice.map(normalizeType), choice: true, repeating: false, childTypePath: null };
    const type = model.path2Type[p];
    if (typeof type === 'string') {
      return {
        path: p,
        types: [normalizeType(type)],
        choice: false,
        repeating: model.path2Repeating[p] === true,
        childTypePath: type === 'BackboneElement' || type === 'Element' ? p : type,
      };
    }
  }
  const known = typePath in model.type2Parent || model.path2Type[typePath] !== undefined;
  return known ? 'unknown' : null;
}

/** One entry of a (possibly primitive) list: the JSON value and its `_name` companion (id/extension). */
interface Item {
  value: unknown;
  ext: unknown;
}

function readList(container: Json, key: string): Item[] {
  const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);
  const values = asArray(container[key]);
  const exts = asArray(container['_' + key]);
  const items: Item[] = [];
  for (let i = 0; i < Math.max(values.length, exts.length); i++) {
    items.push({ value: values[i] ?? undefined, ext: exts[i] ?? undefined });
  }
  return items;
}

function writeList(container: Json, key: string, items: Item[]): void {
  const hasExt = items.some((it) => it.ext !== undefined && it.ext !== null);
  if (items.length === 0) {
    delete container[key];
    delete container['_' + key];
    return;
  }
  container[key] = items.map((it) => it.value ?? null);
  if (hasExt) container['_' + key] = items.map((it) => it.ext ?? null);
  else delete container['_' + key];
}

function setSingle(container: Json, key: string, item: Item): void {
  if (item.value === undefined || item.value === null) delete container[key];
  else container[key] = item.value;
  if (item.ext === undefined || item.ext === null) delete container['_' + key];
  else container['_' + key] = item.ext;
}

function pruneValue(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (isJsonObject(value)) {
    pruneObject(value);
    return Object.keys(value).length === 0 ? undefined : value;
  }
  return value;
}

/** Removes empty objects, empty lists and list holes left behind by deletions (FHIR JSON forbids them). */
function pruneObject(object: Json): void {
  const bases = new Set(Object.keys(object).map((k) => (k.startsWith('_') && k.length > 1 ? k.slice(1) : k)));
  for (const base of bases) {
    if (Array.isArray(object[base]) || Array.isArray(object['_' + base])) {
      const kept = readList(object, base).filter((it) => {
        it.value = pruneValue(it.value);
        it.ext = pruneValue(it.ext);
        return it.value !== undefined || it.ext !== undefined;
      });
      writeList(object, base, kept);
    } else {
      const hadExt = hasOwn(object, '_' + base);
      const value = pruneValue(object[base]);
      if (value === undefined) delete object[base];
      if (hadExt && pruneValue(object['_' + base]) === undefined) delete object['_' + base];
    }
  }
}

function collectObjects(value: unknown, into: Set<object>): Set<object> {
  if (value !== null && typeof value === 'object') {
    into.add(value);
    for (const child of Array.isArray(value) ? value : Object.values(value)) collectObjects(child, into);
  }
  return into;
}

type PatchType = 'add' | 'insert' | 'delete' | 'replace' | 'move';
const PATCH_TYPES = new Set<string>(['add', 'insert', 'delete', 'replace', 'move']);
const PART_NAMES = new Set(['type', 'path', 'name', 'value', 'index', 'source', 'destination']);

interface PatchOperation {
  type: PatchType;
  path: string;
  name?: string;
  value?: ParametersParameter;
  index?: number;
  source?: number;
  destination?: number;
  /** FHIRPath of the operation inside the Parameters resource, for OperationOutcome.issue.expression. */
  expression: string;
}

function valueKeys(part: Json): string[] {
  return Object.keys(part).filter((k) => /^_?value[A-Z]/.test(k));
}

function partString(part: Json, expression: string, what: string): string {
  const keys = valueKeys(part).filter((k) => !k.startsWith('_'));
  const value = keys.length === 1 && (keys[0] === 'valueString' || keys[0] === 'valueCode' || keys[0] === 'valueUri') ? part[keys[0]] : undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    throw errors.invalid(`FHIRPath Patch operation ${what} must be given as a non-empty valueString`, expression);
  }
  return value;
}

function partInteger(part: Json, expression: string, what: string): number {
  const keys = valueKeys(part).filter((k) => !k.startsWith('_'));
  const value = keys.length === 1 && /^value(Integer|UnsignedInt|PositiveInt)$/.test(keys[0]) ? part[keys[0]] : undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw errors.invalid(`FHIRPath Patch operation ${what} must be given as a non-negative valueInteger`, expression);
  }
  return value;
}

/** Structural validation of a `value` part: exactly one of value[x], resource or nested parts, recursively. */
function checkValuePart(part: Json, expression: string): void {
  const keys = valueKeys(part);
  const valueXKeys = new Set(keys.map((k) => k.replace(/^_/, '')));
  const forms = (valueXKeys.size > 0 ? 1 : 0) + (part.resource !== undefined ? 1 : 0) + (part.part !== undefined ? 1 : 0);
  if (valueXKeys.size > 1 || forms !== 1) {
    throw errors.invalid('A FHIRPath Patch value must have exactly one of value[x], resource or part', expression);
  }
  if (part.resource !== undefined && (!isJsonObject(part.resource) || typeof part.resource.resourceType !== 'string')) {
    throw errors.invalid('A FHIRPath Patch value resource must be a resource', expression);
  }
  if (part.part !== undefined) {
    if (!Array.isArray(part.part) || part.part.length === 0) throw errors.invalid('A FHIRPath Patch value part list must be a non-empty array', expression);
    part.part.forEach((sub: unknown, j: number) => {
      const subExpression = `${expression}.part[${j}]`;
      if (!isJsonObject(sub) || typeof sub.name !== 'string' || sub.name === '') {
        throw errors.invalid('Each part of a FHIRPath Patch value must have a name', subExpression);
      }
      checkValuePart(sub, subExpression);
    });
  }
}

function parseOperations(parameters: Parameters): PatchOperation[] {
  const params = parameters as unknown;
  if (!isJsonObject(params) || params.resourceType !== 'Parameters') {
    throw errors.invalid('A FHIRPath Patch must be a Parameters resource');
  }
  const list = params.parameter ?? [];
  if (!Array.isArray(list)) throw errors.invalid('Parameters.parameter must be an array', 'Parameters.parameter');
  return list.map((parameter: unknown, i: number): PatchOperation => {
    const expression = `Parameters.parameter[${i}]`;
    if (!isJsonObject(parameter) || parameter.name !== 'operation') {
      throw errors.invalid("Each FHIRPath Patch parameter must be named 'operation'", expression);
    }
    if (!Array.isArray(parameter.part) || parameter.part.length === 0) {
      throw errors.invalid('A FHIRPath Patch operation must have parts (type, path, ...)', expression);
    }
    const parts = new Map<string, Json>();
    parameter.part.forEach((part: unknown, j: number) => {
      const partExpression = `${expression}.part[${j}]`;
      if (!isJsonObject(part) || typeof part.name !== 'string') throw errors.invalid('Each operation part must have a name', partExpression);
      if (!PART_NAMES.has(part.name)) {
        throw errors.invalid(`Unknown FHIRPath Patch operation part '${part.name}' (expected one of ${[...PART_NAMES].join(', ')})`, partExpression);
      }
      if (parts.has(part.name)) throw errors.invalid(`Duplicate FHIRPath Patch operation part '${part.name}'`, partExpression);
      parts.set(part.name, part);
    });
    const required = (name: string): Json => {
      const part = parts.get(name);
      if (!part) throw errors.invalid(`FHIRPath Patch operation is missing its '${name}' part`, expression);
      return part;
    };
    const type = partString(required('type'), expression, 'type');
    if (!PATCH_TYPES.has(type)) {
      throw errors.invalid(`Unknown FHIRPath Patch operation type '${type}' (expected add, insert, delete, replace or move)`, expression);
    }
    const op: PatchOperation = { type: type as PatchType, path: partString(required('path'), expression, 'path'), expression };
    if (type === 'add') op.name = partString(required('name'), expression, 'name');
    if (type === 'add' || type === 'insert' || type === 'replace') {
      const value = required('value');
      checkValuePart(value, `${expression}.part[${(parameter.part as unknown[]).indexOf(value)}]`);
      op.value = value as unknown as ParametersParameter;
    }
    if (type === 'insert') op.index = partInteger(required('index'), expression, 'index');
    if (type === 'move') {
      op.source = partInteger(required('source'), expression, 'source');
      op.destination = partInteger(required('destination'), expression, 'destination');
    }
    return op;
  });
}

interface BuiltValue {
  item: Item;
  /** The datatype of the value when it is explicit (value[x] or resource); undefined when built from parts. */
  type: string | undefined;
}

function checkType(info: ElementInfo | null, built: BuiltValue, op: PatchOperation): void {
  if (!info) return;
  const { type } = built;
  if (type === undefined) {
    if (info.choice) throw errors.unprocessable(`${info.path} is a choice element: the value must be given with a typed value[x]`, op.expression);
    if (info.types.every(isPrimitiveType)) {
      throw errors.unprocessable(`${info.path} is a primitive element: the value must be given as a value[x], not as parts`, op.expression);
    }
    return;
  }
  const ok = info.types.some((expected) => {
    if (expected === type) return true;
    if (isPrimitiveType(expected) || isPrimitiveType(type)) {
      return !info.choice && isPrimitiveType(expected) && isPrimitiveType(type) && primitiveKind(expected) === primitiveKind(type);
    }
    if (expected === 'Resource') return isResourceTypeName(type);
    return derivesFrom(type, expected);
  });
  if (!ok) {
    throw errors.unprocessable(`A value of type ${type} cannot be used for ${info.path} (expected ${info.types.join(' | ')})`, op.expression);
  }
}

/** Actual JSON property name for element `name`, taking choice types into account. */
function fieldName(name: string, info: ElementInfo | null, type: string | undefined): string {
  return info?.choice && type ? name + capitalize(type) : name;
}

function lookupChild(typePath: string | null, name: string, op: PatchOperation): ElementInfo | null {
  const info = elementInfo(typePath, name);
  if (info === 'unknown') throw errors.unprocessable(`Unknown element '${name}' in ${typePath}`, op.expression);
  return info;
}

/** Places `built` as element `name` of `target`: appended when repeating, otherwise only if not already present. */
function placeChild(target: Json, name: string, info: ElementInfo | null, built: BuiltValue, op: PatchOperation, where: string): void {
  checkType(info, built, op);
  const field = fieldName(name, info, built.type);
  const existing = target[field] ?? target['_' + field];
  const repeating = info ? info.repeating : Array.isArray(existing);
  if (repeating) {
    const items = readList(target, field);
    items.push(built.item);
    writeList(target, field, items);
    return;
  }
  const present = info?.choice
    ? Object.keys(target).some((k) => {
        const base = k.replace(/^_/, '');
        return base.startsWith(name) && base.length > name.length && /[A-Z]/.test(base.charAt(name.length));
      })
    : existing !== undefined;
  if (present) throw errors.unprocessable(`${where}.${name} already has a value and is not repeating (use replace)`, op.expression);
  setSingle(target, field, built.item);
}

function buildValue(part: Json, info: ElementInfo | null, op: PatchOperation, where: string): BuiltValue {
  const key = valueKeys(part)[0];
  if (key !== undefined) {
    const valueKey = key.replace(/^_/, '');
    return {
      item: { value: structuredClone(part[valueKey]), ext: structuredClone(part['_' + valueKey]) },
      type: normalizeType(valueKey.slice(5)),
    };
  }
  if (isJsonObject(part.resource)) {
    return { item: { value: structuredClone(part.resource), ext: undefined }, type: String(part.resource.resourceType) };
  }
  const object: Json = {};
  const childTypePath = info ? info.childTypePath : null;
  for (const sub of part.part as Json[]) {
    const name = sub.name as string;
    const subInfo = lookupChild(childTypePath, name, op);
    placeChild(object, name, subInfo, buildValue(sub, subInfo, op, `${where}.${name}`), op, where);
  }
  return { item: { value: object, ext: undefined }, type: undefined };
}

interface Slot {
  container: Json;
  key: string;
  index: number | null;
  node: FpNode;
}

const ROOT = 'root' as const;

function findKey(container: Json, node: FpNode): string | undefined {
  const prop = node.propName as string;
  if (hasOwn(container, prop) || hasOwn(container, '_' + prop)) return prop;
  if (node.fhirNodeDataType && !node.fhirNodeDataType.startsWith('System.')) {
    const key = prop + capitalize(node.fhirNodeDataType);
    if (hasOwn(container, key) || hasOwn(container, '_' + key)) return key;
  }
  for (const k of Object.keys(container)) {
    const base = k.replace(/^_/, '');
    if (base.startsWith(prop) && base.length > prop.length && /[A-Z]/.test(base.charAt(prop.length))) return base;
  }
  return undefined;
}

/** Finds the JSON container and key/index of an evaluation result inside `root`. */
function locate(root: Json, node: unknown, tree: Set<object>, op: PatchOperation): Slot | typeof ROOT {
  const outside = () => errors.unprocessable(`The path '${op.path}' selects something that is not an element of the resource being patched`, op.expression);
  if (!isFpNode(node)) throw outside();
  if (node.data === root) return ROOT;
  const parent = node.parentResNode;
  if (parent && node.propName) {
    for (const candidate of [parent.data, parent._data]) {
      if (!isJsonObject(candidate) || !tree.has(candidate)) continue;
      const key = findKey(candidate, node);
      if (key !== undefined) return { container: candidate, key, index: node.index ?? null, node };
    }
  }
  throw outside();
}

/**
 * FHIRPath keywords cannot be member names unless delimited with backticks, but FHIR has an element
 * named like one (Narrative.div) and patches in the wild (including the official test cases) write
 * `Patient.text.div`. Quote such names when they follow a dot, outside string literals.
 */
function quoteKeywordMembers(path: string): string {
  return path
    .split(/('(?:[^'\\]|\\.)*')/)
    .map((segment, i) => (i % 2 === 1 ? segment : segment.replace(/\.(div|mod|and|or|xor|implies|true|false)\b/g, '.`$1`')))
    .join('');
}

/** Returns the expression to evaluate for `path` (possibly with keyword member names quoted). */
function checkedPath(path: string, op: PatchOperation): string {
  try {
    fhirpath.parse(path);
    return path;
  } catch (error) {
    const quoted = quoteKeywordMembers(path);
    if (quoted !== path) {
      try {
        fhirpath.parse(quoted);
        return quoted;
      } catch {
        // report the original error
      }
    }
    throw errors.invalid(`Invalid FHIRPath expression '${path}': ${describe(error)}`, op.expression);
  }
}

function evaluatePath(root: Json, rawPath: string, op: PatchOperation): unknown[] {
  const path = checkedPath(rawPath, op);
  try {
    const result = fhirpath.evaluate(root, path, undefined, r4Model, { resolveInternalTypes: false });
    if (!Array.isArray(result)) throw new Error('asynchronous evaluation is not supported');
    return result;
  } catch (error) {
    throw errors.unprocessable(`Unable to evaluate FHIRPath '${path}': ${describe(error)}`, op.expression);
  }
}

function slotItem(slot: Slot): Item {
  if (slot.index !== null) return readList(slot.container, slot.key)[slot.index] ?? { value: undefined, ext: undefined };
  return { value: slot.container[slot.key], ext: slot.container['_' + slot.key] };
}

/** The model type path of the element a slot holds (e.g. Patient.contact, HumanName.given's parent HumanName). */
function parentTypePath(slot: Slot): string | null {
  return slot.node.parentResNode?.path ?? null;
}

/** Object to which children are added for the single element `node`: the element itself, or a primitive's `_` companion. */
function targetObject(root: Json, node: unknown, tree: Set<object>, op: PatchOperation): { object: Json; typePath: string | null } {
  const slot = locate(root, node, tree, op);
  if (slot === ROOT) return { object: root, typePath: String(root.resourceType) };
  const typePath = slot.node.path;
  const current = slotItem(slot);
  if (isJsonObject(current.value)) return { object: current.value, typePath };
  if (current.value !== undefined && current.value !== null && typeof current.value === 'object') {
    throw errors.unprocessable(`The path '${op.path}' does not select a single element`, op.expression);
  }
  // A primitive: only id and extension can be added, into its `_name` companion.
  const ext: Json = isJsonObject(current.ext) ? current.ext : {};
  if (slot.index !== null) {
    const items = readList(slot.container, slot.key);
    items[slot.index].ext = ext;
    writeList(slot.container, slot.key, items);
  } else {
    slot.container['_' + slot.key] = ext;
  }
  return { object: ext, typePath };
}

function single(nodes: unknown[], op: PatchOperation, verb: string): unknown {
  if (nodes.length === 0) throw errors.unprocessable(`No content found at ${op.path} when ${verb}`, op.expression);
  if (nodes.length > 1) {
    throw errors.unprocessable(`The path ${op.path} matches ${nodes.length} elements; ${op.type} requires exactly one`, op.expression);
  }
  return nodes[0];
}

interface ListRef {
  container: Json;
  key: string;
  items: Item[];
  info: ElementInfo | null;
}

/** Resolves the list addressed by an insert/move path (the collection of all its items). */
function resolveList(root: Json, op: PatchOperation, tree: Set<object>, nodes: unknown[]): ListRef | undefined {
  if (nodes.length === 0) {
    // An empty list cannot be found from its (non-existent) items: evaluate the parent and take the last name.
    const match = /^(.+)\.([A-Za-z][A-Za-z0-9_]*)$/.exec(op.path.trim());
    if (!match) return undefined;
    const parents = evaluatePath(root, match[1], op);
    if (parents.length !== 1) return undefined;
    const { object, typePath } = targetObject(root, parents[0], tree, op);
    const info = lookupChild(typePath, match[2], op);
    if (info && !info.repeating) throw errors.unprocessable(`The path ${op.path} does not identify a list`, op.expression);
    return { container: object, key: match[2], items: readList(object, match[2]), info };
  }
  const slots = nodes.map((node) => locate(root, node, tree, op));
  const first = slots[0];
  const sameList = slots.every((s) => s !== ROOT && first !== ROOT && s.container === first.container && s.key === first.key && s.index !== null);
  if (first === ROOT || !sameList) throw errors.unprocessable(`The path ${op.path} does not identify a single list`, op.expression);
  const items = readList(first.container, first.key);
  if (items.length !== slots.length) {
    throw errors.unprocessable(`The path ${op.path} selects only part of a list; ${op.type} requires the whole list`, op.expression);
  }
  const info = lookupChild(parentTypePath(first), first.node.propName as string, op);
  return { container: first.container, key: first.key, items, info };
}

function applyOperation(root: Json, op: PatchOperation): void {
  const tree = collectObjects(root, new Set());
  const nodes = evaluatePath(root, op.path, op);
  switch (op.type) {
    case 'delete': {
      if (nodes.length === 0) return;
      if (nodes.length > 1) {
        throw errors.unprocessable(`The path ${op.path} matches ${nodes.length} elements; delete removes at most one`, op.expression);
      }
      const slot = locate(root, nodes[0], tree, op);
      if (slot === ROOT) throw errors.unprocessable('FHIRPath Patch cannot delete the resource itself', op.expression);
      if (slot.index !== null) {
        const items = readList(slot.container, slot.key);
        items.splice(slot.index, 1);
        writeList(slot.container, slot.key, items);
      } else {
        delete slot.container[slot.key];
        delete slot.container['_' + slot.key];
      }
      return;
    }
    case 'replace': {
      const slot = locate(root, single(nodes, op, 'replacing'), tree, op);
      if (slot === ROOT) throw errors.unprocessable('FHIRPath Patch cannot replace the resource itself', op.expression);
      const info = lookupChild(parentTypePath(slot), slot.node.propName as string, op);
      const built = buildValue(op.value as unknown as Json, info, op, op.path);
      checkType(info, built, op);
      if (slot.index !== null) {
        const items = readList(slot.container, slot.key);
        items[slot.index] = built.item;
        writeList(slot.container, slot.key, items);
      } else {
        const key = info?.choice ? fieldName(slot.node.propName as string, info, built.type) : slot.key;
        delete slot.container[slot.key];
        delete slot.container['_' + slot.key];
        setSingle(slot.container, key, built.item);
      }
      return;
    }
    case 'add': {
      const { object, typePath } = targetObject(root, single(nodes, op, 'adding'), tree, op);
      const name = op.name as string;
      const info = lookupChild(typePath, name, op);
      placeChild(object, name, info, buildValue(op.value as unknown as Json, info, op, `${op.path}.${name}`), op, op.path);
      return;
    }
    case 'insert': {
      const list = resolveList(root, op, tree, nodes);
      if (!list) throw errors.unprocessable(`No list found at ${op.path} when inserting`, op.expression);
      const index = op.index as number;
      if (index > list.items.length) {
        throw errors.unprocessable(`Insert index ${index} is out of range for ${op.path} (${list.items.length} items)`, op.expression);
      }
      const built = buildValue(op.value as unknown as Json, list.info, op, op.path);
      checkType(list.info, built, op);
      list.items.splice(index, 0, built.item);
      writeList(list.container, list.key, list.items);
      return;
    }
    case 'move': {
      const list = resolveList(root, op, tree, nodes);
      if (!list) throw errors.unprocessable(`No list found at ${op.path} when moving`, op.expression);
      const { source, destination } = op as { source: number; destination: number };
      const n = list.items.length;
      if (source >= n || destination >= n) {
        throw errors.unprocessable(`Move source ${source} / destination ${destination} out of range for ${op.path} (${n} items)`, op.expression);
      }
      const [moved] = list.items.splice(source, 1);
      list.items.splice(destination, 0, moved);
      writeList(list.container, list.key, list.items);
      return;
    }
  }
}

/**
 * Applies a FHIRPath Patch (a Parameters resource of `operation` parameters) to a copy of `resource`.
 * Malformed Parameters → 400; paths that do not resolve as required, wrong types, cardinality violations → 422.
 */
export function applyFhirPathPatch(resource: Resource, parameters: Parameters): Resource {
  const operations = parseOperations(parameters);
  const root = structuredClone(resource) as unknown as Json;
  for (const op of operations) {
    applyOperation(root, op);
    pruneObject(root);
  }
  return root as unknown as Resource;
}
