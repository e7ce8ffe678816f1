-- The conformance resources of the FHIR packages in profiles/ are stored as resources, so that
-- they can be read and searched like any other (issue 4). A package is imported once, in one
-- transaction: package_imports says which, and package_resources which resources are a
-- package's own copy (the catalog already holds those from the package itself).
CREATE TABLE IF NOT EXISTS package_imports (
  package text PRIMARY KEY,
  resources integer NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS package_resources (
  resource_type text NOT NULL,
  id text NOT NULL,
  package text NOT NULL,
  PRIMARY KEY (resource_type, id)
);
