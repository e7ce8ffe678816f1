-- Audit records (src/store/audit.ts): a batch of AuditEvents written set-wise in one call. Each
-- event gets what fhir_insert_resource gives a resource (current row, history row, index rows),
-- but a batch is a handful of statements over arrays instead of ten statements per event, and
-- its parameters do not grow with the batch (so the call is planned once). Index rows come as
-- flat arrays whose owner is the event's ordinal in p_ids. AuditEvent has string, token, date,
-- reference and uri parameters only; the caller writes an event with other rows one by one.
CREATE FUNCTION fhir_insert_audit_events(
  p_ids text[], p_last_updated timestamptz[], p_contents text[], p_compartments text[], p_masks smallint[],
  s_owner integer[], s_code text[], s_value text[], s_norm text[],
  t_owner integer[], t_code text[], t_system text[], t_value text[], t_display text[],
  d_owner integer[], d_code text[], d_low timestamptz[], d_high timestamptz[],
  r_owner integer[], r_code text[], r_type text[], r_id text[], r_url text[],
  u_owner integer[], u_code text[], u_value text[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  WITH ins AS (
    INSERT INTO resources (resource_type, id, version_id, last_updated, content, compartments, index_mask)
      SELECT 'AuditEvent', e.id, 1, e.lu, e.content, CASE WHEN e.comp = '' THEN '{}'::text[] ELSE string_to_array(e.comp, ' ') END, e.mask
      FROM unnest(p_ids, p_last_updated, p_contents, p_compartments, p_masks) AS e(id, lu, content, comp, mask)
    RETURNING rid, id, last_updated, content
  ), hist AS (
    INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated, method, content)
      SELECT rid, 'AuditEvent', id, 1, last_updated, 'POST', content FROM ins
  ), m AS (
    SELECT o.n, ins.rid FROM ins JOIN unnest(p_ids) WITH ORDINALITY AS o(id, n) ON o.id = ins.id
  ), s AS (
    INSERT INTO sp_string (rid, resource_type, code, value, norm)
      SELECT m.rid, 'AuditEvent', x.c, x.v, x.nm FROM unnest(s_owner, s_code, s_value, s_norm) AS x(o, c, v, nm) JOIN m ON m.n = x.o
  ), t AS (
    INSERT INTO sp_token (rid, resource_type, code, system, value, display)
      SELECT m.rid, 'AuditEvent', x.c, x.s, x.v, x.d FROM unnest(t_owner, t_code, t_system, t_value, t_display) AS x(o, c, s, v, d) JOIN m ON m.n = x.o
  ), d AS (
    INSERT INTO sp_date (rid, resource_type, code, low, high)
      SELECT m.rid, 'AuditEvent', x.c, x.l, x.h FROM unnest(d_owner, d_code, d_low, d_high) AS x(o, c, l, h) JOIN m ON m.n = x.o
  ), r AS (
    INSERT INTO sp_reference (rid, resource_type, code, target_type, target_id, url)
      SELECT m.rid, 'AuditEvent', x.c, x.t, x.i, x.u FROM unnest(r_owner, r_code, r_type, r_id, r_url) AS x(o, c, t, i, u) JOIN m ON m.n = x.o
  ), u AS (
    INSERT INTO sp_uri (rid, resource_type, code, value)
      SELECT m.rid, 'AuditEvent', x.c, x.v FROM unnest(u_owner, u_code, u_value) AS x(o, c, v) JOIN m ON m.n = x.o
  )
  SELECT count(*) INTO n FROM m;
  RETURN n;
END
$$;
