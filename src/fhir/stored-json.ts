// The JSON text a resource is stored as, and sent as: JSON.stringify's, with every character
// above U+00FF written as a \uXXXX escape (an astral one as its surrogate pair's two escapes),
// which JSON reads back as the same character.
//
// Why: V8 keeps a string whose characters are all Latin-1 at one byte per character, and decodes
// the text read from the database into such a string when it can. One character beyond Latin-1
// (’, œ, €, an emoji: common in French text) makes the whole string two bytes per character, and
// with it every answer it is spliced into; Node writes a two-byte string to a socket at about
// half the speed (a 52 KB page of CareTeams: 950 → 1,250 req/s, README "Search speed"). Escaping
// after the text is decoded does not help, as the escaped string is still two-byte: only text
// that is Latin-1 when it leaves the database decodes one-byte. é, è, à, ç stay as they are.
// Migration 023 (fhir_json_latin1) rewrites the text stored before this, identically.

const ABOVE_LATIN1 = /[\u0100-\uffff]/g;

const escaped = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` (JSON) with the characters above U+00FF escaped. */
export function latin1Json(text: string): string {
  return text.replace(ABOVE_LATIN1, escaped);
}

/** The stored JSON text of a resource. */
export function storedJson(resource: object): string {
  return latin1Json(JSON.stringify(resource));
}
