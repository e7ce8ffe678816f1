// The CapabilityStatement (capabilities interaction), generated from the interaction registry
// and the search parameter definitions the engine indexes: it states what the server does.
// `GET /metadata?mode=terminology` answers the TerminologyCapabilities of the terminology engine.
import { createHash } from 'node:crypto';
import type { CapabilityStatement, CapabilityStatementRestResource, CapabilityStatementRestResourceSearchParam, TerminologyCapabilities } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import { getCompartments, getResourceTypes, getSearchParams, searchParametersVersion, type SearchParamDef } from '../definitions.ts';
import { AUDIT_DOCUMENTATION, AUDIT_INTERACTIONS, AUDIT_SEARCH_PARAMS } from '../../audit/search.ts';
import { AUDIT_RESOURCE_TYPE } from '../../store/audit.ts';
import { registry } from '../router.ts';
import type { InteractionCode } from '../registry.ts';
import { errors } from '../outcome.ts';
import type { FhirRequest } from '../request.ts';
import type { FhirResponse } from '../response.ts';
import { compositeSpec } from '../search/indexer.ts';
import { lastValue } from '../search/parse.ts';
import { EXPAND_PARAMETERS, EXPAND_TEXT_FILTER } from './terminology.ts';
import { supportedModifiers } from '../search/sql.ts';

const TYPE_INTERACTIONS: InteractionCode[] = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'];
const SYSTEM_INTERACTIONS: InteractionCode[] = ['transaction', 'batch', 'search-system', 'history-system'];
const INDEXED_TYPES = new Set(['number', 'date', 'string', 'token', 'reference', 'quantity', 'uri']);
// Parameters with an engine of their own (search/sql.ts specialSql), on every resource type.
const SPECIAL_PARAMS: CapabilityStatementRestResourceSearchParam[] = [
  { name: '_text', type: 'string', definition: 'http://hl7.org/fhir/SearchParameter/DomainResource-text', documentation: 'French full text on the narrative, accent-insensitive; web-search syntax' },
  { name: '_content', type: 'string', definition: 'http://hl7.org/fhir/SearchParameter/Resource-content', documentation: 'French full text on all the text of the resource, accent-insensitive; web-search syntax' },
  { name: '_list', type: 'string', documentation: 'Resources referenced by the entries of a List (by id); functional lists ($current-...) are not supported' },
];
// The parameters of every resource (Resource-id, Resource-lastUpdated), at type and system level.
const RESOURCE_PARAMS: CapabilityStatementRestResourceSearchParam[] = [
  { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
  { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
];
export const SOFTWARE = { name: 'fhir-coordination-server', version: '0.1.0' };

/**
 * The statement as served, with its JSON bytes and validator: about 1 MB, serialised and encoded
 * once per build instead of at every request (13 ms of CPU each, 5 of them encoding the text), and
 * rebuilt when custom SearchParameters are added or removed (definitions.ts counts changes), or
 * for another base URL or security (servers of one process: the tests).
 */
interface Published {
  statement: CapabilityStatement;
  bytes: Buffer;
  /** ETag and Last-Modified. */
  headers: Record<string, string>;
  base: string;
  version: number;
  security: FhirContext['restSecurity'];
}
let published: Published | undefined;

function publish(ctx: FhirContext): Published {
  const version = searchParametersVersion();
  const p = published;
  if (p && p.base === ctx.baseUrl && p.version === version && p.security === ctx.restSecurity) return p;
  const statement = buildStatement(ctx);
  const text = JSON.stringify(statement);
  // Weak: _summary, _elements and _pretty give other bytes of the same statement.
  const etag = `W/"${createHash('sha256').update(text).digest('base64url').slice(0, 22)}"`;
  const headers = { etag, 'last-modified': new Date(statement.date!).toUTCString() };
  published = { statement, bytes: Buffer.from(text), headers, base: ctx.baseUrl, version, security: ctx.restSecurity };
  return published;
}

/**
 * GET [base]/metadata{?mode=full|normative|terminology}. Every part of an R4
 * CapabilityStatement is normative, so `normative` is the full statement. Conditional: an
 * If-None-Match naming the current ETag is answered 304.
 */
export function capabilities(ctx: FhirContext, req: FhirRequest): FhirResponse {
  const mode = lastValue(req.query, 'mode');
  if (mode === 'terminology') return { status: 200, resource: terminologyCapabilities(ctx), headers: {} };
  if (mode !== undefined && mode !== 'full' && mode !== 'normative') {
    throw errors.invalid(`mode must be full, normative or terminology, not "${mode}"`, 'mode');
  }
  const p = publish(ctx);
  if (req.ifNoneMatch !== undefined && matchesETag(req.ifNoneMatch, p.headers.etag)) return { status: 304, headers: p.headers };
  return { status: 200, resource: p.statement, raw: p.bytes, headers: p.headers };
}

/** If-None-Match's weak comparison (RFC 9110 13.1.2): `*`, or one of the listed tags, W/ or not. */
function matchesETag(header: string, etag: string): boolean {
  const opaque = (t: string) => t.trim().replace(/^W\//, '');
  return header.trim() === '*' || header.split(',').some((t) => opaque(t) === opaque(etag));
}

/**
 * What the terminology engine (src/fhir/terminology) does: $expand with a text filter and
 * paging over a flat list, $validate-code (no translations), $lookup and $subsumes. The code
 * systems are not listed: they are the R4 base ones, those of the loaded packages and those
 * stored on the server, which change with the data.
 */
function terminologyCapabilities(ctx: FhirContext): TerminologyCapabilities {
  const p = publish(ctx);
  return {
    resourceType: 'TerminologyCapabilities',
    status: 'active',
    date: p.statement.date,
    kind: 'instance',
    software: SOFTWARE,
    implementation: p.statement.implementation,
    lockedDate: false,
    expansion: {
      hierarchical: false,
      paging: true,
      incomplete: false,
      parameter: EXPAND_PARAMETERS.map((name) => ({ name })),
      textFilter: EXPAND_TEXT_FILTER,
    },
    validateCode: { translations: false },
  };
}

/**
 * The operations the registry routes, as the CapabilityStatement lists them: at system level, or
 * for a resource type (at type or instance level), those of every type (`:type`) and those of
 * this type (`ValueSet/$expand`, `Patient/[id]/$everything`), each once.
 */
function operations(level: 'system' | 'type', type?: string): { name: string; definition: string }[] | undefined {
  const ops = new Map<string, { name: string; definition: string }>();
  for (const r of registry.routes) {
    if (!r.operation) continue;
    const atLevel = level === 'system' ? r.level === 'system' : r.level !== 'system' && (r.pattern[0] === ':type' || r.pattern[0] === type);
    if (atLevel && !ops.has(r.operation.name)) ops.set(r.operation.name, { ...r.operation });
  }
  return ops.size ? [...ops.values()] : undefined;
}

function buildStatement(ctx: FhirContext): CapabilityStatement {
  const interactions = TYPE_INTERACTIONS.filter((i) => registry.has(i));
  // Each type's indexed parameters, read once: its own entry and every target's revincludes use them.
  const indexed = new Map(getResourceTypes().map((type) => [type, [...getSearchParams(type).values()].filter((p) => INDEXED_TYPES.has(p.type) || compositeSpec(p) !== undefined)]));
  const revIncludes = reverseIncludes(indexed);
  const resource: CapabilityStatementRestResource[] = getResourceTypes().map((type) => {
    const params = indexed.get(type)!;
    const searchParam: CapabilityStatementRestResourceSearchParam[] = [
      ...RESOURCE_PARAMS,
      ...params.filter((p) => p.code !== '_id' && p.code !== '_lastUpdated').map((p) => ({
        name: p.code,
        definition: p.url,
        type: p.type as CapabilityStatementRestResourceSearchParam['type'],
        documentation: modifierDoc(p.code, p.type),
      })),
    ];
    if (type === AUDIT_RESOURCE_TYPE) return auditEntry(interactions, searchParam);
    const refs = params.filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`);
    return {
      type: type as CapabilityStatementRestResource['type'],
      profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
      interaction: interactions.map((code) => ({ code: code as 'read' })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: registry.has('create'),
      conditionalRead: 'full-support',
      conditionalUpdate: registry.has('update', true),
      conditionalDelete: registry.has('delete', true) ? 'multiple' : 'not-supported',
      referencePolicy: ['literal', 'logical', 'local'],
      searchInclude: refs.length ? [`${type}:*`, ...refs] : undefined,
      searchRevInclude: revIncludes.get(type),
      searchParam: [...searchParam, ...SPECIAL_PARAMS],
      operation: operations('type', type),
    };
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: SOFTWARE,
    implementation: { description: 'FHIR R4 server for French care coordination', url: ctx.baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        ...(ctx.restSecurity ? { security: ctx.restSecurity } : {}),
        resource,
        interaction: SYSTEM_INTERACTIONS.filter((i) => registry.has(i)).map((code) => ({ code: code as 'transaction' })),
        searchParam: [
          ...RESOURCE_PARAMS,
          { name: '_type', type: 'token', documentation: 'Resource types of a system-level search' },
          ...SPECIAL_PARAMS,
        ],
        operation: operations('system'),
        // Compartment search ([compartment]/[id]/[type] and /*) serves each R4 CompartmentDefinition.
        compartment: registry.routes.some((r) => r.pattern[2] === ':compartmentType')
          ? getCompartments().map((c) => `http://hl7.org/fhir/CompartmentDefinition/${c[0].toLowerCase()}${c.slice(1)}`)
          : undefined,
      },
    ],
  };
}

/**
 * The _revinclude values a search of each type takes: `Source:param` for every reference
 * parameter of every type that may point at it (its targets; any type when it names none).
 * Not the audit trail's: its events live in their own store, which _revinclude does not read.
 */
function reverseIncludes(indexed: ReadonlyMap<string, SearchParamDef[]>): Map<string, string[]> {
  const byTarget = new Map<string, string[]>();
  for (const [source, params] of indexed) {
    if (source === AUDIT_RESOURCE_TYPE) continue;
    for (const p of params) {
      if (p.type !== 'reference') continue;
      for (const target of p.target.length ? p.target : getResourceTypes()) {
        if (!byTarget.has(target)) byTarget.set(target, []);
        byTarget.get(target)!.push(`${source}:${p.code}`);
      }
    }
  }
  return byTarget;
}

/**
 * The audit trail's entry: its own store, read and searched by the parameters its search
 * implements (audit/search.ts), never written through the API (http/audit.ts refuses it).
 */
function auditEntry(interactions: InteractionCode[], searchParam: CapabilityStatementRestResourceSearchParam[]): CapabilityStatementRestResource {
  return {
    type: AUDIT_RESOURCE_TYPE,
    profile: `http://hl7.org/fhir/StructureDefinition/${AUDIT_RESOURCE_TYPE}`,
    documentation: AUDIT_DOCUMENTATION,
    interaction: interactions.filter((i) => AUDIT_INTERACTIONS.includes(i)).map((code) => ({ code: code as 'read' })),
    versioning: 'versioned',
    readHistory: true,
    conditionalRead: 'full-support',
    referencePolicy: ['literal', 'logical', 'local'],
    searchParam: searchParam.filter((p) => Object.hasOwn(AUDIT_SEARCH_PARAMS, p.name)),
    operation: operations('type', AUDIT_RESOURCE_TYPE),
  };
}

function modifierDoc(code: string, type: string): string | undefined {
  const mods = supportedModifiers(type);
  return mods.length ? `Modifiers: ${mods.map((m) => ':' + m).join(', ')}` : undefined;
}
