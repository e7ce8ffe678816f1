-- What writing the audit trail costs PostgreSQL: the 14 latest events of the audit store
-- (migrations/027) are written again under new ids, in batches of 14 as the server groups them
-- (src/store/audit.ts: one INSERT from arrays), inside a transaction that is rolled back. Prints µs
-- per event for 50, 200 and 200 batches. Try a variant by changing the schema inside the
-- transaction first, e.g.:
--
--   psql "$DATABASE_URL" -X -At -c '\i scripts/bench-audit-write.sql' \
--     -c 'BEGIN' -c 'SELECT pg_temp.bench(50), pg_temp.bench(200), pg_temp.bench(200)' -c 'ROLLBACK'
--   psql "$DATABASE_URL" -X -At -c '\i scripts/bench-audit-write.sql' \
--     -c 'BEGIN' -c 'DROP INDEX audit_events_refs' -c 'SELECT pg_temp.bench(50), pg_temp.bench(200), pg_temp.bench(200)' -c 'ROLLBACK'
--
-- Needs a database holding audit events (e.g. the one `scripts/bench-access.ts --keep DIR` leaves).
CREATE OR REPLACE FUNCTION pg_temp.bench(batches int) RETURNS numeric LANGUAGE plpgsql AS $f$
DECLARE
  t0 timestamptz; ids text[]; rs timestamptz[]; cs text[]; cp text[]; rf text[]; cd text[];
BEGIN
  SELECT array_agg(id), array_agg(recorded), array_agg(content), array_agg(array_to_string(compartments, E'\x1f')),
         array_agg(array_to_string(refs, E'\x1f')), array_agg(array_to_string(codes, E'\x1f'))
    INTO ids, rs, cs, cp, rf, cd
    FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT 14) x;
  t0 := clock_timestamp();
  FOR b IN 1..batches LOOP
    INSERT INTO audit_events (id, recorded, content, compartments, refs, codes)
      SELECT e.id || '-' || b, e.r, e.c, string_to_array(e.cp, E'\x1f'), string_to_array(e.rf, E'\x1f'), string_to_array(e.cd, E'\x1f')
      FROM unnest(ids, rs, cs, cp, rf, cd) AS e(id, r, c, cp, rf, cd);
  END LOOP;
  RETURN round((extract(epoch FROM clock_timestamp() - t0) * 1e6 / (batches * 14))::numeric, 1);
END
$f$;
