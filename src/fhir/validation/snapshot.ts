// StructureDefinition snapshot generation (R4 profiling.html "snapshot generation"): the base
// definition's snapshot, with the differential's constraints merged in.
//
// The base snapshot is read into a tree (element → its children in order, then its slices, each
// with its own children). Each differential element is placed by its id (derived from path +
// sliceName when it has none): walking the id's segments from the root, a complex element whose
// children the base does not list is unrolled from its type's definition (the type's profile when
// it has exactly one, e.g. an extension or datatype profile; the content reference's target for
// contentReference), and a slice the base does not have is created from the sliced element as the
// base defines it. The tree is then written back in snapshot order, with R4 element ids
// (Patient.identifier:INS.system, Observation.value[x]:valueQuantity).
//
// Where R4 leaves a choice open, the rules are those of the HL7 reference implementation that
// publishes the implementation guides (so that published snapshots can be regenerated):
// - constraints on the children of a sliced element that the differential gives before the first
//   slice apply to every slice (unless the slice says otherwise);
// - a new slice is optional (min 0) unless the differential says otherwise; its max is at most
//   the sliced element's; an extension slice starts from its extension definition's root element;
// - when the base is already sliced and the differential constrains the slicing, the sliced
//   element's unrolled children are not repeated (unless it is a BackboneElement);
// - type slices of a choice element (value[x]:valueQuantity) are "type/$this" slicing, closed
//   when every allowed type has a slice.
//
// Pure function: no I/O; definitions come from the caller's resolver. Problems are reported as
// OperationOutcome issues (element id in `expression`), never thrown.
import type {
  ElementDefinition,
  ElementDefinitionSlicing,
  ElementDefinitionType,
  OperationOutcomeIssue,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { issue } from '../outcome.ts';

/** Base definitions by canonical URL (optionally `url|version`). */
export type ResolveStructure = (url: string) => StructureDefinition | undefined;

const FHIR_SD = 'http://hl7.org/fhir/StructureDefinition/';

/** A definition with a differential but no snapshot (one to generate). */
export function needsSnapshot(sd: StructureDefinition): boolean {
  return !sd.snapshot?.element?.length && !!sd.differential?.element?.length && !!sd.baseDefinition;
}

type Element = ElementDefinition & Record<string, unknown>;

interface Node {
  el: ElementDefinition; // never mutated in place: changes build a new object
  name: string; // last path segment ("identifier", "value[x]")
  children?: Node[]; // undefined: the definition does not list them (not unrolled)
  slices: Node[];
  origin?: Node; // the pristine (base or type definition) node this one copies
  childSource?: Node[]; // children to unroll from for a new slice of a BackboneElement
  newSlice?: 'unsliced-base' | 'sliced-base'; // created by this differential, and how the base was
  typeSlice?: string; // type code of a choice type slice (value[x]:valueQuantity → Quantity)
  renamed?: boolean; // the slice comes from a renamed choice path (valueQuantity)
  isNew?: boolean; // element added by a specialization
  diff?: ElementDefinition; // the differential element merged into this node
  selfDiff?: boolean; // the differential constrains this element itself
  sliceTouched?: boolean; // the differential constrains or adds slices of this element
  childTouched?: boolean; // the differential constrains this element's children
  extensionSlicing?: boolean; // the default extension slicing was added here
}

interface Segment {
  name: string;
  slice?: string;
}

function lastSegment(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot < 0 ? path : path.slice(dot + 1);
}

function parentPath(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot < 0 ? '' : path.slice(0, dot);
}

/** A snapshot's elements as a tree; slices hang on the element they slice (re-slices a/b on slice a). */
function buildTree(elements: ElementDefinition[]): Node | undefined {
  const first = elements[0];
  if (!first?.path) return undefined;
  const root: Node = { el: first, name: first.path, slices: [] };
  // path → node its children attach to, and → last unsliced node; entries below a path are
  // stale once a new element with that path starts (they are never looked up: paths go deeper
  // one segment at a time), so they are simply overwritten.
  const current = new Map<string, Node>([[first.path, root]]);
  const unsliced = new Map<string, Node>([[first.path, root]]);
  for (let i = 1; i < elements.length; i++) {
    const el = elements[i]!;
    const path = el.path;
    if (!path) continue;
    const node: Node = { el, name: lastSegment(path), slices: [] };
    const host = el.sliceName ? unsliced.get(path) : undefined;
    if (host) {
      let owner = host;
      const parts = el.sliceName!.split('/');
      for (let j = 1; j < parts.length; j++) {
        const prefix = parts.slice(0, j).join('/');
        owner = owner.slices.find((s) => s.el.sliceName === prefix) ?? owner;
      }
      owner.slices.push(node);
    } else {
      const parent = current.get(parentPath(path));
      if (!parent) continue; // malformed: no parent element
      (parent.children ??= []).push(node);
      unsliced.set(path, node);
    }
    current.set(path, node);
  }
  return root;
}

/** An output copy of a pristine subtree (elements shared: they are replaced, never mutated). */
function instantiate(node: Node, withSlices = true): Node {
  return {
    el: node.el,
    name: node.name,
    children: node.children?.map((c) => instantiate(c)),
    slices: withSlices ? node.slices.map((s) => instantiate(s)) : [],
    origin: node,
  };
}

/** Segments of an element id; undefined when it does not agree with the path. */
function parseId(id: string, path: string): Segment[] | undefined {
  const parts = id.split('.');
  if (parts.length !== path.split('.').length) return undefined;
  return parts.map((part) => {
    const colon = part.indexOf(':');
    return colon < 0 ? { name: part } : { name: part.slice(0, colon), slice: part.slice(colon + 1) };
  });
}

/** Ids for differential elements: their own, else path + sliceName in the context of the elements before. */
function differentialIds(elements: ElementDefinition[]): string[] {
  const last = new Map<string, string>(); // path → id of the last element with it
  return elements.map((el) => {
    const path = el.path ?? '';
    let id = el.id;
    if (!id || id.split('.').length !== path.split('.').length) {
      const parent = parentPath(path);
      const base = parent ? `${last.get(parent) ?? parent}.` : '';
      id = base + lastSegment(path) + (el.sliceName ? `:${el.sliceName}` : '');
    }
    for (const key of [...last.keys()]) if (key.startsWith(`${path}.`)) last.delete(key);
    last.set(path, id);
    return id;
  });
}

function typeName(code: string): string {
  return code.charAt(0).toUpperCase() + code.slice(1);
}

/** For a choice element value[x] and a name such as valueQuantity, the type code (Quantity). */
function choiceType(node: Node, name: string): string | undefined {
  if (!node.name.endsWith('[x]')) return undefined;
  const prefix = node.name.slice(0, -3);
  if (!name.startsWith(prefix) || name.length === prefix.length) return undefined;
  const suffix = name.slice(prefix.length);
  return node.el.type?.find((t) => t.code && typeName(t.code) === suffix)?.code;
}

const cardMax = (max: string | undefined): number => (max === undefined || max === '*' ? Infinity : Number(max));

const VALUE_KEY = /^(fixed|pattern|defaultValue|minValue|maxValue)[A-Z]/;
const BINDABLE = new Set(['Coding', 'CodeableConcept', 'Quantity', 'uri', 'string', 'code', 'CodeableReference']);
const RESOURCE_CODES = new Set(['Resource', 'DomainResource']);

function appendUnique<T>(base: T[] | undefined, added: T[] | undefined, key: (item: T) => string): T[] | undefined {
  if (!added?.length) return base;
  const out = [...(base ?? [])];
  const seen = new Set(out.map(key));
  for (const item of added) {
    const k = key(item);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(item);
    }
  }
  return out;
}

function keysWith(el: Element, prefix: string): string[] {
  return Object.keys(el).filter((k) => k.startsWith(prefix) && /^[A-Z]/.test(k.slice(prefix.length)));
}

// ---- Differential pre-processing: constraints given on a sliced element's children before its
// first slice apply to every slice (what a slice does not say itself).

/** The default slicing of extensions, which needs no stating (so does not start a slice group here). */
function isExtensionSlicing(el: ElementDefinition): boolean {
  const name = lastSegment(el.path ?? '');
  const s = el.slicing;
  if (!s || (name !== 'extension' && name !== 'modifierExtension')) return false;
  const d = s.discriminator ?? [];
  return s.rules === 'open' && s.ordered === false && d.length === 1 && d[0]!.type === 'value' && d[0]!.path === 'url';
}

const FILLED_FROM_SLICER = [
  'label', 'short', 'definition', 'comment', 'requirements', 'min', 'max', 'meaningWhenMissing', 'orderMeaning',
  'maxLength', 'mustHaveValue', 'mustSupport', 'isModifier', 'isModifierReason', 'isSummary', 'binding',
];
const FILLED_LISTS = ['code', 'alias', 'type', 'example', 'constraint', 'valueAlternatives'];

/** Fills what `focus` (a slice's element) does not state from `base` (the sliced element's). */
function fillFrom(focus: Element, base: Element): void {
  for (const k of FILLED_FROM_SLICER) if (focus[k] === undefined && base[k] !== undefined) focus[k] = base[k];
  for (const k of FILLED_LISTS) if (!(focus[k] as unknown[] | undefined)?.length && (base[k] as unknown[] | undefined)?.length) focus[k] = base[k];
  for (const prefix of ['defaultValue', 'fixed', 'pattern', 'minValue', 'maxValue']) {
    if (keysWith(focus, prefix).length === 0) for (const k of keysWith(base, prefix)) focus[k] = base[k];
  }
}

function samePath(a: string, b: string): boolean {
  if (a === b) return true;
  for (const [x, y] of [[a, b], [b, a]] as const) {
    if (x.endsWith('[x]')) {
      const stem = x.slice(0, -3);
      if (y.startsWith(stem) && !y.slice(stem.length).includes('.')) return true;
    }
  }
  return false;
}

interface SliceGroup {
  parent?: SliceGroup;
  path: string;
  closed: boolean;
  slicer: Element;
  stuff: Element[]; // elements after the slicer, before its first slice
  slices?: Element[];
}

function distributeSlicerContent(diff: Element[], issues: OperationOutcomeIssue[]): Element[] {
  const list = diff.map((e) => ({ ...e }));
  const groups: SliceGroup[] = [];
  const add = (g: SliceGroup, el: Element) => {
    if (!g.slices) g.stuff.push(el);
    if (g.parent) add(g.parent, el);
  };
  const groupOf = (el: Element): SliceGroup | undefined => {
    for (let i = groups.length - 1; i >= 0; i--) {
      const g = groups[i]!;
      if (g.closed) continue;
      if (g.path.length > (el.path ?? '').length) g.closed = true;
      else if ((el.path ?? '').startsWith(g.path)) return g;
    }
    return undefined;
  };
  for (const el of list) {
    const g = groupOf(el);
    const slicing = !!el.slicing && !isExtensionSlicing(el);
    if (!g) {
      if (slicing) groups.push({ path: el.path ?? '', closed: false, slicer: el, stuff: [] });
    } else if (el.sliceName && el.path === g.path) {
      (g.slices ??= []).push(el);
      if (g.parent) add(g.parent, el);
    } else if (slicing) {
      add(g, el);
      groups.push({ parent: g, path: el.path ?? '', closed: false, slicer: el, stuff: [] });
    } else {
      add(g, el);
    }
  }
  for (const g of groups) {
    if (g.stuff.length && g.slices && g.stuff.some((e) => e.slicing && !isExtensionSlicing(e))) {
      issues.push(issue('warning', 'not-supported', `Slicing inside the common constraints of ${g.slicer.id ?? g.path} is not applied to its slices`, g.slicer.id ?? g.path));
      return list;
    }
  }
  for (let i = groups.length - 1; i >= 0; i--) {
    const g = groups[i]!;
    if (!g.stuff.length || !g.slices) continue;
    for (const slice of g.slices) {
      const at = list.indexOf(slice);
      let end = at;
      while (
        end + 1 < list.length &&
        ((list[end + 1]!.path ?? '').startsWith(`${slice.path}.`) || (list[end + 1]!.path === slice.path && list[end + 1]!.sliceName === slice.sliceName))
      ) {
        end++;
      }
      const inserted: Element[] = [];
      for (const item of g.stuff) {
        let found = false;
        for (let j = at + 1; j <= end; j++) {
          const e = list[j]!;
          if (samePath(e.path ?? '', item.path ?? '') && (e.sliceName ?? '') === (item.sliceName ?? '')) {
            fillFrom(e, item);
            found = true;
          }
        }
        if (!found && item.id && g.slicer.id && slice.id) {
          inserted.push({ ...item, id: item.id.split(g.slicer.id).join(slice.id) });
        }
      }
      list.splice(end + 1, 0, ...inserted);
    }
  }
  return list;
}

// ---- Generation

class Generator {
  readonly resolve: ResolveStructure;
  readonly visiting: Set<string>;
  readonly generated = new Map<string, ElementDefinition[] | undefined>();
  readonly trees = new Map<string, Node | undefined>();
  issues: OperationOutcomeIssue[] = [];
  baseTree: Node | undefined;
  diffById = new Map<string, ElementDefinition>();
  undo: (() => void)[] | undefined; // the current placement's undo log

  constructor(resolve: ResolveStructure, visiting: Set<string>) {
    this.resolve = resolve;
    this.visiting = visiting;
  }

  fetch(url: string): StructureDefinition | undefined {
    const sd = this.resolve(url);
    if (sd) return sd;
    const bar = url.indexOf('|');
    return bar < 0 ? undefined : this.resolve(url.slice(0, bar));
  }

  /** The snapshot of a definition, generated (once) when it has none. */
  snapshotOf(url: string, expression: string): ElementDefinition[] | undefined {
    if (this.generated.has(url)) return this.generated.get(url);
    const sd = this.fetch(url);
    let elements: ElementDefinition[] | undefined;
    if (!sd) {
      this.issues.push(issue('error', 'not-found', `StructureDefinition ${url} not found`, expression));
    } else if (sd.snapshot?.element?.length) {
      elements = sd.snapshot.element;
    } else if (needsSnapshot(sd)) {
      const key = sd.url ?? url;
      if (this.visiting.has(key)) {
        this.issues.push(issue('error', 'structure', `Circular definition: ${key} derives from itself`, expression));
      } else {
        const inner = new Generator(this.resolve, this.visiting);
        const result = inner.generate(sd);
        for (const i of inner.issues) this.issues.push({ ...i, details: { text: `In ${key}: ${i.details?.text ?? ''}` } });
        elements = result.snapshot.snapshot?.element;
      }
    } else {
      this.issues.push(issue('error', 'structure', `StructureDefinition ${url} has neither a snapshot nor a differential`, expression));
    }
    this.generated.set(url, elements);
    return elements;
  }

  tree(url: string, expression: string): Node | undefined {
    if (this.trees.has(url)) return this.trees.get(url);
    const elements = this.snapshotOf(url, expression);
    const tree = elements ? buildTree(elements) : undefined;
    this.trees.set(url, tree);
    return tree;
  }

  generate(sd: StructureDefinition): { snapshot: StructureDefinition; issues: OperationOutcomeIssue[] } {
    const copy = cloneJson(sd);
    const root = sd.type ?? sd.differential?.element?.[0]?.path?.split('.')[0] ?? 'Resource';
    if (!sd.baseDefinition) {
      if (!sd.snapshot?.element?.length) {
        this.issues.push(issue('error', 'structure', 'A definition without a baseDefinition cannot have its snapshot generated', root));
      }
      return { snapshot: copy, issues: this.issues };
    }
    const key = sd.url ?? sd.baseDefinition;
    this.visiting.add(key);
    try {
      const base = this.tree(sd.baseDefinition, root);
      if (!base) {
        this.issues.push(issue('error', 'not-found', `Base definition ${sd.baseDefinition} has no usable snapshot`, root));
        return { snapshot: copy, issues: this.issues };
      }
      this.baseTree = base;
      const tree = instantiate(base);
      const specialization = sd.derivation === 'specialization';
      if (specialization) tree.name = root;
      const original = (sd.differential?.element ?? []) as Element[];
      const ids = differentialIds(original);
      const diff = distributeSlicerContent(
        original.map((el, i) => ({ ...el, id: ids[i] })),
        this.issues
      );
      for (const el of diff) this.diffById.set(el.id!, el);
      for (const el of diff) this.apply(tree, el, el.id!, specialization);
      this.finish(tree, tree.name);
      const elements: ElementDefinition[] = [];
      flatten(tree, '', '', elements);
      copy.snapshot = { element: cloneJson(elements) };
      return { snapshot: copy, issues: this.issues };
    } finally {
      this.visiting.delete(key);
    }
  }

  /** Places one differential element in the tree and merges it in. */
  apply(tree: Node, el: ElementDefinition, id: string, specialization: boolean): void {
    const path = el.path ?? '';
    const segments = parseId(id, path);
    if (!segments?.length) {
      this.issues.push(issue('error', 'structure', `Differential element ${id} has an invalid path "${path}"`, id));
      return;
    }
    if (segments[0]!.name !== tree.name && !specialization) {
      this.issues.push(issue('error', 'not-found', `Differential element ${id} is not within ${tree.name}`, id));
      return;
    }
    // what the walk changes (children unrolled, slices added, flags) is undone if the element cannot be placed
    const undo: (() => void)[] = [];
    this.undo = undo;
    const fail = () => {
      for (const step of undo.reverse()) step();
      this.undo = undefined;
    };
    let node = tree;
    for (let i = 1; i < segments.length; i++) {
      const seg = segments[i]!;
      const children = this.children(node, id);
      if (!children) return fail();
      let child = children.find((c) => c.name === seg.name);
      let implicitSlice: string | undefined;
      if (!child) {
        child = children.find((c) => choiceType(c, seg.name) !== undefined);
        if (child) implicitSlice = seg.name;
      }
      if (!child && specialization && i === segments.length - 1 && !seg.slice) {
        child = { el: { path }, name: seg.name, slices: [], isNew: true };
        children.push(child);
      }
      if (!child) {
        this.issues.push(issue('error', 'not-found', `Differential element ${id}: ${seg.name} is not an element of ${node.el.path ?? node.name} in the base definition`, id));
        return fail();
      }
      const parent = node;
      const touched = parent.childTouched;
      undo.push(() => (parent.childTouched = touched));
      parent.childTouched = true;
      node = child;
      const sliceName = seg.slice ?? implicitSlice;
      if (sliceName) {
        const host = node;
        const sliceTouched = host.sliceTouched;
        undo.push(() => (host.sliceTouched = sliceTouched));
        host.sliceTouched = true;
        const slice = this.slice(host, sliceName, id, !!implicitSlice && !seg.slice);
        if (!slice) return fail();
        node = slice;
      }
    }
    this.undo = undefined;
    node.el = this.merge(node, el, id);
    node.diff = el;
    node.selfDiff = true;
  }

  /** A node's children, unrolled from its type (or content reference) when the base does not list them. */
  children(node: Node, id: string): Node[] | undefined {
    if (node.children) return node.children;
    let source: Node[] | undefined;
    const code = node.el.type?.length === 1 ? node.el.type[0]!.code : undefined;
    const ref = node.el.contentReference;
    if (node.childSource && (code === 'BackboneElement' || code === 'Element' || code === 'Base')) {
      source = node.childSource;
    } else if (ref) {
      const target = ref.slice(ref.indexOf('#') + 1);
      source = this.baseTree ? findPath(this.baseTree, target)?.children : undefined;
      if (!source) this.issues.push(issue('error', 'not-found', `Content reference ${ref} of ${id} not found in the base definition`, id));
    } else {
      const url = typeDefinitionUrl(node.el.type);
      if (!url) {
        this.issues.push(issue('error', 'structure', `Cannot constrain inside ${node.el.path}: it has no single type to take children from`, id));
        return undefined;
      }
      const tree = this.tree(url, id);
      source = tree?.children;
      if (tree && !source) this.issues.push(issue('error', 'structure', `Cannot constrain inside ${node.el.path}: its type ${url} has no children`, id));
    }
    if (!source) return undefined;
    node.children = source.map((c) => instantiate(c));
    this.undo?.push(() => (node.children = undefined));
    return node.children;
  }

  /** The slice `name` of a node (a/b: re-slice b of slice a), created when the base has none. */
  slice(host: Node, name: string, id: string, renamed: boolean): Node | undefined {
    const parts = name.split('/');
    let owner = host;
    for (let j = 1; j <= parts.length; j++) {
      const sliceName = parts.slice(0, j).join('/');
      let slice = owner.slices.find((s) => s.el.sliceName === sliceName);
      if (!slice) {
        if (j < parts.length) {
          this.issues.push(issue('error', 'not-found', `Re-slice ${name}: slice ${sliceName} is not defined`, id));
          return undefined;
        }
        slice = this.newSlice(owner, host, sliceName, id, renamed);
      }
      owner = slice;
    }
    return owner;
  }

  newSlice(owner: Node, host: Node, sliceName: string, id: string, renamed: boolean): Node {
    const source = owner.origin ?? owner;
    const slicedInBase = owner === host && !!owner.origin?.el.slicing;
    const before = { el: owner.el, extensionSlicing: owner.extensionSlicing };
    this.undo?.push(() => {
      owner.el = before.el;
      owner.extensionSlicing = before.extensionSlicing;
      owner.slices = owner.slices.filter((s) => s !== node);
    });
    if (owner === host && !owner.el.slicing) this.defaultSlicing(owner, id);
    const el: Element = { ...source.el, sliceName };
    if (owner === host) delete el.slicing;
    const node: Node = { el, name: host.name, slices: [], origin: source, renamed };
    const code = choiceType(host, sliceName);
    if (slicedInBase) {
      // a new slice of an element the base slices: the sliced element's base definition, without children
      node.newSlice = 'sliced-base';
      if (!code) el.min = 0;
      node.childSource = source.children;
    } else {
      node.newSlice = 'unsliced-base';
      node.children = source.children?.map((c) => instantiate(c));
    }
    if (code) {
      node.typeSlice = code;
      const d = this.diffById.get(sliceId(id, host, sliceName));
      if (!d?.type) el.type = (source.el.type ?? []).filter((t) => t.code === code).map((t) => ({ code: t.code }));
    }
    owner.slices.push(node);
    return node;
  }

  /** Whether the differential defines slices of the element with this id. */
  hasDiffSlices(id: string): boolean {
    for (const key of this.diffById.keys()) if (key.startsWith(`${id}:`) && !key.slice(id.length).includes('.')) return true;
    return false;
  }

  defaultSlicing(host: Node, id: string): void {
    if (host.name === 'extension' || host.name === 'modifierExtension') {
      host.el = { ...host.el, slicing: { discriminator: [{ type: 'value', path: 'url' }], ordered: false, rules: 'open' } };
      host.extensionSlicing = true;
    } else if (host.name.endsWith('[x]')) {
      host.el = { ...host.el, slicing: { discriminator: [{ type: 'type', path: '$this' }], ordered: false, rules: 'closed' } };
    } else {
      this.issues.push(issue('warning', 'structure', `Slice ${id} of ${host.el.path}, which has no slicing`, id));
    }
  }

  /** The root element of an extension (or resource) profile that a differential element now uses, as its starting point. */
  profileTemplate(base: Element, d: ElementDefinition, expression: string): Element | undefined {
    const type = d.type?.length === 1 ? d.type[0]! : undefined;
    const profile = type?.profile?.[0];
    if (!type || !profile || type.code === 'Reference') return undefined;
    const baseCode = base.type?.length === 1 ? base.type[0]!.code : undefined;
    if (baseCode !== 'Extension' && baseCode !== 'Resource') return undefined;
    if (base.type?.[0]?.profile?.[0] === profile) return undefined;
    const root = this.snapshotOf(profile, expression)?.[0] as Element | undefined;
    if (!root) return undefined;
    const t: Element = { ...root, path: base.path };
    delete t.id;
    delete t.sliceName;
    if (type.code !== 'Extension') {
      t.min = base.min;
      t.max = base.max;
    }
    if (!root.path?.includes('.') && this.fetch(profile)?.kind === 'resource') delete t.constraint;
    // what the profile's root does not say comes from the element
    for (const k of ['sliceName', 'label', 'definition', 'short', 'comment', 'requirements', 'min', 'max', 'maxLength', 'mustSupport', 'isSummary', 'isModifier', 'isModifierReason', 'binding', 'example']) {
      if (t[k] === undefined && base[k] !== undefined) t[k] = base[k];
    }
    for (const prefix of ['fixed', 'pattern', 'minValue', 'maxValue']) {
      if (keysWith(t, prefix).length === 0) for (const k of keysWith(base, prefix)) t[k] = base[k];
    }
    t.code = appendUnique(t.code, base.code, (c) => `${c.system}|${c.code}`);
    t.alias = appendUnique(t.alias, base.alias, (a) => a);
    t.constraint = appendUnique(t.constraint, base.constraint, (c) => c.key ?? '');
    t.type = base.type;
    t.base = base.base;
    return t;
  }

  /** The base element constrained by a differential element (property rules of profiling.html). */
  merge(node: Node, diff: ElementDefinition, id: string): ElementDefinition {
    if (node.isNew) return { ...diff, path: node.el.path, base: { path: node.el.path ?? '', min: diff.min ?? 0, max: diff.max ?? '*' } };
    let base = node.el as Element;
    if (node.newSlice !== 'sliced-base') base = this.profileTemplate(base, diff, id) ?? base;
    const d = diff as Element;
    const out: Element = { ...base };
    if (d.min !== undefined) {
      if (base.min !== undefined && d.min < base.min && !base.sliceName) {
        this.issues.push(issue('error', 'business-rule', `${id}: min ${d.min} is less than the base's ${base.min}`, id));
      }
      out.min = d.min;
    }
    if (d.max !== undefined) {
      if (cardMax(d.max) > cardMax(base.max)) {
        this.issues.push(issue('error', 'business-rule', `${id}: max ${d.max} is more than the base's ${base.max}`, id));
      }
      out.max = d.max;
    }
    if (d.type) {
      this.checkTypes(base.type, d.type, id);
      out.type = d.type;
    }
    for (const prefix of ['fixed', 'pattern', 'defaultValue', 'minValue', 'maxValue']) {
      if (keysWith(d, prefix).length) for (const k of keysWith(out, prefix)) delete out[k];
    }
    for (const [k, v] of Object.entries(d)) {
      switch (k) {
        case 'id':
        case 'path':
        case 'base':
        case 'sliceName':
        case 'min':
        case 'max':
        case 'type':
          break;
        case 'constraint':
          out.constraint = appendUnique(base.constraint, d.constraint, (c) => c.key ?? JSON.stringify(c));
          break;
        case 'condition':
          out.condition = appendUnique(base.condition, d.condition, (c) => c);
          break;
        case 'mapping':
          out.mapping = appendUnique(base.mapping, d.mapping, (m) => `${m.identity}|${m.map}`);
          break;
        case 'alias':
          out.alias = appendUnique(base.alias, d.alias, (a) => a);
          break;
        case 'code':
          out.code = appendUnique(base.code, d.code, (c) => `${c.system}|${c.code}`);
          break;
        case 'example':
          out.example = appendUnique(base.example, d.example, (e) => JSON.stringify(e));
          break;
        case 'extension':
          out.extension = [...(base.extension ?? []).filter((e) => !d.extension!.some((x) => x.url === e.url)), ...d.extension!];
          break;
        case 'binding':
          if (base.binding && d.binding) {
            if (base.binding.strength === 'required' && d.binding.strength && d.binding.strength !== 'required') {
              this.issues.push(issue('error', 'business-rule', `${id}: binding strength ${d.binding.strength} is weaker than the base's required`, id));
            }
            out.binding = { ...base.binding, ...d.binding };
          } else {
            out.binding = d.binding;
          }
          break;
        case 'slicing':
          if (base.slicing) out.slicing = { ...base.slicing, ...d.slicing };
          else if (d.slicing?.discriminator?.length || node.slices.length || this.hasDiffSlices(id)) out.slicing = d.slicing;
          else this.issues.push(issue('warning', 'structure', `${id}: slicing without discriminator nor slices is ignored`, id));
          break;
        default:
          out[k] = v;
      }
    }
    if (out.binding && out.type?.length && !out.type.some((t) => t.code && BINDABLE.has(t.code))) delete out.binding;
    const valueKey = Object.keys(d).find((k) => VALUE_KEY.test(k));
    if (valueKey && out.type?.length) {
      // a fixed/pattern value must be of one of the element's types
      const suffix = valueKey.replace(/^(defaultValue|minValue|maxValue|fixed|pattern)/, '');
      if (!out.type.some((t) => !t.code || typeName(t.code) === suffix || t.code.startsWith('http://hl7.org/fhirpath/System.'))) {
        this.issues.push(issue('error', 'business-rule', `${id}: ${valueKey} is not of the element's type (${out.type.map((t) => t.code).join(', ')})`, id));
      }
    }
    return out;
  }

  checkTypes(base: ElementDefinitionType[] | undefined, derived: ElementDefinitionType[], id: string): void {
    if (!base?.length) return;
    const codes = new Set(base.map((t) => t.code));
    for (const t of derived) {
      const code = t.code ?? '';
      if (codes.has(code)) continue;
      if ([...codes].some((c) => c && RESOURCE_CODES.has(c)) && /^[A-Z]/.test(code)) continue; // a resource type for Resource
      if (codes.has('Element') || codes.has('BackboneElement')) continue;
      this.issues.push(issue('error', 'business-rule', `${id}: type ${code} is not one of the base's types (${[...codes].join(', ')}): not a restriction`, id));
    }
  }

  /** What depends on the whole differential: slice cardinalities, type slicing, children not repeated. */
  finish(node: Node, path: string): void {
    for (const c of node.children ?? []) this.finish(c, `${path}.${c.name}`);
    for (const s of node.slices) this.finish(s, path);
    const slicedInBase = !!node.origin?.el.slicing;
    if (!node.slices.length && !node.sliceTouched && !(slicedInBase && node.selfDiff)) return;
    const added = node.slices.filter((s) => s.newSlice);
    if (added.some((s) => s.typeSlice)) this.finishTypeSlicing(node, path, added, slicedInBase);
    else {
      for (const s of added) {
        if (s.newSlice === 'unsliced-base') {
          if (s.diff?.min === undefined && node.el.slicing?.rules !== 'closed' && !path.endsWith('xtension.value[x]')) s.el = { ...s.el, min: 0 };
        } else {
          this.profileCardinality(s);
        }
      }
    }
    for (const s of node.slices) {
      if (s.newSlice && cardMax(s.el.max) > cardMax(node.el.max)) s.el = { ...s.el, max: node.el.max };
    }
    if (slicedInBase && node.name.endsWith('[x]') && (node.selfDiff || node.sliceTouched)) {
      // type slicing is closed: a differential saying "open" does not constrain the slices it does not mention
      node.el = { ...node.el, slicing: { discriminator: [{ type: 'type', path: '$this' }], ordered: false, rules: 'closed' } };
    }
    if (slicedInBase && (node.selfDiff || node.sliceTouched) && !node.childTouched && node.origin?.el.type?.[0]?.code !== 'BackboneElement') {
      node.children = undefined; // the slicing is restated: the base's unrolled children are not repeated
    }
    const auto = slicedInBase ? node.sliceTouched && !node.selfDiff : node.extensionSlicing;
    if (auto && cardMax(node.el.base?.max ?? node.el.max) !== 1) {
      const sum = node.slices.reduce((n, s) => n + (s.el.min ?? 0), 0);
      if (sum > (node.el.min ?? 0)) node.el = { ...node.el, min: sum };
    }
  }

  /** A new slice of an element the base slices: mandatory or single when its type profile's root says so. */
  profileCardinality(s: Node): void {
    const profiles = (s.el.type ?? []).flatMap((t) => t.profile ?? []);
    if (profiles.length !== 1) return;
    const root = this.snapshotOf(profiles[0]!, s.el.path ?? '')?.[0];
    if (!root) return;
    if ((root.min ?? 0) > 0 && (s.el.min ?? 0) === 0) s.el = { ...s.el, min: root.min };
    if (cardMax(root.max) <= 1 && cardMax(s.el.max) > 1) s.el = { ...s.el, max: root.max };
  }

  /** Type slices of a choice element: "type/$this" slicing, closed when every type has its slice. */
  finishTypeSlicing(node: Node, path: string, added: Node[], slicedInBase: boolean): void {
    const typeSlices = added.filter((s) => s.typeSlice);
    const matches = (node.selfDiff ? 1 : 0) + typeSlices.length;
    if (matches === 1 && !typeSlices[0]!.renamed && !slicedInBase) {
      const s = typeSlices[0]!;
      if (s.diff?.min === undefined && !path.endsWith('xtension.value[x]')) s.el = { ...s.el, min: 0 };
      return;
    }
    const shortcut = !node.selfDiff;
    const typeListSize = typeSlices.length + (shortcut ? 0 : 1);
    let fixedType: string | undefined;
    typeSlices.forEach((s, i) => {
      if ((s.diff?.min ?? 0) > 0) {
        if (i < typeSlices.length - 1) {
          this.issues.push(issue('error', 'business-rule', `${s.diff?.id}: a type slice is mandatory but other type slices follow it`, s.diff?.id ?? path));
        } else {
          node.el = { ...node.el, min: 1 };
          fixedType = s.typeSlice;
        }
      }
      if (typeListSize > 2 && !slicedInBase) s.el = { ...s.el, min: 0 };
    });
    let types = node.el.type ?? [];
    if (fixedType) types = types.filter((t) => t.code === fixedType);
    const slicing: ElementDefinitionSlicing = { discriminator: [{ type: 'type', path: '$this' }], ordered: false, rules: 'closed' };
    if (node.el.max !== '0' && !slicedInBase) {
      const uncovered = new Set(types.map((t) => t.code ?? ''));
      for (const s of typeSlices) uncovered.delete(s.typeSlice!);
      if (uncovered.size) {
        if (path.includes('xtension.value') && shortcut) types = types.filter((t) => !uncovered.has(t.code ?? ''));
        else slicing.rules = 'open';
      }
    }
    node.el = { ...node.el, type: types, slicing };
  }
}

function sliceId(id: string, host: Node, sliceName: string): string {
  // the id of the slice element itself, from the id of an element at or below it
  const marker = `${host.name}:${sliceName}`;
  const at = id.indexOf(marker);
  if (at >= 0) return id.slice(0, at + marker.length);
  const renamed = id.lastIndexOf(sliceName);
  return renamed >= 0 ? id.slice(0, renamed + sliceName.length) : id;
}

/** The definition to unroll an element's children from: its type's profile, else the type itself. */
function typeDefinitionUrl(types: ElementDefinitionType[] | undefined): string | undefined {
  if (!types?.length) return undefined;
  if (new Set(types.map((t) => t.code)).size > 1) return `${FHIR_SD}Element`;
  const type = types[0]!;
  if (type.profile?.length === 1) return type.profile[0];
  const code = type.code;
  if (!code || code.includes(':')) return undefined; // FHIRPath system types have no children
  return FHIR_SD + code;
}

function findPath(node: Node, path: string): Node | undefined {
  if (node.el.path === path) return node;
  for (const c of node.children ?? []) {
    if (path === c.el.path || path.startsWith(`${c.el.path}.`)) return findPath(c, path);
  }
  return undefined;
}

/** A deep copy of JSON data (faster than structuredClone for FHIR resources). */
function cloneJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneJson) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key in value) out[key] = cloneJson((value as Record<string, unknown>)[key]);
    return out as T;
  }
  return value;
}

/** Snapshot order: an element, its children, then its slices (each with its own children). */
function flatten(node: Node, parentId: string, parentPathValue: string, out: ElementDefinition[]): void {
  const path = parentPathValue ? `${parentPathValue}.${node.name}` : node.name;
  const segment = node.el.sliceName ? `${node.name}:${node.el.sliceName}` : node.name;
  const id = parentId ? `${parentId}.${segment}` : segment;
  const el: ElementDefinition = { id, ...node.el };
  el.id = id;
  el.path = path;
  out.push(el);
  for (const c of node.children ?? []) flatten(c, id, path, out);
  for (const s of node.slices) flatten(s, parentId, parentPathValue, out);
}

/**
 * A copy of `sd` whose snapshot is its base definition's snapshot (generated first when the base
 * has none) constrained by its differential; problems are returned as issues.
 */
export function generateSnapshot(sd: StructureDefinition, resolve: ResolveStructure): { snapshot: StructureDefinition; issues: OperationOutcomeIssue[] } {
  return new Generator(resolve, new Set()).generate(sd);
}
