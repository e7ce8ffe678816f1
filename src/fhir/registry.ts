// The interaction registry: every route the server answers, with the FHIR interaction it
// implements. The router matches requests against it and the CapabilityStatement is
// generated from it, so the two cannot disagree.
import type { FhirContext } from './context.ts';
import type { FhirRequest, Method } from './request.ts';
import type { FhirResponse } from './response.ts';

export type Level = 'system' | 'type' | 'instance';

/** CapabilityStatement interaction codes (TypeRestfulInteraction / SystemRestfulInteraction). */
export type InteractionCode =
  | 'read' | 'vread' | 'update' | 'patch' | 'delete' | 'history-instance' | 'history-type' | 'create' | 'search-type'
  | 'transaction' | 'batch' | 'search-system' | 'history-system' | 'capabilities'
  // An operation ($name) or an endpoint of one (an asynchronous job's status).
  | 'operation';

export interface Route {
  method: Method;
  /** Segments; ':type', ':id', ':vid' are captured. */
  pattern: string[];
  level: Level;
  interaction: InteractionCode;
  /** Conditional variants (no id in the URL) — stated as conditionalX in the CapabilityStatement. */
  conditional?: boolean;
  /** Operations: the name and OperationDefinition the CapabilityStatement states (at the route's level). */
  operation?: { name: string; definition: string };
  handle(ctx: FhirContext, req: FhirRequest, p: Record<string, string>): Promise<FhirResponse>;
}

export class Registry {
  readonly routes: Route[] = [];

  add(route: Route): this {
    this.routes.push(route);
    return this;
  }

  match(method: Method, path: string[]): { route: Route; params: Record<string, string> } | { allowed: Method[] } | undefined {
    const allowed: Method[] = [];
    for (const route of this.routes) {
      const params = matchPattern(route.pattern, path);
      if (!params) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      allowed.push(route.method);
    }
    return allowed.length ? { allowed } : undefined;
  }

  has(interaction: InteractionCode, conditional = false): boolean {
    return this.routes.some((r) => r.interaction === interaction && !!r.conditional === conditional);
  }
}

function matchPattern(pattern: string[], path: string[]): Record<string, string> | undefined {
  if (pattern.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith(':')) {
      if (!path[i] || path[i].startsWith('_') || path[i].startsWith('$')) return undefined;
      params[p.slice(1)] = path[i];
    } else if (p !== path[i]) return undefined;
  }
  return params;
}
