-- The search index rows of several resources at once (src/store/resources.ts, IndexBatch): a
-- transaction Bundle writes its new resources first and their index rows in one call, set-wise,
-- instead of one fhir_write_index call per resource, whose half dozen INSERT statements cost
-- more in per-statement overhead than in rows (migration 002). Rows come as flat arrays per
-- table whose owner is the resource's ordinal (1-based) in p_rids; the text of each resource
-- (txt_narrative, txt_content of fhir_index) comes in arrays parallel to p_rids. Same rows as
-- fhir_write_index (migration 003) writes for each resource.
CREATE FUNCTION fhir_write_index_batch(
  p_rids bigint[], p_types text[],
  s_owner integer[], s_code text[], s_value text[], s_norm text[],
  t_owner integer[], t_code text[], t_system text[], t_value text[], t_display text[],
  d_owner integer[], d_code text[], d_low timestamptz[], d_high timestamptz[],
  n_owner integer[], n_code text[], n_value numeric[], n_low numeric[], n_high numeric[],
  q_owner integer[], q_code text[], q_value numeric[], q_low numeric[], q_high numeric[], q_system text[], q_unit text[], q_cvalue numeric[], q_cunit text[],
  r_owner integer[], r_code text[], r_type text[], r_id text[], r_url text[],
  u_owner integer[], u_code text[], u_value text[],
  x_owner integer[], x_code text[], x_a_system text[], x_a_value text[], x_b_system text[], x_b_value text[], x_b_url text[],
  x_b_num numeric[], x_b_cnum numeric[], x_b_cunit text[], x_b_low timestamptz[], x_b_high timestamptz[], x_c_num numeric[],
  p_narrative text[], p_content text[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(s_owner) > 0 THEN
    INSERT INTO sp_string (rid, resource_type, code, value, norm)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c FROM unnest(s_owner, s_code, s_value, s_norm) AS x(o, a, b, c);
  END IF;
  IF cardinality(t_owner) > 0 THEN
    INSERT INTO sp_token (rid, resource_type, code, system, value, display)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c, x.d FROM unnest(t_owner, t_code, t_system, t_value, t_display) AS x(o, a, b, c, d);
  END IF;
  IF cardinality(d_owner) > 0 THEN
    INSERT INTO sp_date (rid, resource_type, code, low, high)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c FROM unnest(d_owner, d_code, d_low, d_high) AS x(o, a, b, c);
  END IF;
  IF cardinality(n_owner) > 0 THEN
    INSERT INTO sp_number (rid, resource_type, code, value, low, high)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c, x.d FROM unnest(n_owner, n_code, n_value, n_low, n_high) AS x(o, a, b, c, d);
  END IF;
  IF cardinality(q_owner) > 0 THEN
    INSERT INTO sp_quantity (rid, resource_type, code, value, low, high, system, unit, c_value, c_unit)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c, x.d, x.e, x.f, x.g, x.h
      FROM unnest(q_owner, q_code, q_value, q_low, q_high, q_system, q_unit, q_cvalue, q_cunit) AS x(o, a, b, c, d, e, f, g, h);
  END IF;
  IF cardinality(r_owner) > 0 THEN
    INSERT INTO sp_reference (rid, resource_type, code, target_type, target_id, url)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c, x.d FROM unnest(r_owner, r_code, r_type, r_id, r_url) AS x(o, a, b, c, d);
  END IF;
  IF cardinality(u_owner) > 0 THEN
    INSERT INTO sp_uri (rid, resource_type, code, value)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b FROM unnest(u_owner, u_code, u_value) AS x(o, a, b);
  END IF;
  IF cardinality(x_owner) > 0 THEN
    INSERT INTO sp_composite (rid, resource_type, code, a_system, a_value, b_system, b_value, b_url, b_num, b_cnum, b_cunit, b_low, b_high, c_num)
      SELECT p_rids[x.o], p_types[x.o], x.a, x.b, x.c, x.d, x.e, x.f, x.g, x.h, x.m, x.n, x.k, x.p
      FROM unnest(x_owner, x_code, x_a_system, x_a_value, x_b_system, x_b_value, x_b_url, x_b_num, x_b_cnum, x_b_cunit,
        x_b_low, x_b_high, x_c_num) AS x(o, a, b, c, d, e, f, g, h, m, n, k, p);
  END IF;
  -- _content covers the narrative too: its vector is computed once (the CTE is read twice, so materialized).
  INSERT INTO sp_text (rid, resource_type, kind, tsv)
    WITH v AS (
      SELECT e.rid, e.type, CASE WHEN e.narr IS NOT NULL THEN fhir_text_vector(e.narr) END AS nv, e.cont
      FROM unnest(p_rids, p_types, p_narrative, p_content) AS e(rid, type, narr, cont)
      WHERE e.narr IS NOT NULL OR e.cont IS NOT NULL
    )
    SELECT rid, type, 'text', nv FROM v WHERE nv IS NOT NULL
    UNION ALL
    SELECT rid, type, 'content', coalesce(nv, ''::tsvector) || coalesce(fhir_text_vector(cont), ''::tsvector) FROM v;
END
$$;
