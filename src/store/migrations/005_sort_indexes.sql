-- _sort=-date walks dates by their end (the largest value first): an index in that order lets a
-- sorted search stop after one page instead of sorting every match. (Ascending sorts use the
-- start, which sp_date_range already leads with.)
CREATE INDEX sp_date_high ON sp_date (resource_type, code, high);
