-- The references of one parameter of one resource type, in rid order, with their targets: a
-- lookup by the owner's rid and the parameter's code (a `_has` link from the resources it found
-- to their targets, an `_include` from a page, an EXISTS check by rid) reads one dense region of
-- this index, index-only. sp_reference_rid serves it too, but its entries of one type and code lie
-- among every other reference in the database and each needs a heap fetch; at 1M resources,
-- under load with 256 MB of shared buffers, most of those pages were read in again for every
-- request: Patient?_has:CareTeam:patient:participant=Practitioner/<id> (about 180 care teams per
-- practitioner) cost PostgreSQL 7.8 ms of CPU per request, 2.4 ms with this index.
CREATE INDEX sp_reference_source ON sp_reference (resource_type, code, rid) INCLUDE (target_type, target_id);
