-- Multi-column statistics on the search index tables. A criterion pins resource type, parameter
-- code and value (and system) together, and these columns are strongly correlated: estimated as
-- independent, Observation?code=http://loinc.org|8867-4 looked like 642 rows instead of 36,526,
-- and the planner chose a nested loop over every match instead of walking the page in order
-- (2 s instead of a few ms at 1M resources). ANALYZE (autovacuum) fills them.
CREATE STATISTICS IF NOT EXISTS sp_token_stats (dependencies, mcv) ON resource_type, code, system, value FROM sp_token;
CREATE STATISTICS IF NOT EXISTS sp_reference_stats (dependencies, mcv) ON resource_type, code, target_type FROM sp_reference;
CREATE STATISTICS IF NOT EXISTS sp_date_stats (dependencies, mcv) ON resource_type, code FROM sp_date;
CREATE STATISTICS IF NOT EXISTS sp_string_stats (dependencies, mcv) ON resource_type, code FROM sp_string;
CREATE STATISTICS IF NOT EXISTS sp_quantity_stats (dependencies, mcv) ON resource_type, code, system, unit FROM sp_quantity;
-- Fill them now on an existing database rather than at the next autovacuum.
ANALYZE sp_token, sp_reference, sp_date, sp_string, sp_quantity;
