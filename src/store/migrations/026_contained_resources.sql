-- Contained resources are searchable (search.html#contained): a chain follows a `#id` reference
-- into the contained resource it names, and _contained=true|both finds contained resources.
-- Each contained resource of a stored resource gets a row here, with a rid of its own from the
-- resources' sequence, and index rows in the sp_* tables under that rid with the resource type
-- '#' || its type ('#Patient'): no search of a type ever names such a type, so they stay out of
-- every plain search, and a criterion built for a `resources` alias (rid, resource_type, id,
-- last_updated) applies to this table's rows unchanged. A container's rows are replaced with its
-- index rows: index_mask bit 10 (1024) marks a resource that has some, so fhir_clear_index
-- (an update, a deletion, a reindex) drops them, and the new version's are written after it.
CREATE TABLE contained_resources (
  rid           bigint      PRIMARY KEY DEFAULT nextval('resources_rid_seq'),
  container_rid bigint      NOT NULL,
  resource_type text        NOT NULL, -- '#' || the contained resource's type
  id            text        NOT NULL, -- its id within the container (a reference to it is '#' || id)
  last_updated  timestamptz NOT NULL  -- the container's: a contained resource has no meta of its own
);
CREATE INDEX contained_resources_container ON contained_resources (container_rid);
CREATE INDEX contained_resources_type ON contained_resources (resource_type, rid);

-- The rows of a container's contained resources, in the order given; their rids, in that order.
CREATE FUNCTION fhir_add_contained(p_container bigint, p_last_updated timestamptz, p_types text[], p_ids text[])
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
  rids bigint[] := '{}';
  one bigint;
BEGIN
  FOR k IN 1 .. coalesce(cardinality(p_types), 0) LOOP
    INSERT INTO contained_resources (container_rid, resource_type, id, last_updated)
      VALUES (p_container, p_types[k], p_ids[k], p_last_updated) RETURNING rid INTO one;
    rids := rids || one;
  END LOOP;
  RETURN rids;
END
$$;

-- A container's contained resources and all their index rows.
CREATE FUNCTION fhir_clear_contained(p_container bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  rids bigint[];
BEGIN
  SELECT array_agg(rid) INTO rids FROM contained_resources WHERE container_rid = p_container;
  IF rids IS NULL THEN RETURN; END IF;
  DELETE FROM sp_string WHERE rid = ANY(rids);
  DELETE FROM sp_token WHERE rid = ANY(rids);
  DELETE FROM sp_date WHERE rid = ANY(rids);
  DELETE FROM sp_number WHERE rid = ANY(rids);
  DELETE FROM sp_quantity WHERE rid = ANY(rids);
  DELETE FROM sp_reference s USING contained_resources c
    WHERE c.container_rid = p_container AND s.resource_type = c.resource_type AND s.rid = c.rid;
  DELETE FROM sp_uri WHERE rid = ANY(rids);
  DELETE FROM sp_composite WHERE rid = ANY(rids);
  DELETE FROM sp_text WHERE rid = ANY(rids);
  DELETE FROM contained_resources WHERE container_rid = p_container;
END
$$;

-- fhir_clear_index as it was (025) clears a resource's own rows; it now also drops, on bit 1024,
-- the resource's contained resources (the callers, fhir_update_resource and fhir_reindex_resource,
-- call it by name).
ALTER FUNCTION fhir_clear_index(bigint, smallint) RENAME TO fhir_clear_own_index;
CREATE FUNCTION fhir_clear_index(p_rid bigint, p_mask smallint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM fhir_clear_own_index(p_rid, p_mask);
  IF p_mask & 1024 <> 0 THEN PERFORM fhir_clear_contained(p_rid); END IF;
END
$$;

-- Resources stored before this migration with contained resources: a reindex job (of their
-- types, no catch-up: a write from now on indexes its own) indexes those, in the background.
INSERT INTO reindex_jobs (id, types, reason, catchup)
  SELECT 'migration-026-contained', array_agg(DISTINCT resource_type ORDER BY resource_type),
    'migration 026: contained resources become searchable', false
  FROM resources WHERE NOT deleted AND content LIKE '%"contained":[%'
  HAVING count(*) > 0;
