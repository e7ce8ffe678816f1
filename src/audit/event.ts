// The AuditEvent of one FHIR REST interaction, after IHE Basic Audit Log Patterns (BALP, R4):
// type `rest` and the interaction as subtype, action C/R/U/D/E, outcome 0/4/8, the agents
// (the person or client the token names, the client application with its network address,
// this server), the patient(s) concerned (role Patient), the resources touched, the query of a
// search, and the request id (BALP's XrequestId entity) that the answer also carries.
// Nothing here reads a token: the agents come from the verified request.auth, and the
// recorded query drops parameters that could carry secrets.
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Bundle, Coding, Reference } from '@medplum/fhirtypes';
import { registry } from '../fhir/router.ts';
import type { Method } from '../fhir/request.ts';

/** What the audit layer reads of request.auth (src/http/auth/identity.ts), read defensively. */
export interface AuditAuth {
  identity?:
    | { kind: 'system'; clientId: string }
    | { kind: 'practitioner'; idNatPs?: string; practitioner: string }
    | { kind: 'patient'; ins?: string; patient: string }
    | { kind: 'related-person'; relatedPerson: string; patient?: string }
    | { kind: string; [k: string]: unknown };
  subject?: string;
  clientId?: string;
  issuer?: string;
  /** SMART launch context: the patient in context. */
  patient?: string;
  /** Emergency access ("bris de glace"), set by the access layer: true, or { reason, until }. */
  breakGlass?: unknown;
}

export interface InteractionInput {
  requestId: string;
  method: string;
  /** The path and query as received, from /fhir on. */
  url: string;
  /** The query, parsed (FHIR shape). */
  query: Record<string, string[] | undefined>;
  /** The parsed request body, if any. */
  body: unknown;
  status: number;
  /** The answer's body as sent (JSON text), when it is text. */
  payload?: string;
  location?: string;
  auth?: AuditAuth;
  ip?: string;
  /** When the request arrived. */
  start: Date;
  /** When the answer was ready. */
  end: Date;
  /** The server's FHIR base URL, for the source and to shorten absolute references. */
  baseUrl: string;
  /** A deleted resource's last content: the patients it concerned. */
  deletedContent?: string;
}

export const REST_EVENT_TYPE: Coding = { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'Restful Operation' };
export const INTERACTION_SYSTEM = 'http://hl7.org/fhir/restful-interaction';
export const ENTITY_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
export const OBJECT_ROLE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/object-role';
export const BALP_ENTITY_TYPE_SYSTEM = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';
export const CLIENT_ID_SYSTEM = 'urn:ietf:params:oauth:client-id';
export const BREAK_GLASS: Coding = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG', display: 'break the glass' };
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const IDNATPS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
const INS_NIR_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';

/** At most this many patients and resources are named in one event (a search page may reach thousands). */
export const MAX_ENTITIES = 50;
/** Query parameters never recorded (they could carry credentials). */
const SECRET_PARAMS = /^(access_token|id_token|refresh_token|client_secret|client_assertion|password|token)$/i;

export type Action = 'C' | 'R' | 'U' | 'D' | 'E';

export interface Classified {
  /** The restful-interaction code (read, search-type, …), undefined when no route matches. */
  interaction?: string;
  action: Action;
  type?: string;
  id?: string;
  /** The compartment of a compartment search (Patient/123/Observation). */
  compartment?: string;
}

const METHOD_ACTION: Record<string, Action> = { GET: 'R', HEAD: 'R', POST: 'C', PUT: 'U', PATCH: 'U', DELETE: 'D' };

/** The interaction a request is, with the router's own registry (so it cannot disagree with what ran). */
export function classify(method: string, path: string[], body: unknown): Classified {
  const m = (method === 'HEAD' ? 'GET' : method) as Method;
  const found = registry.match(m, path);
  if (!found || 'allowed' in found) return { action: METHOD_ACTION[method] ?? 'E', type: path[0], id: path[1] };
  const { route, params } = found;
  let interaction: string = route.interaction;
  if (interaction === 'transaction' || interaction === 'batch') {
    interaction = (body as Bundle | undefined)?.type === 'batch' ? 'batch' : 'transaction';
  }
  const action: Action =
    interaction === 'create' ? 'C'
    : interaction === 'update' || interaction === 'patch' ? 'U'
    : interaction === 'delete' ? 'D'
    : interaction === 'read' || interaction === 'vread' || interaction === 'history-instance' || interaction === 'capabilities' ? 'R'
    : 'E'; // search, history of a type or the system, operations, batch and transaction (BALP)
  if (params.compartmentType) return { interaction, action, type: params.compartmentType, compartment: `${params.type}/${params.id}` };
  return { interaction, action, type: params.type ?? (path[0]?.startsWith('$') || path[0] === '_search' || path[0] === '_history' ? undefined : path[0]), id: params.id };
}

const ID = '[A-Za-z0-9\\-.]{1,64}';
// "reference": "Patient/123" (relative, absolute or versioned), and a Patient resource itself.
const PATIENT_REF = new RegExp(`"reference"\\s*:\\s*"(?:[^"]*/)?Patient/(${ID})(?:/_history/[^"]*)?"`, 'g');
const PATIENT_RESOURCE = new RegExp(`"resourceType"\\s*:\\s*"Patient"\\s*,\\s*"id"\\s*:\\s*"(${ID})"`, 'g');
const LOCATION = new RegExp(`"location"\\s*:\\s*"(?:[^"]*/)?([A-Z][A-Za-z]+/${ID})(?:/_history/[^"]*)?"`, 'g');
const PATIENT_PARAM = /^(patient|subject|beneficiary|individual)(:Patient)?$/;
const ANY_PATIENT_VALUE = new RegExp(`^(?:.*/)?Patient/(${ID})$`);
const PLAIN_ID = new RegExp(`^${ID}$`);

function scan(text: string, re: RegExp, into: Set<string>, prefix: string): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m && into.size < MAX_ENTITIES; m = re.exec(text)) into.add(prefix + m[1]);
}

/** The patients whose data the request names (criteria, compartment, path) or the answer carries. */
export function patientsOf(input: InteractionInput, c: Classified): string[] {
  const patients = new Set<string>();
  if (c.type === 'Patient' && c.id) patients.add(`Patient/${c.id}`);
  const emergency = breakGlassOf(input.auth?.breakGlass)?.patient;
  if (emergency && PLAIN_ID.test(emergency.slice(8))) patients.add(emergency);
  if (c.compartment?.startsWith('Patient/')) patients.add(c.compartment);
  for (const [name, values] of Object.entries(input.query)) {
    const base = name.split('.')[0];
    if (PATIENT_PARAM.test(base) || (c.type === 'Patient' && name === '_id')) {
      for (const v of values ?? []) {
        for (const one of v.split(',')) {
          const m = ANY_PATIENT_VALUE.exec(one);
          if (m) patients.add(`Patient/${m[1]}`);
          else if ((base.endsWith(':Patient') || name === '_id' || base === 'patient') && !name.includes('.') && PLAIN_ID.test(one)) patients.add(`Patient/${one}`);
        }
      }
    }
  }
  // The audit trail's own answers name patients of other events: they are not data accessed.
  if (c.type !== 'AuditEvent') {
    if (input.payload && input.status < 300) {
      scan(input.payload, PATIENT_RESOURCE, patients, 'Patient/');
      scan(input.payload, PATIENT_REF, patients, 'Patient/');
    }
    if (input.deletedContent) {
      scan(input.deletedContent, PATIENT_RESOURCE, patients, 'Patient/');
      scan(input.deletedContent, PATIENT_REF, patients, 'Patient/');
    }
    if (input.body && typeof input.body === 'object' && (c.action === 'C' || c.action === 'U' || c.interaction === 'transaction' || c.interaction === 'batch')) {
      const text = JSON.stringify(input.body);
      scan(text, PATIENT_RESOURCE, patients, 'Patient/');
      scan(text, PATIENT_REF, patients, 'Patient/');
    }
  }
  return [...patients].slice(0, MAX_ENTITIES);
}

/** The resources the interaction touched: the one in the path, a created one, a bundle's entries. */
export function resourcesOf(input: InteractionInput, c: Classified): string[] {
  const touched = new Set<string>();
  if (c.type && c.id) touched.add(`${c.type}/${c.id}`);
  if (input.location && input.status < 300) {
    const m = new RegExp(`(?:^|/)([A-Z][A-Za-z]+/${ID})(?:/_history/[^/]*)?$`).exec(input.location);
    if (m) touched.add(m[1]);
  }
  if ((c.interaction === 'transaction' || c.interaction === 'batch') && input.payload && input.status < 300) scan(input.payload, LOCATION, touched, '');
  return [...touched].slice(0, MAX_ENTITIES);
}

/** The query as recorded: parameters that could carry secrets left out. */
export function recordedQuery(url: string, body: unknown, interaction: string | undefined): string | undefined {
  const q = url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  // POST _search: the criteria are the form body.
  if (typeof body === 'string' && interaction?.startsWith('search')) for (const [k, v] of new URLSearchParams(body)) params.append(k, v);
  for (const k of [...params.keys()]) if (SECRET_PARAMS.test(k)) params.delete(k);
  const text = params.toString();
  const path = (q < 0 ? url : url.slice(0, q)).replace(/^\/fhir\/?/, '');
  return text ? `${path}?${text}` : undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function ref(reference: string): Reference<any> {
  return { reference };
}

/** The break-glass flag of request.auth (src/http/auth/identity.ts), read defensively: its text, and the patient it names. */
export function breakGlassOf(flag: unknown): { text: string; patient?: string } | undefined {
  if (!flag) return undefined;
  if (typeof flag !== 'object') return { text: typeof flag === 'string' && flag.trim() ? flag.trim().slice(0, 500) : 'emergency access' };
  const f = flag as { reason?: unknown; patient?: unknown; granted?: { patient?: unknown; until?: unknown } };
  const reason = typeof f.reason === 'string' && f.reason.trim() ? f.reason.trim().slice(0, 500) : 'emergency access';
  const until = f.granted?.until instanceof Date ? f.granted.until.toISOString() : typeof f.granted?.until === 'string' ? f.granted.until : undefined;
  const state = f.granted ? `granted${until ? ` until ${until}` : ''}` : 'requested';
  const patient = typeof f.granted?.patient === 'string' ? f.granted.patient : typeof f.patient === 'string' ? f.patient : undefined;
  return { text: `${reason} (${state})`, patient: patient ? (patient.startsWith('Patient/') ? patient : `Patient/${patient}`) : undefined };
}

function breakGlassReason(flag: unknown): string | undefined {
  return breakGlassOf(flag)?.text;
}

/** The agents: who (requestor), the client application (with its address), and this server. */
function agentsOf(input: InteractionInput, action: Action, serverName: string): AuditEventAgent[] {
  const auth = input.auth;
  const identity = auth?.identity;
  const network = input.ip ? { address: input.ip, type: '2' as const } : undefined;
  const client: AuditEventAgent = {
    type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
    requestor: false,
    network,
  };
  const clientId = auth?.clientId ?? (identity?.kind === 'system' ? String((identity as { clientId: string }).clientId) : undefined);
  if (clientId) {
    client.who = { identifier: { system: CLIENT_ID_SYSTEM, value: clientId }, display: clientId };
    client.altId = clientId;
  }
  const agents: AuditEventAgent[] = [];
  const person = (who: AuditEventAgent["who"], extra: Partial<AuditEventAgent> = {}): AuditEventAgent => ({
    type: { coding: [action === 'R' || action === 'E' ? { system: PARTICIPATION, code: 'IRCP', display: 'information recipient' } : { system: PARTICIPATION, code: 'AUT', display: 'author (originator)' }] },
    who,
    ...(auth?.subject ? { altId: auth.subject } : {}),
    requestor: true,
    ...extra,
  });
  if (!identity) {
    // No verified caller: AUTH off, a public endpoint, or a request refused before its token was accepted.
    agents.push({ ...client, who: client.who ?? { display: 'anonymous' }, name: 'anonymous', requestor: true });
  } else if (identity.kind === 'system') {
    // A client certificate (mTLS) or a token may name the client's Organization.
    const org = (identity as { organization?: unknown }).organization;
    const orgRef = typeof org === 'string' ? org : typeof (org as { reference?: unknown })?.reference === 'string' ? (org as { reference: string }).reference : undefined;
    agents.push({ ...client, ...(orgRef ? { who: { ...client.who, reference: orgRef } } : {}), requestor: true });
  } else {
    if (identity.kind === 'practitioner') {
      const p = identity as { practitioner: string; idNatPs?: string };
      agents.push(person({ reference: p.practitioner, ...(p.idNatPs ? { identifier: { system: IDNATPS_SYSTEM, value: p.idNatPs } } : {}) }));
    } else if (identity.kind === 'patient') {
      const p = identity as { patient: string; ins?: string };
      agents.push(person({ reference: p.patient, ...(p.ins ? { identifier: { system: INS_NIR_SYSTEM, value: p.ins } } : {}) }));
    } else if (identity.kind === 'related-person') {
      const r = identity as { relatedPerson: string; patient?: string };
      // An aidant acts for the patient they are declared for: that patient is this agent's role.
      agents.push(person(ref(r.relatedPerson), r.patient ? { role: [{ text: `on behalf of ${r.patient}` }] } : {}));
    } else {
      agents.push(person({ display: String(identity.kind) }));
    }
    // The application the person uses acts on their behalf.
    agents.push(client);
  }
  agents.push({
    type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
    who: { display: serverName, identifier: { value: input.baseUrl } },
    requestor: false,
  });
  const reason = breakGlassReason(auth?.breakGlass);
  if (reason) agents[0].purposeOfUse = [{ coding: [BREAK_GLASS], text: reason }];
  return agents;
}

export interface BuildOptions {
  serverName: string;
  /** Short text of an error answer (OperationOutcome diagnostics), already extracted. */
  outcomeText?: string;
}

/** The AuditEvent of one interaction (without id and meta: the store stamps them). */
export function buildAuditEvent(input: InteractionInput, path: string[], options: BuildOptions): AuditEvent {
  const c = classify(input.method, path, input.body);
  const outcome = input.status < 400 ? '0' : input.status < 500 ? '4' : '8';
  const entity: AuditEventEntity[] = [];
  for (const p of patientsOf(input, c)) {
    entity.push({
      what: ref(p),
      type: { system: ENTITY_TYPE_SYSTEM, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE_SYSTEM, code: '1', display: 'Patient' },
    });
  }
  for (const r of resourcesOf(input, c)) {
    if (r.startsWith('Patient/') && entity.some((e) => e.what?.reference === r)) continue;
    entity.push({
      what: ref(r),
      type: { system: ENTITY_TYPE_SYSTEM, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE_SYSTEM, code: '4', display: 'Domain Resource' },
    });
  }
  const query = recordedQuery(input.url, input.body, c.interaction);
  if (query && (c.interaction?.startsWith('search') || c.interaction?.startsWith('history') || c.interaction === 'operation' || !c.interaction)) {
    entity.push({
      type: { system: ENTITY_TYPE_SYSTEM, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE_SYSTEM, code: '24', display: 'Query' },
      query: Buffer.from(query).toString('base64'),
      description: query.slice(0, 1000),
    });
  }
  entity.push({
    what: { identifier: { value: input.requestId } },
    type: { system: BALP_ENTITY_TYPE_SYSTEM, code: 'XrequestId', display: 'X-Request-Id' },
  });
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    type: REST_EVENT_TYPE,
    subtype: [c.interaction ? { system: INTERACTION_SYSTEM, code: c.interaction, display: c.interaction } : { system: INTERACTION_SYSTEM, code: 'unknown', display: `${input.method} (no such interaction)` }],
    action: c.action,
    period: { start: input.start.toISOString(), end: input.end.toISOString() },
    recorded: input.end.toISOString(),
    outcome,
    outcomeDesc: `${input.status}${options.outcomeText ? ` ${options.outcomeText}` : ''}`.slice(0, 500),
    agent: agentsOf(input, c.action, options.serverName),
    source: {
      observer: { display: options.serverName, identifier: { value: input.baseUrl } },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity,
  };
  const reason = breakGlassReason(input.auth?.breakGlass);
  if (reason) {
    event.purposeOfEvent = [{ coding: [BREAK_GLASS], text: reason }];
    event.meta = { security: [BREAK_GLASS] };
  }
  return event;
}

/** The diagnostics of an OperationOutcome answer, for outcomeDesc. */
export function outcomeText(payload: string | undefined, status: number): string | undefined {
  if (status < 400 || !payload || payload.length > 100_000) return undefined;
  try {
    const body = JSON.parse(payload) as { resourceType?: string; issue?: { diagnostics?: string; code?: string }[] };
    if (body.resourceType !== 'OperationOutcome') return undefined;
    const i = body.issue?.[0];
    return i ? `${i.code ?? ''}: ${i.diagnostics ?? ''}`.slice(0, 400) : undefined;
  } catch {
    return undefined;
  }
}
