// String folding shared by index rows and search values: FHIR string search is case- and
// accent-insensitive ("Hélène" is found by "helene").
export function normalizeString(value: string): string {
  return value.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().replace(/\s+/g, ' ').trim();
}
