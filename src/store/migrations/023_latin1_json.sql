-- The stored JSON escapes every character above U+00FF (src/fhir/stored-json.ts says why: text
-- that is Latin-1 when it leaves the database is sent twice as fast). fhir_json_latin1 is the
-- same escaping in SQL, character for character (test/stored-json.test.ts compares the two); it
-- rewrites the text stored before, current rows and history alike. A JSON text holds such
-- characters only inside its strings, where an escape reads back as the same character.
-- vacuum-after: resources, resource_history
CREATE OR REPLACE FUNCTION fhir_json_latin1(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  c text;
  cp integer;
BEGIN
  FOR c IN SELECT DISTINCT m[1] FROM regexp_matches(t, '([^\x01-\xff])', 'g') AS m LOOP
    cp := ascii(c);
    t := replace(t, c, CASE
      WHEN cp > 65535 THEN '\u' || lpad(to_hex(55296 + ((cp - 65536) >> 10)), 4, '0') || '\u' || lpad(to_hex(56320 + ((cp - 65536) & 1023)), 4, '0')
      ELSE '\u' || lpad(to_hex(cp), 4, '0')
    END);
  END LOOP;
  RETURN t;
END
$$;

UPDATE resources SET content = fhir_json_latin1(content) WHERE content ~ '[^\x01-\xff]';
UPDATE resource_history SET content = fhir_json_latin1(content) WHERE content ~ '[^\x01-\xff]';
