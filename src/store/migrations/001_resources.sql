-- Current version of every resource. rid is the internal key every index row points at.
-- content is the exact JSON served to clients (text, so reads need no re-serialisation).
CREATE TABLE resources (
  rid           bigserial PRIMARY KEY,
  resource_type text        NOT NULL,
  id            text        NOT NULL,
  version_id    integer     NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean     NOT NULL DEFAULT false,
  content       text,
  -- Patient compartments ("Patient/123") this resource belongs to, for access filtering.
  compartments  text[]      NOT NULL DEFAULT '{}',
  UNIQUE (resource_type, id)
);
CREATE INDEX resources_type_updated ON resources (resource_type, last_updated, rid) WHERE NOT deleted;
CREATE INDEX resources_compartments ON resources USING gin (compartments);

-- Every version, current included. seq orders the system history and makes its paging stable.
CREATE TABLE resource_history (
  seq           bigserial   PRIMARY KEY,
  rid           bigint      NOT NULL,
  resource_type text        NOT NULL,
  id            text        NOT NULL,
  version_id    integer     NOT NULL,
  last_updated  timestamptz NOT NULL,
  method        text        NOT NULL, -- POST | PUT | PATCH | DELETE: the history entry's request.method
  deleted       boolean     NOT NULL DEFAULT false,
  content       text,
  UNIQUE (rid, version_id)
);
CREATE INDEX resource_history_type ON resource_history (resource_type, last_updated, seq);
CREATE INDEX resource_history_time ON resource_history (last_updated, seq);

-- Search indexes: one narrow table per search parameter type (the HAPI FHIR layout),
-- rewritten in the same statement as the resource so a write is searchable once answered.
-- code is the search parameter code; resource_type is repeated so each index leads with it.
CREATE TABLE sp_string (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  value text NOT NULL,       -- as written, for :exact
  norm  text NOT NULL        -- lower case, accents removed, for the default and :contains
);
CREATE INDEX sp_string_norm ON sp_string (resource_type, code, norm text_pattern_ops);
CREATE INDEX sp_string_rid ON sp_string (rid);

CREATE TABLE sp_token (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  system text,               -- NULL when the coding/identifier has none
  value  text,               -- code / identifier value / boolean / plain code
  display text               -- normalised display / text, for :text
);
CREATE INDEX sp_token_value ON sp_token (resource_type, code, value, system);
CREATE INDEX sp_token_rid ON sp_token (rid);

CREATE TABLE sp_date (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  low  timestamptz NOT NULL,  -- start of the instant/period, widened by the value's precision
  high timestamptz NOT NULL   -- end, exclusive ('infinity' for an open period)
);
CREATE INDEX sp_date_range ON sp_date (resource_type, code, low, high);
CREATE INDEX sp_date_rid ON sp_date (rid);

CREATE TABLE sp_number (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL
);
CREATE INDEX sp_number_value ON sp_number (resource_type, code, value);
CREATE INDEX sp_number_rid ON sp_number (rid);

CREATE TABLE sp_quantity (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL,
  system text, unit text
);
CREATE INDEX sp_quantity_value ON sp_quantity (resource_type, code, value);
CREATE INDEX sp_quantity_rid ON sp_quantity (rid);

CREATE TABLE sp_reference (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  target_type text,          -- for relative references Type/id
  target_id   text,
  url         text           -- the reference as written (absolute URLs, canonicals)
);
CREATE INDEX sp_reference_target ON sp_reference (resource_type, code, target_id, target_type);
CREATE INDEX sp_reference_url ON sp_reference (resource_type, code, url);
CREATE INDEX sp_reference_rev ON sp_reference (target_type, target_id);
CREATE INDEX sp_reference_rid ON sp_reference (rid);

CREATE TABLE sp_uri (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  value text NOT NULL
);
CREATE INDEX sp_uri_value ON sp_uri (resource_type, code, value text_pattern_ops);
CREATE INDEX sp_uri_rid ON sp_uri (rid);
