-- index_mask bit 9 (512): the resource has security labels (meta.security, or securityLabel where
-- the type has one), so the access filter's visibility-label check (src/access/filter.ts) reads
-- sp_token for these rows only. Set here for what was stored before the bit existed.
UPDATE resources SET index_mask = index_mask | 512
WHERE rid IN (SELECT rid FROM sp_token WHERE code IN ('_security', 'security-label')) AND index_mask & 512 = 0;
