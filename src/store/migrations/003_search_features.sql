-- Search features: UCUM canonical quantities, composite parameters, and full text (_text, _content).
-- Rows written before this migration have none of these (a reindex would add them).

-- Quantities with a UCUM unit also carry their value in canonical UCUM units (base units of
-- the unit's dimension: g, m, s, K, ...), so commensurable units compare (1500 g > 1 kg).
ALTER TABLE sp_quantity ADD COLUMN c_value numeric;
ALTER TABLE sp_quantity ADD COLUMN c_unit text;
CREATE INDEX sp_quantity_canonical ON sp_quantity (resource_type, code, c_unit, c_value) WHERE c_unit IS NOT NULL;

-- Composite parameters: one row per tuple of component values taken from the SAME item of the
-- composite's expression (one Observation.component, one Group.characteristic), so that the
-- components of a search match together. The first component is a token (every R4 composite
-- starts with one); the second is stored in the columns of its type:
--   token: b_system, b_value        string: b_value (folded)      uri: b_value
--   reference: b_system (type), b_value (id), b_url               number: b_num
--   quantity: b_num, b_system, b_value (unit), b_cnum, b_cunit (canonical UCUM)
--   date: b_low, b_high
-- A third component, when numeric (MolecularSequence coordinates), goes to c_num.
CREATE TABLE sp_composite (
  rid bigint NOT NULL, resource_type text NOT NULL, code text NOT NULL,
  a_system text, a_value text,
  b_system text, b_value text, b_url text,
  b_num numeric, b_cnum numeric, b_cunit text,
  b_low timestamptz, b_high timestamptz,
  c_num numeric
);
CREATE INDEX sp_composite_first ON sp_composite (resource_type, code, a_value, a_system);
CREATE INDEX sp_composite_rid ON sp_composite (rid);

-- Full text, French stemming: kind 'text' is the narrative (_text), 'content' all the text of
-- the resource, narrative included (_content).
CREATE TABLE sp_text (
  rid bigint NOT NULL, resource_type text NOT NULL, kind text NOT NULL,
  tsv tsvector NOT NULL
);
CREATE INDEX sp_text_tsv ON sp_text USING gin (tsv);
CREATE INDEX sp_text_rid ON sp_text (rid);

-- Accents off (lower-case text in NFC; the unaccent extension is not available everywhere, PGlite).
CREATE FUNCTION fhir_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT translate(t, 'àáâãäåçèéêëìíîïñòóôõöùúûüýÿ', 'aaaaaaceeeeiiiinooooouuuuyy')
$$;
-- Accent-insensitive French stemming. The French stemmer relies on accents for some suffixes
-- (infirmières and infirmier share a stem, infirmieres and infirmier do not), so text gets
-- both stems: of the folded text, and of the accented text with its stems folded. A query does
-- the same, so it matches whether the text or the query has the accents.
CREATE FUNCTION fhir_text_vector(t text) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT to_tsvector('french', fhir_fold(t)) || fhir_fold(to_tsvector('french', t)::text)::tsvector
$$;
-- Web-search syntax: words AND-ed, "phrases", or, -word.
CREATE FUNCTION fhir_text_query(q text) RETURNS tsquery LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT websearch_to_tsquery('french', fhir_fold(q)) || fhir_fold(websearch_to_tsquery('french', q)::text)::tsquery
$$;

-- New fields at the end of fhir_index (resources.ts builds the ROW in this order).
ALTER TYPE fhir_index ADD ATTRIBUTE q_cvalue numeric[];
ALTER TYPE fhir_index ADD ATTRIBUTE q_cunit text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_code text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_a_system text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_a_value text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_system text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_value text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_url text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_num numeric[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_cnum numeric[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_cunit text[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_low timestamptz[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_b_high timestamptz[];
ALTER TYPE fhir_index ADD ATTRIBUTE x_c_num numeric[];
ALTER TYPE fhir_index ADD ATTRIBUTE txt_narrative text;
ALTER TYPE fhir_index ADD ATTRIBUTE txt_content text;

-- index_mask bits (resources.ts indexMask): 1 string, 2 token, 4 date, 8 number, 16 quantity,
-- 32 reference, 64 uri, 128 composite, 256 text.
CREATE OR REPLACE FUNCTION fhir_write_index(p_rid bigint, p_type text, i fhir_index) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  narrative tsvector;
BEGIN
  IF cardinality(i.s_code) > 0 THEN
    INSERT INTO sp_string (rid, resource_type, code, value, norm)
      SELECT p_rid, p_type, x.a, x.b, x.c FROM unnest(i.s_code, i.s_value, i.s_norm) AS x(a, b, c);
  END IF;
  IF cardinality(i.t_code) > 0 THEN
    INSERT INTO sp_token (rid, resource_type, code, system, value, display)
      SELECT p_rid, p_type, x.a, x.b, x.c, x.d FROM unnest(i.t_code, i.t_system, i.t_value, i.t_display) AS x(a, b, c, d);
  END IF;
  IF cardinality(i.d_code) > 0 THEN
    INSERT INTO sp_date (rid, resource_type, code, low, high)
      SELECT p_rid, p_type, x.a, x.b, x.c FROM unnest(i.d_code, i.d_low, i.d_high) AS x(a, b, c);
  END IF;
  IF cardinality(i.n_code) > 0 THEN
    INSERT INTO sp_number (rid, resource_type, code, value, low, high)
      SELECT p_rid, p_type, x.a, x.b, x.c, x.d FROM unnest(i.n_code, i.n_value, i.n_low, i.n_high) AS x(a, b, c, d);
  END IF;
  IF cardinality(i.q_code) > 0 THEN
    INSERT INTO sp_quantity (rid, resource_type, code, value, low, high, system, unit, c_value, c_unit)
      SELECT p_rid, p_type, x.a, x.b, x.c, x.d, x.e, x.f, x.g, x.h
      FROM unnest(i.q_code, i.q_value, i.q_low, i.q_high, i.q_system, i.q_unit, i.q_cvalue, i.q_cunit) AS x(a, b, c, d, e, f, g, h);
  END IF;
  IF cardinality(i.r_code) > 0 THEN
    INSERT INTO sp_reference (rid, resource_type, code, target_type, target_id, url)
      SELECT p_rid, p_type, x.a, x.b, x.c, x.d FROM unnest(i.r_code, i.r_type, i.r_id, i.r_url) AS x(a, b, c, d);
  END IF;
  IF cardinality(i.u_code) > 0 THEN
    INSERT INTO sp_uri (rid, resource_type, code, value)
      SELECT p_rid, p_type, x.a, x.b FROM unnest(i.u_code, i.u_value) AS x(a, b);
  END IF;
  IF cardinality(i.x_code) > 0 THEN
    INSERT INTO sp_composite (rid, resource_type, code, a_system, a_value, b_system, b_value, b_url, b_num, b_cnum, b_cunit, b_low, b_high, c_num)
      SELECT p_rid, p_type, x.a, x.b, x.c, x.d, x.e, x.f, x.g, x.h, x.m, x.n, x.o, x.p
      FROM unnest(i.x_code, i.x_a_system, i.x_a_value, i.x_b_system, i.x_b_value, i.x_b_url, i.x_b_num, i.x_b_cnum, i.x_b_cunit,
        i.x_b_low, i.x_b_high, i.x_c_num) AS x(a, b, c, d, e, f, g, h, m, n, o, p);
  END IF;
  -- _content covers the narrative too: its vector is computed once, and joined to the other strings'.
  IF i.txt_narrative IS NOT NULL THEN
    narrative := fhir_text_vector(i.txt_narrative);
    INSERT INTO sp_text (rid, resource_type, kind, tsv) VALUES (p_rid, p_type, 'text', narrative);
  END IF;
  IF i.txt_content IS NOT NULL OR narrative IS NOT NULL THEN
    INSERT INTO sp_text (rid, resource_type, kind, tsv)
      VALUES (p_rid, p_type, 'content', coalesce(narrative, ''::tsvector) || coalesce(fhir_text_vector(i.txt_content), ''::tsvector));
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION fhir_clear_index(p_rid bigint, p_mask smallint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_mask & 1 <> 0 THEN DELETE FROM sp_string WHERE rid = p_rid; END IF;
  IF p_mask & 2 <> 0 THEN DELETE FROM sp_token WHERE rid = p_rid; END IF;
  IF p_mask & 4 <> 0 THEN DELETE FROM sp_date WHERE rid = p_rid; END IF;
  IF p_mask & 8 <> 0 THEN DELETE FROM sp_number WHERE rid = p_rid; END IF;
  IF p_mask & 16 <> 0 THEN DELETE FROM sp_quantity WHERE rid = p_rid; END IF;
  IF p_mask & 32 <> 0 THEN DELETE FROM sp_reference WHERE rid = p_rid; END IF;
  IF p_mask & 64 <> 0 THEN DELETE FROM sp_uri WHERE rid = p_rid; END IF;
  IF p_mask & 128 <> 0 THEN DELETE FROM sp_composite WHERE rid = p_rid; END IF;
  IF p_mask & 256 <> 0 THEN DELETE FROM sp_text WHERE rid = p_rid; END IF;
END
$$;
