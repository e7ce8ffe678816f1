// The R4 primitive types: their JSON representation and lexical rules (datatypes.html).
export const PRIMITIVE_JSON: Record<string, 'string' | 'number' | 'boolean'> = {
  boolean: 'boolean',
  integer: 'number',
  decimal: 'number',
  unsignedInt: 'number',
  positiveInt: 'number',
  string: 'string',
  uri: 'string',
  url: 'string',
  canonical: 'string',
  base64Binary: 'string',
  instant: 'string',
  date: 'string',
  dateTime: 'string',
  time: 'string',
  code: 'string',
  oid: 'string',
  id: 'string',
  markdown: 'string',
  uuid: 'string',
  xhtml: 'string',
};

/** FHIRPath system types used in snapshots for ids, urls and primitive values. */
const SYSTEM_TYPES: Record<string, string> = {
  'http://hl7.org/fhirpath/System.String': 'string',
  'http://hl7.org/fhirpath/System.Boolean': 'boolean',
  'http://hl7.org/fhirpath/System.Integer': 'integer',
  'http://hl7.org/fhirpath/System.Decimal': 'decimal',
  'http://hl7.org/fhirpath/System.Date': 'date',
  'http://hl7.org/fhirpath/System.DateTime': 'dateTime',
  'http://hl7.org/fhirpath/System.Time': 'time',
};

export function normalTypeCode(code: string): string {
  return SYSTEM_TYPES[code] ?? code;
}

export function isPrimitive(code: string): boolean {
  return normalTypeCode(code) in PRIMITIVE_JSON;
}

const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(0[1-9]|1[0-2])';
const DAY = '(0[1-9]|[1-2][0-9]|3[0-1])';
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?';
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';

const LEXICAL: Record<string, RegExp> = {
  date: new RegExp(`^${YEAR}(-${MONTH}(-${DAY})?)?$`),
  dateTime: new RegExp(`^${YEAR}(-${MONTH}(-${DAY}(T${TIME}${ZONE})?)?)?$`),
  instant: new RegExp(`^${YEAR}-${MONTH}-${DAY}T${TIME}${ZONE}$`),
  time: new RegExp(`^${TIME}$`),
  id: /^[A-Za-z0-9\-.]{1,64}$/,
  oid: /^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$/,
  uuid: /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  code: /^[^\s]+( [^\s]+)*$/,
  uri: /^\S*$/,
  url: /^\S*$/,
  canonical: /^\S*$/,
  base64Binary: /^(\s*([0-9a-zA-Z+/=]){4}\s*)+$/,
};

/** A lexical problem with a primitive value (its JSON type already checked), or undefined. */
export function primitiveProblem(type: string, value: unknown): string | undefined {
  if (typeof value === 'string') {
    if (type !== 'xhtml' && value.length === 0) return 'must not be empty (leave the element out instead)';
    if ((type === 'string' || type === 'markdown') && value.trim().length === 0) return 'must contain more than white space';
    if ((type === 'string' || type === 'markdown') && value.length > 1024 * 1024) return 'is longer than 1 MB';
    const re = LEXICAL[type];
    if (re && !re.test(value)) return `is not a valid ${type}`;
    if ((type === 'date' || type === 'dateTime' || type === 'instant') && value.length >= 10) {
      const [y, m, d] = [Number(value.slice(0, 4)), Number(value.slice(5, 7)), Number(value.slice(8, 10))];
      if (d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return `is not a valid ${type}: day ${d} does not exist in ${value.slice(0, 7)}`;
    }
    // A canonical names a resource by its canonical URL, which is absolute (or a #fragment: a contained resource).
    if (type === 'canonical' && !/^(#|[a-z][a-z0-9+.-]*:)/i.test(value)) return 'must be an absolute URL (or a #fragment to a contained resource)';
    if ((type === 'uri' || type === 'url' || type === 'canonical') && value.startsWith('urn:oid:') && !LEXICAL.oid.test(value)) return 'is not a valid OID URI';
    if ((type === 'uri' || type === 'url' || type === 'canonical') && value.startsWith('urn:uuid:') && !LEXICAL.uuid.test(value)) return 'is not a valid UUID URI';
    return undefined;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'is not a finite number';
    if (type === 'integer' || type === 'unsignedInt' || type === 'positiveInt') {
      if (!Number.isInteger(value)) return `must be a whole number (${type})`;
      if (value > 2147483647 || value < -2147483648) return `is outside the 32-bit range of ${type}`;
      if (type === 'unsignedInt' && value < 0) return 'must be 0 or more (unsignedInt)';
      if (type === 'positiveInt' && value < 1) return 'must be 1 or more (positiveInt)';
    }
  }
  return undefined;
}
