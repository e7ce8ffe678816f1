// The search tests' harness: a real server on a fresh database, fhir-kit-client (a third-party
// FHIR client) for writes and searches, and sorted id sets to compare results exactly.
import type { Test } from 'tap';
import { Client } from 'fhir-kit-client';
import { startServer, type TestServer } from './server.ts';

export type Params = Record<string, string | string[]>;
export type Resource = { resourceType: string; id: string; [k: string]: unknown };

/** The ids of the entries with a given search mode, sorted. */
export function idsOf(bundle: any, mode = 'match'): string[] {
  return (bundle.entry ?? [])
    .filter((e: any) => e.search?.mode === mode)
    .map((e: any) => `${e.resource.id}`)
    .sort();
}

/** The entries' "Type/id" with a given search mode, sorted. */
export function refsOf(bundle: any, mode = 'match'): string[] {
  return (bundle.entry ?? [])
    .filter((e: any) => e.search?.mode === mode)
    .map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)
    .sort();
}

export interface Harness {
  s: TestServer;
  client: Client;
  /** Creates (or replaces) resources with the ids given, in order. */
  put(...resources: Resource[]): Promise<any[]>;
  search(type: string | undefined, params: Params): Promise<any>;
  /** Sorted ids of the matches. */
  find(type: string, params: Params): Promise<string[]>;
  /** Runs a table of [query, expected ids] on one type. */
  matrix(tt: Test, type: string, cases: [Params, string[]][]): Promise<void>;
}

/** Search parameters as a query string (a repeated parameter once per value), for labels. */
export function queryOf(params: Params): string {
  return new URLSearchParams(Object.entries(params).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => [k, x]))).toString();
}

export async function harness(tt: Test, env: Record<string, string> = {}): Promise<Harness> {
  const s = await startServer(tt, env);
  const client = new Client({ baseUrl: s.url });
  const search = (type: string | undefined, params: Params) =>
    type ? client.search({ resourceType: type, searchParams: params }) : client.search({ searchParams: params });
  const find = async (type: string, params: Params) => idsOf(await search(type, params));
  return {
    s,
    client,
    async put(...resources) {
      const out = [];
      for (const r of resources) out.push(await client.update({ resourceType: r.resourceType, id: r.id, body: r as any }));
      return out;
    },
    search,
    find,
    async matrix(tt, type, cases) {
      for (const [params, expected] of cases) {
        const label = `${type}?${queryOf(params)}`;
        tt.strictSame(await find(type, params), [...expected].sort(), decodeURIComponent(label));
      }
    },
  };
}
