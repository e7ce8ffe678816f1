-- Covering search indexes. Each index a criterion is looked up by now also carries the row's rid, so a search
-- finds its matches from index entries alone (index-only scans) instead of visiting one heap
-- page of the index table per match. Index rows exist only for the current version of live
-- resources (a deletion clears them), which lets a search with few matches take its rids
-- straight from these entries (src/fhir/search/search.ts, indexCandidate) and read the JSON of
-- one page only. Measured at 1M resources: Patient?name=<3 letters> (about 800 matches) went
-- from 110 ms to 35 ms at 16 connections (README, search benchmark).
-- The new indexes replace the old ones of the same keys. Their cost is size: a B-tree with INCLUDE
-- columns cannot deduplicate equal keys into one posting list, so an index whose keys repeat
-- (a reference's target, a code) grows by 2 to 5 times (at 1M resources, the search B-trees went
-- from 0.9 to 1.5 GB). Indexes of rarer lookups (a reference by URL or from its target, a
-- quantity's value) keep their deduplicated form: a criterion on them still drives a search.
DROP INDEX IF EXISTS sp_string_norm;
CREATE INDEX sp_string_norm ON sp_string (resource_type, code, norm text_pattern_ops) INCLUDE (rid);
DROP INDEX IF EXISTS sp_token_value;
CREATE INDEX sp_token_value ON sp_token (resource_type, code, value, system) INCLUDE (rid);
DROP INDEX IF EXISTS sp_date_range;
CREATE INDEX sp_date_range ON sp_date (resource_type, code, low, high) INCLUDE (rid);
DROP INDEX IF EXISTS sp_date_high;
CREATE INDEX sp_date_high ON sp_date (resource_type, code, high) INCLUDE (rid);
DROP INDEX IF EXISTS sp_number_value;
CREATE INDEX sp_number_value ON sp_number (resource_type, code, value) INCLUDE (rid);
DROP INDEX IF EXISTS sp_reference_target;
CREATE INDEX sp_reference_target ON sp_reference (resource_type, code, target_id, target_type) INCLUDE (rid);
DROP INDEX IF EXISTS sp_uri_value;
CREATE INDEX sp_uri_value ON sp_uri (resource_type, code, value text_pattern_ops) INCLUDE (rid);
-- From a reference to its target's rid, and from a rid to whether it is live, without reading
-- the resource row (chains, _has, and the resources joined by a criterion).
CREATE INDEX IF NOT EXISTS resources_live ON resources (rid) INCLUDE (resource_type) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS resources_type_id_live ON resources (resource_type, id) INCLUDE (rid) WHERE NOT deleted;
