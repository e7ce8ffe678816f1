// A StructureDefinition's snapshot as a tree the validator walks: each element with its
// children, its slices, and what validation reads from it prepared once (cardinality, JSON
// shape, fixed/pattern values). Compiled once per definition and cached.
import type { ElementDefinition, ElementDefinitionType, StructureDefinition } from '@medplum/fhirtypes';

export interface ElementNode {
  id: string;
  path: string;
  /** The last path segment: "identifier", "value[x]". */
  name: string;
  ed: ElementDefinition;
  min: number;
  max: number;
  types: ElementDefinitionType[];
  /** Repeats in JSON (an array), from the base definition's cardinality. */
  array: boolean;
  choice: boolean;
  children: ElementNode[];
  slices: ElementNode[];
  sliceName?: string;
  /** fixed[x] / pattern[x], if any. */
  fixed?: unknown;
  pattern?: unknown;
  /** contentReference target id ("Questionnaire.item"). */
  contentReference?: string;
}

export interface CompiledStructure {
  sd: StructureDefinition;
  root: ElementNode;
  byId: Map<string, ElementNode>;
}

const compiled = new WeakMap<StructureDefinition, CompiledStructure>();

function cardinality(max: string | undefined): number {
  if (max === undefined || max === '*') return Infinity;
  return Number(max);
}

function valueOfPrefix(ed: ElementDefinition, prefix: 'fixed' | 'pattern'): unknown {
  for (const [k, v] of Object.entries(ed)) if (k.startsWith(prefix) && k.length > prefix.length && /[A-Z]/.test(k[prefix.length])) return v;
  return undefined;
}

/** Splits an element id on the dots that separate path segments (not those inside slice names). */
function lastSegment(id: string): { parent: string; segment: string } {
  const i = id.lastIndexOf('.');
  // A dot inside the slice name of the last segment ("extension:fr.x") is not a separator.
  const colon = id.lastIndexOf(':');
  if (colon > i) {
    const j = id.lastIndexOf('.', colon);
    return { parent: id.slice(0, Math.max(j, 0)), segment: id.slice(j + 1) };
  }
  return { parent: id.slice(0, Math.max(i, 0)), segment: id.slice(i + 1) };
}

function idsOf(elements: ElementDefinition[]): string[] {
  // Old snapshots may lack ids: rebuild them from path and sliceName.
  const ids: string[] = [];
  const sliceAt = new Map<string, string>(); // path -> id prefix in effect for children
  for (const e of elements) {
    if (e.id) {
      ids.push(e.id);
      continue;
    }
    const parentPath = e.path.slice(0, e.path.lastIndexOf('.'));
    const parentId = sliceAt.get(parentPath) ?? parentPath;
    let id = parentId ? `${parentId}.${e.path.slice(e.path.lastIndexOf('.') + 1)}` : e.path;
    if (e.sliceName) id += `:${e.sliceName}`;
    sliceAt.set(e.path, id);
    ids.push(id);
  }
  return ids;
}

export function compileStructure(sd: StructureDefinition): CompiledStructure {
  const done = compiled.get(sd);
  if (done) return done;
  const elements = sd.snapshot?.element ?? [];
  const ids = idsOf(elements);
  const byId = new Map<string, ElementNode>();
  let root: ElementNode | undefined;
  elements.forEach((ed, i) => {
    const id = ids[i];
    const name = ed.path.slice(ed.path.lastIndexOf('.') + 1);
    const baseMax = ed.base?.max ?? ed.max;
    const node: ElementNode = {
      id,
      path: ed.path,
      name,
      ed,
      min: ed.min ?? 0,
      max: cardinality(ed.max),
      types: ed.type ?? [],
      array: cardinality(baseMax) > 1,
      choice: name.endsWith('[x]'),
      children: [],
      slices: [],
      sliceName: ed.sliceName,
      fixed: valueOfPrefix(ed, 'fixed'),
      pattern: valueOfPrefix(ed, 'pattern'),
      contentReference: ed.contentReference?.replace(/^[^#]*#/, ''),
    };
    byId.set(id, node);
    if (!root) {
      root = node;
      return;
    }
    const { parent, segment } = lastSegment(id);
    const colon = segment.indexOf(':');
    if (colon >= 0) {
      // A slice (or re-slice "a:b/c") of the element "parent.name[:b]".
      const slashed = segment.lastIndexOf('/');
      const slicedId = slashed > colon ? `${parent ? parent + '.' : ''}${segment.slice(0, slashed)}` : `${parent ? parent + '.' : ''}${segment.slice(0, colon)}`;
      const sliced = byId.get(slicedId);
      if (sliced) {
        sliced.slices.push(node);
        return;
      }
    }
    byId.get(parent)?.children.push(node);
  });
  const result: CompiledStructure = { sd, root: root ?? emptyRoot(sd), byId };
  compiled.set(sd, result);
  return result;
}

function emptyRoot(sd: StructureDefinition): ElementNode {
  const ed = { id: sd.type, path: sd.type } as ElementDefinition;
  return { id: sd.type, path: sd.type, name: sd.type, ed, min: 0, max: Infinity, types: [], array: false, choice: false, children: [], slices: [] };
}

/** The JSON property name of a choice element for one of its types: value[x] + Quantity → valueQuantity. */
export function choiceKey(name: string, typeCode: string): string {
  return name.slice(0, -3) + typeCode[0].toUpperCase() + typeCode.slice(1);
}
