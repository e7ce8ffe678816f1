// Settings and OAuth clients managed through the administration API (migration 014).
import type { Executor } from './db.ts';

export type SettingName = 'habilitations' | 'issuers';

export interface Setting<T> {
  value: T;
  version: number;
  updated: Date;
}

export async function readSetting<T>(ex: Executor, name: SettingName): Promise<Setting<T> | undefined> {
  const r = await ex.query<{ value: T; version: string; updated: Date }>('SELECT value, version::text AS version, updated FROM settings WHERE name = $1', [name]);
  const row = r.rows[0];
  return row ? { value: row.value, version: Number(row.version), updated: new Date(row.updated) } : undefined;
}

/** Stores a setting; returns its new version. */
export async function writeSetting(ex: Executor, name: SettingName, value: unknown): Promise<number> {
  const r = await ex.query<{ version: string }>(
    `INSERT INTO settings (name, value) VALUES ($1, $2::jsonb)
     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, version = settings.version + 1, updated = now()
     RETURNING version::text AS version`,
    [name, JSON.stringify(value)]
  );
  return Number(r.rows[0].version);
}

export async function deleteSetting(ex: Executor, name: SettingName): Promise<boolean> {
  return (await ex.query('DELETE FROM settings WHERE name = $1', [name])).rowCount > 0;
}

export interface OAuthClient {
  clientId: string;
  /** Public keys the client signs its assertions with ({ keys: [...] }). */
  jwks: { keys: Array<Record<string, unknown>> };
  scope: string;
  description?: string;
  created: Date;
}

interface ClientRow {
  client_id: string;
  jwks: { keys: Array<Record<string, unknown>> };
  scope: string;
  description: string | null;
  created: Date;
}

const toClient = (r: ClientRow): OAuthClient => ({ clientId: r.client_id, jwks: r.jwks, scope: r.scope, description: r.description ?? undefined, created: new Date(r.created) });

export async function findClient(ex: Executor, clientId: string): Promise<OAuthClient | undefined> {
  const r = await ex.query<ClientRow>('SELECT * FROM oauth_clients WHERE client_id = $1', [clientId]);
  return r.rows[0] ? toClient(r.rows[0]) : undefined;
}

export async function listClients(ex: Executor): Promise<OAuthClient[]> {
  return (await ex.query<ClientRow>('SELECT * FROM oauth_clients ORDER BY client_id')).rows.map(toClient);
}

/** False when the id is taken. */
export async function insertClient(ex: Executor, c: Omit<OAuthClient, 'created'>): Promise<boolean> {
  const r = await ex.query('INSERT INTO oauth_clients (client_id, jwks, scope, description) VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT DO NOTHING', [
    c.clientId,
    JSON.stringify(c.jwks),
    c.scope,
    c.description ?? null,
  ]);
  return r.rowCount > 0;
}

export async function deleteClient(ex: Executor, clientId: string): Promise<boolean> {
  return (await ex.query('DELETE FROM oauth_clients WHERE client_id = $1', [clientId])).rowCount > 0;
}
