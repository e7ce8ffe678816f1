-- What writing the audit trail costs PostgreSQL, index by index: the 14 latest AuditEvents (with a
-- patient) are written again through fhir_insert_audit_events (migration 010), in batches of 14 as
-- the server groups them, inside a transaction that is rolled back. Prints µs per event for 50,
-- 200 and 200 batches. Try a variant by changing the schema inside the transaction first, e.g.:
--
--   psql "$DATABASE_URL" -X -At -c '\i scripts/bench-audit-write.sql' \
--     -c 'BEGIN' -c 'SELECT pg_temp.bench(50), pg_temp.bench(200), pg_temp.bench(200)' -c 'ROLLBACK'
--   psql "$DATABASE_URL" -X -At -c '\i scripts/bench-audit-write.sql' \
--     -c 'BEGIN' -c 'DROP INDEX sp_token_value' -c 'SELECT pg_temp.bench(50), pg_temp.bench(200), pg_temp.bench(200)' -c 'ROLLBACK'
--
-- Needs a database holding AuditEvents (e.g. the one `scripts/bench-access.ts --keep DIR` leaves).
-- On 2026-11-24 (1.1M AuditEvents): 250 µs per event; without sp_token_value 175; without both
-- token indexes 160; with lz4 for the JSON (migration 020) 214; without the history table's time
-- indexes 235; without resources_type_id_live and resources_live 230; without the compartments GIN 240.
CREATE OR REPLACE FUNCTION pg_temp.bench(batches int) RETURNS numeric LANGUAGE plpgsql AS $f$
DECLARE
  t0 timestamptz; lus timestamptz[]; cs text[]; comps text[]; masks smallint[]; rids bigint[];
  s_o int[]; s_c text[]; s_v text[]; s_n text[];
  t_o int[]; t_c text[]; t_s text[]; t_v text[]; t_d text[];
  d_o int[]; d_c text[]; d_l timestamptz[]; d_h timestamptz[];
  r_o int[]; r_c text[]; r_t text[]; r_i text[]; r_u text[];
  u_o int[]; u_c text[]; u_v text[];
  ids text[];
BEGIN
  SELECT array_agg(rid ORDER BY rid), array_agg(last_updated ORDER BY rid), array_agg(content ORDER BY rid), array_agg(array_to_string(compartments, ' ') ORDER BY rid), array_agg(index_mask ORDER BY rid)
    INTO rids, lus, cs, comps, masks FROM (SELECT * FROM resources WHERE resource_type = 'AuditEvent' AND compartments <> '{}' ORDER BY rid DESC LIMIT 14) x;
  SELECT array_agg(array_position(rids, rid)), array_agg(code), array_agg(value), array_agg(norm) INTO s_o, s_c, s_v, s_n FROM sp_string WHERE rid = ANY(rids);
  SELECT array_agg(array_position(rids, rid)), array_agg(code), array_agg(system), array_agg(value), array_agg(display) INTO t_o, t_c, t_s, t_v, t_d FROM sp_token WHERE rid = ANY(rids);
  SELECT array_agg(array_position(rids, rid)), array_agg(code), array_agg(low), array_agg(high) INTO d_o, d_c, d_l, d_h FROM sp_date WHERE rid = ANY(rids);
  SELECT array_agg(array_position(rids, rid)), array_agg(code), array_agg(target_type), array_agg(target_id), array_agg(url) INTO r_o, r_c, r_t, r_i, r_u FROM sp_reference WHERE rid = ANY(rids);
  SELECT array_agg(array_position(rids, rid)), array_agg(code), array_agg(value) INTO u_o, u_c, u_v FROM sp_uri WHERE rid = ANY(rids);
  t0 := clock_timestamp();
  FOR i IN 1..batches LOOP
    SELECT array_agg(gen_random_uuid()::text) INTO ids FROM generate_series(1, 14);
    PERFORM fhir_insert_audit_events(ids, lus, cs, comps, masks, s_o, s_c, s_v, s_n, t_o, t_c, t_s, t_v, t_d, d_o, d_c, d_l, d_h, r_o, r_c, r_t, r_i, r_u, u_o, u_c, u_v);
  END LOOP;
  RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000000 / (batches * 14));
END $f$;
