-- The entries of one token or one reference target in rid order: the rid moves from the INCLUDE
-- columns (migration 017) to the end of the key. A page of a broad search walks the resources in
-- rid order from its cursor and checks each against the criterion; with its entries ordered, the
-- criterion is read from the cursor on, in step (a merge join that stops with the page), instead
-- of all its entries being read and sorted first. At 1M resources, page 20 of
-- Observation?code=<LOINC>&date=ge2026-01-01 (18,000 entries for the code) went from 9.4 to 0.7 ms
-- in PostgreSQL. The size stays: entries with an INCLUDE column were not deduplicated either.
DROP INDEX IF EXISTS sp_token_value;
CREATE INDEX sp_token_value ON sp_token (resource_type, code, value, system, rid);
DROP INDEX IF EXISTS sp_reference_target;
CREATE INDEX sp_reference_target ON sp_reference (resource_type, code, target_id, target_type, rid);
