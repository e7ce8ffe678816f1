// FHIR XML (application/fhir+xml) read into the FHIR JSON the rest of the server works on, following
// the R4 XML and JSON representations (https://hl7.org/fhir/R4/xml.html, json.html).
//
// Two steps, both here: a well-formedness checking XML 1.0 + Namespaces parser (no DTD: a DOCTYPE
// is refused, so only XML's own entities exist), then the conversion to JSON, typed by the R4
// StructureDefinitions indexed in @medplum/core (definitions.ts): which elements repeat (arrays;
// the base max, so profiles' constraints do not change the shape), choice types (valueQuantity),
// primitive values (`value` attribute → string, or number/boolean for decimal, integer,
// positiveInt, unsignedInt and boolean), the `id` and `extension` of primitives (the `_name`
// companion, with null placeholders in arrays), the XHTML narrative (serialized to its string),
// resources inside wrapper elements (contained, Bundle.entry.resource, Parameters.parameter.resource)
// and the attributes that carry id (on elements) and url (on extensions).
//
// Every problem, from a missing '>' to an element FHIR does not define, is a FhirError 400 with an
// OperationOutcome issue of code `structure` (the expression names the element when there is one):
// a client, or a test runner posting XML cases, sees XML it cannot use as a 400 OperationOutcome,
// like malformed JSON. Requires loadDefinitions() to have run (the server does so at start).
import { tryGetDataType, type InternalSchemaElement, type InternalTypeSchema } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { getResourceTypes, isResourceType, typeSchema } from './definitions.ts';
import { FhirError, issue } from './outcome.ts';

export const FHIR_NS = 'http://hl7.org/fhir';
export const XHTML_NS = 'http://www.w3.org/1999/xhtml';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

/** Deeper nesting is refused (a 400) rather than risking the stack: FHIR content is nowhere near. */
const MAX_DEPTH = 1000;

// ---------------------------------------------------------------------------------------------
// XML: a small document model and a parser that enforces well-formedness and namespaces.

export interface XmlAttribute {
  name: string;
  prefix: string;
  localName: string;
  namespaceURI: string | null;
  value: string;
}

export interface XmlText {
  nodeType: 3;
  data: string;
  offset: number;
}

export interface XmlComment {
  nodeType: 8;
  data: string;
}

export interface XmlProcessingInstruction {
  nodeType: 7;
  target: string;
  data: string;
}

export type XmlNode = XmlElement | XmlText | XmlComment | XmlProcessingInstruction;

/** Where the document text is, to turn offsets into line and column for messages. */
class XmlSource {
  readonly text: string;
  private lineStarts: number[] | undefined;

  constructor(text: string) {
    this.text = text;
  }

  location(offset: number): string {
    if (!this.lineStarts) {
      this.lineStarts = [0];
      for (let i = this.text.indexOf('\n'); i !== -1; i = this.text.indexOf('\n', i + 1)) this.lineStarts.push(i + 1);
    }
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return `line ${lo + 1}, column ${offset - this.lineStarts[lo] + 1}`;
  }
}

export class XmlElement {
  readonly nodeType = 1 as const;
  readonly name: string;
  readonly prefix: string;
  readonly localName: string;
  readonly namespaceURI: string | null;
  readonly attributes: XmlAttribute[];
  readonly childNodes: XmlNode[] = [];
  readonly offset: number;
  readonly source: XmlSource;

  constructor(name: string, namespaceURI: string | null, attributes: XmlAttribute[], offset: number, source: XmlSource) {
    const colon = name.indexOf(':');
    this.name = name;
    this.prefix = colon === -1 ? '' : name.slice(0, colon);
    this.localName = colon === -1 ? name : name.slice(colon + 1);
    this.namespaceURI = namespaceURI;
    this.attributes = attributes;
    this.offset = offset;
    this.source = source;
  }

  /** The value of the attribute with this qualified name (as written), or null. */
  getAttribute(name: string): string | null {
    return this.attributes.find((a) => a.name === name)?.value ?? null;
  }

  /** "line 3, column 5" of this element's start tag. */
  get location(): string {
    return this.source.location(this.offset);
  }
}

/** Element children of `element`, optionally only those with the given local name. */
export function elementChildren(element: XmlElement, localName?: string): XmlElement[] {
  return element.childNodes.filter((n): n is XmlElement => n.nodeType === 1 && (localName === undefined || n.localName === localName));
}

function structureError(text: string, expression?: string): FhirError {
  return new FhirError(400, issue('error', 'structure', text, expression));
}

const NAME_START = ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const NAME_CHAR = `${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F\\u2040`;
const NAME_RE = new RegExp(`[${NAME_START}][${NAME_CHAR}]*`, 'uy');
const NCNAME_RE = new RegExp(`^[${NAME_START.slice(1)}][${NAME_CHAR.slice(1)}]*$`, 'u');
const INVALID_CHAR_RE = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const SPACE_RE = /[ \t\n\r]+/y;
const CHAR_DATA_RE = /[^<&]+/y;
const ATT_CHUNK_RE = /[^<&"']+/y;
const XML_DECL_RE =
  /<\?xml[ \t\n\r]+version[ \t\n\r]*=[ \t\n\r]*(["'])1\.[0-9]+\1(?:[ \t\n\r]+encoding[ \t\n\r]*=[ \t\n\r]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:[ \t\n\r]+standalone[ \t\n\r]*=[ \t\n\r]*(["'])(?:yes|no)\4)?[ \t\n\r]*\?>/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/**
 * Parses an XML document (text, or UTF-8 bytes) and returns its document element. Throws a
 * FhirError 400 naming the line and column when the document is not well-formed XML 1.0 with
 * namespaces, is not UTF-8, or has a DOCTYPE.
 */
export function parseXml(input: string | Uint8Array): XmlElement {
  let text: string;
  if (typeof input === 'string') {
    text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input); // drops a BOM
    } catch {
      throw structureError('The body is not valid UTF-8 (FHIR XML is always UTF-8)');
    }
  }
  return new XmlParser(text.replace(/\r\n?/g, '\n')).parse();
}

class XmlParser {
  private readonly s: string;
  private readonly source: XmlSource;
  private pos = 0;

  constructor(s: string) {
    this.s = s;
    this.source = new XmlSource(s);
  }

  private fail(message: string, at = this.pos): never {
    throw structureError(`The body is not well-formed XML: ${message} (${this.source.location(at)})`);
  }

  parse(): XmlElement {
    const bad = INVALID_CHAR_RE.exec(this.s);
    if (bad) this.fail(`character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`, bad.index);
    if (this.s.startsWith('<?xml') && /[ \t\n?]/.test(this.s.charAt(5))) this.declaration();
    this.misc();
    if (this.pos >= this.s.length) this.fail('the document has no root element');
    if (this.s[this.pos] !== '<') this.fail('text is not allowed before the root element');
    const root = this.elementTree();
    this.misc();
    if (this.pos < this.s.length) this.fail('only comments and processing instructions may follow the root element');
    return root;
  }

  private declaration(): void {
    XML_DECL_RE.lastIndex = 0;
    const m = XML_DECL_RE.exec(this.s);
    if (!m) this.fail('malformed XML declaration');
    const encoding = m[3];
    if (encoding !== undefined && encoding.toUpperCase() !== 'UTF-8') this.fail(`the document declares encoding "${encoding}"; FHIR XML is always UTF-8`);
    this.pos = m[0].length;
  }

  /** Whitespace, comments and processing instructions outside the root element. */
  private misc(): void {
    for (;;) {
      this.space();
      if (this.s.startsWith('<!--', this.pos)) this.comment();
      else if (this.s.startsWith('<?', this.pos)) this.processingInstruction();
      else if (this.s.startsWith('<!DOCTYPE', this.pos)) this.fail('DOCTYPE declarations are not allowed in FHIR XML (no DTD, no entities other than XML\'s own)');
      else return;
    }
  }

  private space(): boolean {
    SPACE_RE.lastIndex = this.pos;
    const m = SPACE_RE.exec(this.s);
    if (!m) return false;
    this.pos += m[0].length;
    return true;
  }

  private name(what: string): string {
    NAME_RE.lastIndex = this.pos;
    const m = NAME_RE.exec(this.s);
    if (!m) this.fail(this.pos >= this.s.length ? `unexpected end of the document, expected ${what}` : `expected ${what}`);
    this.pos += m[0].length;
    return m[0];
  }

  private expect(token: string, what: string): void {
    if (!this.s.startsWith(token, this.pos)) this.fail(this.pos >= this.s.length ? `unexpected end of the document, expected ${what}` : `expected ${what}`);
    this.pos += token.length;
  }

  private comment(): XmlComment {
    const start = this.pos;
    const end = this.s.indexOf('-->', start + 4);
    if (end === -1) this.fail('unterminated comment', start);
    const data = this.s.slice(start + 4, end);
    if (data.includes('--') || data.endsWith('-')) this.fail("'--' is not allowed inside a comment", start);
    this.pos = end + 3;
    return { nodeType: 8, data };
  }

  private processingInstruction(): XmlProcessingInstruction {
    const start = this.pos;
    this.pos += 2;
    const target = this.name('a processing instruction target');
    if (target.toLowerCase() === 'xml') this.fail('the XML declaration is only allowed at the very start of the document', start);
    if (this.s.startsWith('?>', this.pos)) {
      this.pos += 2;
      return { nodeType: 7, target, data: '' };
    }
    if (!this.space()) this.fail('expected whitespace after the processing instruction target');
    const end = this.s.indexOf('?>', this.pos);
    if (end === -1) this.fail('unterminated processing instruction', start);
    const data = this.s.slice(this.pos, end);
    this.pos = end + 2;
    return { nodeType: 7, target, data };
  }

  /** A character or entity reference at '&': its replacement text. */
  private reference(): string {
    const start = this.pos;
    const end = this.s.indexOf(';', start);
    const body = end === -1 ? '' : this.s.slice(start + 1, end);
    let cp: number | undefined;
    if (/^#[0-9]+$/.test(body)) cp = Number.parseInt(body.slice(1), 10);
    else if (/^#x[0-9A-Fa-f]+$/.test(body)) cp = Number.parseInt(body.slice(2), 16);
    else if (body.startsWith('#') || end === -1 || !NCNAME_RE.test(body)) this.fail("malformed reference: '&' must start a reference such as &amp; or &#160;", start);
    this.pos = end + 1;
    if (cp !== undefined) {
      if (!isXmlChar(cp)) this.fail(`&${body}; is not a character allowed in XML`, start);
      return String.fromCodePoint(cp);
    }
    const value = Object.hasOwn(PREDEFINED, body) ? PREDEFINED[body] : undefined;
    if (value === undefined) this.fail(`The entity "${body}" was referenced, but not declared (FHIR XML has no DTD: write the character itself or a character reference such as &#174;)`, start);
    return value;
  }

  private attributeValue(): string {
    const quote = this.s[this.pos];
    if (quote !== '"' && quote !== "'") this.fail('attribute values must be quoted');
    this.pos++;
    let value = '';
    for (;;) {
      ATT_CHUNK_RE.lastIndex = this.pos;
      const m = ATT_CHUNK_RE.exec(this.s);
      if (m) {
        // Attribute-value normalization (XML 3.3.3): each literal whitespace character becomes a space.
        value += m[0].replace(/[\t\n\r]/g, ' ');
        this.pos += m[0].length;
      }
      const c = this.s[this.pos];
      if (c === quote) {
        this.pos++;
        return value;
      }
      if (c === undefined) this.fail('unterminated attribute value');
      if (c === '<') this.fail("'<' is not allowed in an attribute value (write &lt;)");
      if (c === '&') value += this.reference();
      else {
        value += c; // the other quote character
        this.pos++;
      }
    }
  }

  /** The element starting at the current '<', with all its content (iteratively: no recursion on depth). */
  private elementTree(): XmlElement {
    const stack: { element: XmlElement; scope: Map<string, string> }[] = [];
    let text = '';
    let textStart = 0;
    const flush = (): void => {
      if (text !== '') stack[stack.length - 1].element.childNodes.push({ nodeType: 3, data: text, offset: textStart });
      text = '';
    };
    const root = this.startTag(stack, new Map([['xml', XML_NS]]));
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const c = this.s[this.pos];
      if (c === undefined) this.fail(`unexpected end of the document: <${top.element.name}> (${top.element.location}) is not closed`);
      if (c === '<') {
        if (this.s.startsWith('</', this.pos)) {
          flush();
          const start = this.pos;
          this.pos += 2;
          const name = this.name('an element name');
          this.space();
          this.expect('>', "'>'");
          if (name !== top.element.name) this.fail(`the end tag </${name}> does not match the start tag <${top.element.name}> (${top.element.location})`, start);
          stack.pop();
        } else if (this.s.startsWith('<!--', this.pos)) {
          flush();
          top.element.childNodes.push(this.comment());
        } else if (this.s.startsWith('<![CDATA[', this.pos)) {
          const end = this.s.indexOf(']]>', this.pos + 9);
          if (end === -1) this.fail('unterminated CDATA section');
          if (text === '') textStart = this.pos;
          text += this.s.slice(this.pos + 9, end);
          this.pos = end + 3;
        } else if (this.s.startsWith('<?', this.pos)) {
          flush();
          top.element.childNodes.push(this.processingInstruction());
        } else if (this.s.startsWith('<!', this.pos)) {
          this.fail('markup declarations (<!...>) are not allowed in element content');
        } else {
          flush();
          this.startTag(stack, top.scope);
        }
      } else {
        if (text === '') textStart = this.pos;
        if (c === '&') text += this.reference();
        else {
          CHAR_DATA_RE.lastIndex = this.pos;
          const chunk = CHAR_DATA_RE.exec(this.s)![0];
          const cdataEnd = chunk.indexOf(']]>');
          if (cdataEnd !== -1) this.fail("']]>' is not allowed in text", this.pos + cdataEnd);
          text += chunk;
          this.pos += chunk.length;
        }
      }
    }
    return root;
  }

  /** Reads a start tag, attaches the element to its parent (the top of the stack) and pushes it unless empty. */
  private startTag(stack: { element: XmlElement; scope: Map<string, string> }[], parentScope: Map<string, string>): XmlElement {
    const start = this.pos;
    if (stack.length >= MAX_DEPTH) this.fail(`elements nested more than ${MAX_DEPTH} deep`);
    this.pos++; // '<'
    const name = this.name('an element name');
    const raw: { name: string; value: string; offset: number }[] = [];
    let empty = false;
    for (;;) {
      const spaced = this.space();
      if (this.s.startsWith('/>', this.pos)) {
        this.pos += 2;
        empty = true;
        break;
      }
      if (this.s[this.pos] === '>') {
        this.pos++;
        break;
      }
      if (this.pos >= this.s.length) this.fail(`unexpected end of the document in the start tag <${name}>`);
      if (!spaced) this.fail(`expected whitespace, '>' or '/>' in the start tag <${name}>`);
      const offset = this.pos;
      const attribute = this.name('an attribute name');
      this.space();
      this.expect('=', `'=' after the attribute name ${attribute}`);
      this.space();
      const value = this.attributeValue();
      if (raw.some((a) => a.name === attribute)) this.fail(`the attribute ${attribute} appears twice on <${name}>`, offset);
      raw.push({ name: attribute, value, offset });
    }

    // Namespaces (Namespaces in XML 1.0): declarations first, then resolve the prefixes.
    let scope = parentScope;
    for (const a of raw) {
      if (a.name !== 'xmlns' && !a.name.startsWith('xmlns:')) continue;
      const prefix = a.name === 'xmlns' ? '' : a.name.slice(6);
      if (prefix !== '' && !NCNAME_RE.test(prefix)) this.fail(`invalid namespace prefix "${prefix}"`, a.offset);
      if (prefix === 'xmlns' || (prefix === 'xml') !== (a.value === XML_NS) || a.value === XMLNS_NS) {
        this.fail(`the reserved prefix or namespace in ${a.name}="${a.value}" cannot be declared`, a.offset);
      }
      if (prefix !== '' && a.value === '') this.fail(`the prefix "${prefix}" cannot be undeclared`, a.offset);
      if (scope === parentScope) scope = new Map(parentScope);
      scope.set(prefix, a.value);
    }
    const resolve = (qname: string, offset: number, isElement: boolean): string | null => {
      const colon = qname.indexOf(':');
      if (colon === -1) return isElement ? scope.get('') || null : null;
      if (colon === 0 || colon === qname.length - 1 || qname.includes(':', colon + 1)) this.fail(`"${qname}" is not a valid qualified name`, offset);
      const prefix = qname.slice(0, colon);
      const uri = scope.get(prefix);
      if (uri === undefined) this.fail(`the namespace prefix "${prefix}" of ${qname} is not declared`, offset);
      return uri;
    };
    const namespaceURI = resolve(name, start + 1, true);
    const attributes: XmlAttribute[] = [];
    for (const a of raw) {
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;
      const ns = resolve(a.name, a.offset, false);
      const colon = a.name.indexOf(':');
      const localName = colon === -1 ? a.name : a.name.slice(colon + 1);
      if (ns !== null && attributes.some((b) => b.namespaceURI === ns && b.localName === localName)) {
        this.fail(`the attribute {${ns}}${localName} appears twice on <${name}>`, a.offset);
      }
      attributes.push({ name: a.name, prefix: colon === -1 ? '' : a.name.slice(0, colon), localName, namespaceURI: ns, value: a.value });
    }
    const element = new XmlElement(name, namespaceURI, attributes, start, this.source);
    if (stack.length > 0) stack[stack.length - 1].element.childNodes.push(element);
    if (!empty) stack.push({ element, scope });
    return element;
  }
}

// ---------------------------------------------------------------------------------------------
// XHTML narrative: serialized to the string FHIR JSON carries, with the XHTML namespace on the div.

function escapeText(text: string): string {
  // A carriage return can only come from &#13;: written back as a reference, it survives a new parse.
  return text.replace(/[&<>\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' })[c]!);
}

function escapeAttribute(value: string): string {
  return value.replace(/[&<>"\t\n\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' })[c]!);
}

/**
 * The XHTML element as a string: namespace-well-formed on its own (the div declares the XHTML
 * namespace; any other namespace is declared where it is used). Comments and processing
 * instructions are left out, like everywhere else in a resource.
 */
export function serializeXhtml(div: XmlElement): string {
  const out: string[] = [];
  writeXhtml(div, new Map([['xml', XML_NS]]), out, true);
  return out.join('');
}

function writeXhtml(element: XmlElement, parentScope: Map<string, string>, out: string[], root: boolean): void {
  const scope = new Map(parentScope);
  const declarations: string[] = [];
  const ns = element.namespaceURI ?? '';
  let tag: string;
  if (root || ns === (scope.get('') ?? '')) {
    tag = element.localName;
    if (root) {
      declarations.push(` xmlns="${escapeAttribute(ns)}"`);
      scope.set('', ns);
    }
  } else if (element.prefix !== '') {
    tag = element.name;
    if (scope.get(element.prefix) !== ns) {
      declarations.push(` xmlns:${element.prefix}="${escapeAttribute(ns)}"`);
      scope.set(element.prefix, ns);
    }
  } else {
    tag = element.localName;
    declarations.push(` xmlns="${escapeAttribute(ns)}"`);
    scope.set('', ns);
  }
  const attributes: string[] = [];
  for (const a of element.attributes) {
    let name = a.localName;
    if (a.namespaceURI === XML_NS) name = `xml:${a.localName}`;
    else if (a.namespaceURI !== null) {
      let prefix = a.prefix;
      if (scope.get(prefix) !== a.namespaceURI) {
        for (let i = 1; scope.has(prefix) && scope.get(prefix) !== a.namespaceURI; i++) prefix = `ns${i}`;
        if (!scope.has(prefix)) {
          declarations.push(` xmlns:${prefix}="${escapeAttribute(a.namespaceURI)}"`);
          scope.set(prefix, a.namespaceURI);
        }
      }
      name = `${prefix}:${a.localName}`;
    }
    attributes.push(` ${name}="${escapeAttribute(a.value)}"`);
  }
  out.push(`<${tag}${declarations.join('')}${attributes.join('')}`);
  const content = element.childNodes.filter((n) => n.nodeType === 1 || n.nodeType === 3);
  if (content.length === 0) {
    out.push('/>');
    return;
  }
  out.push('>');
  for (const node of content) {
    if (node.nodeType === 3) out.push(escapeText(node.data));
    else if (node.nodeType === 1) writeXhtml(node, scope, out, false);
  }
  out.push(`</${tag}>`);
}

// ---------------------------------------------------------------------------------------------
// FHIR: the XML elements read as FHIR JSON, typed by the StructureDefinitions.

type Json = Record<string, unknown>;

/** How a child element name of a type is read: its definition, its type, and the choice it belongs to. */
interface ElementInfo {
  definition: InternalSchemaElement;
  type: string;
  /** For a choice element (value[x]), its key: two different choices of one key cannot both appear. */
  choice?: string;
}

const elementInfoCache = new WeakMap<InternalTypeSchema, Map<string, ElementInfo | null>>();

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function elementInfo(schema: InternalTypeSchema, name: string): ElementInfo | undefined {
  let cache = elementInfoCache.get(schema);
  if (!cache) elementInfoCache.set(schema, (cache = new Map()));
  let info = cache.get(name);
  if (info === undefined) {
    info = null;
    const exact = Object.hasOwn(schema.elements, name) ? schema.elements[name] : undefined;
    if (exact && exact.type.length > 0) info = { definition: exact, type: exact.type[0].code };
    else {
      for (const [key, definition] of Object.entries(schema.elements)) {
        if (!key.endsWith('[x]')) continue;
        const base = key.slice(0, -3);
        if (!name.startsWith(base)) continue;
        const type = definition.type.find((t) => capitalize(t.code) === name.slice(base.length));
        if (type) {
          info = { definition, type: type.code, choice: key };
          break;
        }
      }
    }
    cache.set(name, info);
  }
  return info ?? undefined;
}

function isPrimitive(type: string): boolean {
  return /^[a-z]/.test(type) || type.startsWith('http://hl7.org/fhirpath/System.');
}

function schemaOf(type: string, path: string): InternalTypeSchema {
  const schema = isResourceType(type) ? typeSchema(type) : tryGetDataType(type);
  if (!schema) throw structureError(`${path}: no definition of the type ${type}`, path);
  return schema;
}

const INTEGER_RE: Record<string, RegExp> = {
  integer: /^-?([0]|([1-9][0-9]*))$/,
  positiveInt: /^\+?[1-9][0-9]*$/,
  unsignedInt: /^([0]|([1-9][0-9]*))$/,
};
const DECIMAL_RE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

/**
 * The JSON value of a primitive's value attribute. Numbers and booleans are read after removing the
 * surrounding whitespace their XML Schema types collapse; every other type keeps the attribute value
 * exactly as XML reports it.
 */
function primitiveValue(type: string, raw: string, path: string): string | number | boolean {
  const invalid = (): FhirError => structureError(`${path}: "${raw}" is not a valid ${type}`, path);
  switch (type) {
    case 'boolean': {
      const v = raw.trim();
      if (v !== 'true' && v !== 'false') throw invalid();
      return v === 'true';
    }
    case 'integer':
    case 'positiveInt':
    case 'unsignedInt': {
      const v = raw.trim();
      if (!INTEGER_RE[type].test(v)) throw invalid();
      return Number(v);
    }
    case 'decimal': {
      const v = raw.trim();
      const n = Number(v);
      if (!DECIMAL_RE.test(v) || !Number.isFinite(n)) throw invalid();
      return n;
    }
    default:
      return raw;
  }
}

function describe(element: XmlElement): string {
  if (element.namespaceURI === null) return `<${element.localName}> (no namespace)`;
  if (element.namespaceURI === FHIR_NS) return `<${element.localName}>`;
  return `<${element.localName}> in the namespace ${element.namespaceURI}`;
}

/** The attributes FHIR allows here (by local name, without namespace); other namespaces are ignored (xsi:schemaLocation). */
function readAttributes(element: XmlElement, allowed: readonly string[], path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const a of element.attributes) {
    if (a.namespaceURI !== null) continue;
    if (!allowed.includes(a.localName)) {
      const where = allowed.length ? `only ${allowed.join(' and ')} attributes are allowed here` : 'no attributes are allowed here';
      throw structureError(`${path}: unknown attribute "${a.localName}" on ${describe(element)} (${element.location}); ${where}`, path);
    }
    values[a.localName] = a.value;
  }
  return values;
}

/** Element children only; text other than whitespace is refused (FHIR elements never hold text). */
function contentElements(element: XmlElement, path: string): XmlElement[] {
  const children: XmlElement[] = [];
  for (const node of element.childNodes) {
    if (node.nodeType === 1) children.push(node);
    else if (node.nodeType === 3 && /[^ \t\n\r]/.test(node.data)) {
      const trimmed = node.data.trim();
      const shown = trimmed.length > 40 ? `${trimmed.slice(0, 40)}…` : trimmed;
      const where = element.source.location(node.offset);
      throw structureError(`${path}: text is not allowed in ${describe(element)} (${where}), found "${shown}"; values go in value attributes`, path);
    }
  }
  return children;
}

interface Entry {
  value: unknown;
  /** A primitive's id and extensions: the `_name` companion. */
  extra: Json | undefined;
}

/**
 * Reads the children of `element` (an instance of `schema`) into `out`. `attributeNames` are the
 * elements XML carries as attributes here, not as child elements (id on elements, url on extensions).
 */
function convertChildren(element: XmlElement, schema: InternalTypeSchema, path: string, out: Json, attributeNames: readonly string[]): void {
  const groups = new Map<string, { array: boolean; entries: Entry[] }>();
  let choices: Map<string, string> | undefined;
  for (const child of contentElements(element, path)) {
    const name = child.localName;
    let info = elementInfo(schema, name);
    if (info && attributeNames.includes(name)) info = undefined;
    const isXhtml = info?.type === 'xhtml';
    let reason: string | undefined;
    if (!info) {
      if (child.namespaceURI !== FHIR_NS) reason = `${describe(child)} is not a FHIR element (FHIR elements are in the namespace ${FHIR_NS})`;
      else if (attributeNames.includes(name)) reason = `${name} is written as an attribute in XML (<${element.localName} ${name}="…">), not as an element`;
      else reason = `unknown element ${describe(child)}: ${schema.name} has no element "${name}"`;
    } else if (isXhtml && child.namespaceURI !== XHTML_NS) reason = `${describe(child)} must be an XHTML div (namespace ${XHTML_NS})`;
    else if (!isXhtml && child.namespaceURI !== FHIR_NS) reason = `${describe(child)} is not a FHIR element (FHIR elements are in the namespace ${FHIR_NS})`;
    if (reason !== undefined || !info) {
      throw structureError(`${path}.${name}: ${reason} (${child.location})`, `${path}.${name}`);
    }
    let group = groups.get(name);
    if (!group) groups.set(name, (group = { array: info.definition.isArray === true, entries: [] }));
    else if (!group.array) {
      throw structureError(`${path}.${name}: the element appears more than once, but it does not repeat (max 1) (${child.location})`, `${path}.${name}`);
    }
    if (info.choice) {
      choices ??= new Map();
      const other = choices.get(info.choice);
      if (other !== undefined && other !== name) {
        throw structureError(`${path}.${name}: ${other} and ${name} are both present, but ${info.choice} takes one type (${child.location})`, `${path}.${name}`);
      }
      choices.set(info.choice, name);
    }
    const childPath = group.array ? `${path}.${name}[${group.entries.length}]` : `${path}.${name}`;
    group.entries.push(convertElement(child, info.type, childPath));
  }
  for (const [name, { array, entries }] of groups) {
    if (array) {
      if (entries.some((e) => e.value !== undefined)) out[name] = entries.map((e) => e.value ?? null);
      if (entries.some((e) => e.extra !== undefined)) out[`_${name}`] = entries.map((e) => e.extra ?? null);
    } else {
      if (entries[0].value !== undefined) out[name] = entries[0].value;
      if (entries[0].extra !== undefined) out[`_${name}`] = entries[0].extra;
    }
  }
}

function convertElement(element: XmlElement, type: string, path: string): Entry {
  if (type === 'xhtml') {
    // The div's attributes are XHTML's: kept by the serialization, judged by validation (txt-1).
    return { value: serializeXhtml(element), extra: undefined };
  }
  if (type === 'Resource') {
    readAttributes(element, [], path);
    const inner = contentElements(element, path);
    if (inner.length !== 1) throw structureError(`${path}: must contain exactly one resource, found ${inner.length} elements (${element.location})`, path);
    return { value: convertResource(inner[0], path), extra: undefined };
  }
  if (isPrimitive(type)) {
    const attributes = readAttributes(element, ['value', 'id'], path);
    const extra: Json = {};
    if (attributes.id !== undefined) extra.id = attributes.id;
    convertChildren(element, schemaOf('Element', path), path, extra, ['id']);
    const value = attributes.value === undefined ? undefined : primitiveValue(type, attributes.value, path);
    if (value === undefined && Object.keys(extra).length === 0) {
      throw structureError(`${path}: the element is empty; a primitive element has a value attribute, an id or extensions (${element.location})`, path);
    }
    return { value, extra: Object.keys(extra).length > 0 ? extra : undefined };
  }
  const attributeNames = type === 'Extension' ? ['id', 'url'] : ['id'];
  const value: Json = { ...readAttributes(element, attributeNames, path) };
  convertChildren(element, schemaOf(type, path), path, value, attributeNames);
  return { value, extra: undefined };
}

/**
 * Converts a FHIR resource element (<Patient xmlns="http://hl7.org/fhir">, or one inside a
 * wrapper such as <contained>) to FHIR JSON. `path` is where it sits, for messages.
 */
export function convertResource(element: XmlElement, path?: string): Resource {
  if (getResourceTypes().length === 0) throw new Error('parseFhirXml needs the definitions: await loadDefinitions() first');
  const where = path ? `${path}: ` : '';
  if (element.namespaceURI !== FHIR_NS) {
    throw structureError(`${where}${describe(element)} is not a FHIR resource: resources are in the namespace ${FHIR_NS} (${element.location})`, path);
  }
  const type = element.localName;
  if (!isResourceType(type)) throw structureError(`${where}<${type}> is not a FHIR R4 resource type (${element.location})`, path);
  const resourcePath = path ?? type;
  readAttributes(element, [], resourcePath);
  const out: Json = { resourceType: type };
  convertChildren(element, schemaOf(type, resourcePath), resourcePath, out, []);
  return out as unknown as Resource;
}

/**
 * Parses a FHIR XML document (text, or its UTF-8 bytes) into the FHIR JSON resource the JSON
 * parser would have produced for the same content. Throws FhirError 400 (issue code `structure`)
 * for anything that is not well-formed XML or not a FHIR R4 resource in FHIR's XML representation.
 */
export function parseFhirXml(text: string | Uint8Array): Resource {
  return convertResource(parseXml(text));
}
