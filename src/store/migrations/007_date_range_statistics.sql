-- Statistics on the range each sp_date row covers, as the search writes it (sql.ts rangeHint):
-- PostgreSQL keeps a histogram of range bounds for it and estimates "overlaps this week" from
-- it, where bounds on low and high estimated apart are wrong by an order of magnitude.
CREATE STATISTICS IF NOT EXISTS sp_date_range_stats ON (tstzrange(low, high, '[]')) FROM sp_date;
ANALYZE sp_date;
