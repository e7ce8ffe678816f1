-- What platform operators manage through the administration API (src/http/admin.ts), shared by
-- every server process on the database:
--   settings        named JSON documents: 'habilitations' (the matrix, overriding the shipped
--                   file), 'issuers' (trusted OpenID Connect issuers, besides AUTH_ISSUERS);
--   oauth_clients   system clients of the embedded OpenID provider: client_credentials with a
--                   signed JWT assertion (private_key_jwt, as SMART Backend Services), so the
--                   server holds their public keys only, and the scopes each may get.
CREATE TABLE IF NOT EXISTS settings (
  name text PRIMARY KEY,
  value jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS oauth_clients (
  client_id text PRIMARY KEY,
  jwks jsonb NOT NULL,
  scope text NOT NULL,
  description text,
  created timestamptz NOT NULL DEFAULT now()
);
