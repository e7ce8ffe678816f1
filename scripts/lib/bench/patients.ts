// Realistic French Patient resources for the benchmarks: French names, a valid INS-NIR
// (13 digits + the 97-complement key) under urn:oid:1.2.250.1.213.1.4.8, a local IPP,
// birth date, postal address in a real commune, telecom. Deterministic for a given seed.
import type { Patient } from '@medplum/fhirtypes';

export type Random = () => number;

/** mulberry32: small, fast, good enough to vary test data reproducibly. */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rnd: Random, list: readonly T[]): T => list[Math.floor(rnd() * list.length)];
const int = (rnd: Random, min: number, max: number): number => min + Math.floor(rnd() * (max - min + 1));
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

const FAMILY = [
  'Martin', 'Bernard', 'Thomas', 'Petit', 'Robert', 'Richard', 'Durand', 'Dubois', 'Moreau', 'Laurent', 'Simon', 'Michel',
  'Lefèvre', 'Leroy', 'Roux', 'David', 'Bertrand', 'Morel', 'Fournier', 'Girard', 'Bonnet', 'Dupont', 'Lambert', 'Fontaine',
  'Rousseau', 'Vincent', 'Muller', 'Lefebvre', 'Faure', 'André', 'Mercier', 'Blanc', 'Guérin', 'Boyer', 'Garnier', 'Chevalier',
  'François', 'Legrand', 'Gauthier', 'Garcia', 'Perrin', 'Robin', 'Clément', 'Morin', 'Nicolas', 'Henry', 'Roussel', 'Mathieu',
  'Gautier', 'Masson', 'Marchand', 'Duval', 'Denis', 'Dumont', 'Marie', 'Lemaire', 'Noël', 'Meyer', 'Dufour', 'Meunier',
  'Brun', 'Blanchard', 'Giraud', 'Joly', 'Rivière', 'Lucas', 'Brunet', 'Gaillard', 'Barbier', 'Arnaud', 'Martínez', 'Gérard',
  'Roche', 'Renard', 'Schmitt', 'Roy', 'Leroux', 'Colin', 'Vidal', 'Caron', 'Picard', 'Roger', 'Fabre', 'Aubert', 'Lemoine',
  'Renaud', 'Dumas', 'Lacroix', 'Olivier', 'Philippe', 'Bourgeois', 'Pierre', 'Benoît', 'Rey', 'Leclerc', 'Payet', 'Rolland',
  'Le Gall', 'Le Goff', 'Guillaume', 'Lecomte', 'Lopez', 'Jean', 'Dupuy', 'Guillot', 'Hubert', 'Berger', 'Carpentier', 'Sánchez',
];
const GIVEN_F = [
  'Marie', 'Jeanne', 'Françoise', 'Monique', 'Catherine', 'Nathalie', 'Isabelle', 'Sylvie', 'Anne', 'Martine', 'Christine',
  'Hélène', 'Sophie', 'Céline', 'Camille', 'Léa', 'Manon', 'Chloé', 'Inès', 'Emma', 'Zoé', 'Louise', 'Élodie', 'Margaux',
  'Geneviève', 'Josiane', 'Odette', 'Yvette', 'Thérèse', 'Agnès', 'Brigitte', 'Mélanie', 'Aurélie', 'Solène', 'Maëlle',
];
const GIVEN_M = [
  'Jean', 'Pierre', 'Michel', 'André', 'Philippe', 'René', 'Louis', 'Alain', 'Jacques', 'Bernard', 'Marcel', 'Daniel',
  'Christophe', 'Nicolas', 'Julien', 'Sébastien', 'Thomas', 'Lucas', 'Hugo', 'Théo', 'Léo', 'Gabriel', 'Raphaël', 'Mathéo',
  'François', 'Gérard', 'Étienne', 'Hervé', 'Thierry', 'Loïc', 'Benoît', 'Jérôme', 'Frédéric', 'Cédric', 'Noé',
];
// INSEE commune code (department 2 chars + commune 3 digits), city, postal code, phone prefix.
const COMMUNES: readonly [string, string, string, string, string][] = [
  ['33', '063', 'Bordeaux', '33000', '05'],
  ['33', '281', 'Mérignac', '33700', '05'],
  ['33', '522', 'Talence', '33400', '05'],
  ['75', '056', 'Paris', '75011', '01'],
  ['75', '115', 'Paris', '75015', '01'],
  ['69', '123', 'Lyon', '69003', '04'],
  ['13', '055', 'Marseille', '13005', '04'],
  ['31', '555', 'Toulouse', '31000', '05'],
  ['44', '109', 'Nantes', '44000', '02'],
  ['67', '482', 'Strasbourg', '67000', '03'],
  ['59', '350', 'Lille', '59000', '03'],
  ['35', '238', 'Rennes', '35000', '02'],
  ['34', '172', 'Montpellier', '34000', '04'],
  ['06', '088', 'Nice', '06000', '04'],
  ['64', '445', 'Pau', '64000', '05'],
  ['2A', '004', 'Ajaccio', '20000', '04'],
];
const STREET_TYPES = ['rue', 'avenue', 'boulevard', 'place', 'impasse', 'allée', 'chemin', 'cours', 'quai'];
const STREETS = [
  'Notre-Dame', 'de la République', 'Victor Hugo', 'Jean Jaurès', 'du Général de Gaulle', 'Pasteur', 'des Lilas', 'de la Gare',
  "d'Aquitaine", 'Sainte-Catherine', 'Gambetta', 'de Verdun', 'des Écoles', 'du Moulin', 'Émile Zola', 'de la Liberté',
  'Saint-Michel', 'des Chartrons', 'Carnot', 'Voltaire', 'de Bretagne', 'Clemenceau', 'du Port', 'des Acacias',
];
const ADDRESS_EXTRA = ['Appartement 3, 2e étage', 'Bâtiment B', 'Résidence Les Tilleuls', 'Escalier C', 'Chez Mme Dupont'];
const MARITAL = [
  ['M', 'Married'], ['S', 'Never Married'], ['W', 'Widowed'], ['D', 'Divorced'], ['U', 'unmarried'],
] as const;

/** The INS-NIR key: 97 - (NIR mod 97); Corsica's 2A/2B count as 19/18 in the computation. */
export function nirKey(nir13: string): string {
  const numeric = nir13.replace('2A', '19').replace('2B', '18');
  return pad(97 - Number(BigInt(numeric) % 97n), 2);
}

let counter = 0;

export interface PatientOptions {
  /** Adds a meaningful id when given (PUT bodies). */
  id?: string;
}

export function makePatient(rnd: Random, opts: PatientOptions = {}): Patient {
  const female = rnd() < 0.52;
  const family = pick(rnd, FAMILY);
  const given = [pick(rnd, female ? GIVEN_F : GIVEN_M)];
  if (rnd() < 0.4) given.push(pick(rnd, female ? GIVEN_F : GIVEN_M));
  const year = int(rnd, 1925, 2023);
  const month = int(rnd, 1, 12);
  const day = int(rnd, 1, 28);
  const [, , city, postalCode, phonePrefix] = pick(rnd, COMMUNES);
  const birthPlace = pick(rnd, COMMUNES);
  const nir13 = `${female ? 2 : 1}${pad(year % 100, 2)}${pad(month, 2)}${birthPlace[0]}${birthPlace[1]}${pad(int(rnd, 1, 999), 3)}`;
  const ins = nir13 + nirKey(nir13);
  const line = [`${int(rnd, 1, 180)} ${pick(rnd, STREET_TYPES)} ${pick(rnd, STREETS)}`];
  if (rnd() < 0.3) line.push(pick(rnd, ADDRESS_EXTRA));
  const phone = () => `${phonePrefix} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)}`;
  const mobile = () => `0${pick(rnd, ['6', '7'])} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)}`;
  const ascii = (s: string) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z]/g, '');
  const marital = pick(rnd, MARITAL);
  counter++;
  const patient: Patient = {
    resourceType: 'Patient',
    ...(opts.id ? { id: opts.id } : {}),
    extension: [
      {
        url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability',
        extension: [
          {
            url: 'identityStatus',
            valueCoding: { system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445', code: 'VALI', display: 'Identité validée' },
          },
        ],
      },
      {
        url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace',
        valueAddress: {
          extension: [
            {
              url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code',
              valueCoding: { system: 'https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM', code: `${birthPlace[0]}${birthPlace[1]}` },
            },
          ],
          city: birthPlace[2],
        },
      },
    ],
    identifier: [
      {
        use: 'official',
        type: { coding: [{ system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203', code: 'INS-NIR', display: 'NIR définitif' }] },
        system: 'urn:oid:1.2.250.1.213.1.4.8',
        value: ins,
      },
      {
        use: 'usual',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PI', display: 'Patient internal identifier' }] },
        system: 'https://dac-bench.example/fhir/NamingSystem/ipp',
        value: `IPP-${pad(int(rnd, 0, 99_999_999), 8)}-${counter}`,
      },
    ],
    active: true,
    name: [
      {
        extension: [
          { url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name', valueString: given.join(' ') },
        ],
        use: 'official',
        family,
        given: [given[0]],
      },
    ],
    telecom: [
      { system: 'phone', value: phone(), use: 'home' },
      { system: 'phone', value: mobile(), use: 'mobile' },
      ...(rnd() < 0.6 ? [{ system: 'email' as const, value: `${ascii(given[0])}.${ascii(family)}${int(rnd, 1, 99)}@exemple.fr`, use: 'home' as const }] : []),
    ],
    gender: female ? 'female' : 'male',
    birthDate: `${year}-${pad(month, 2)}-${pad(day, 2)}`,
    deceasedBoolean: false,
    address: [
      {
        use: 'home',
        type: 'both',
        line,
        city,
        postalCode,
        country: 'FR',
        text: `${line.join(', ')}, ${postalCode} ${city}`,
      },
    ],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: marital[0], display: marital[1] }] },
  };
  return patient;
}

/** A transaction Bundle creating `size` patients (POST Patient, urn:uuid fullUrls). */
export function transactionBundle(rnd: Random, size: number): object {
  const entry = [];
  for (let i = 0; i < size; i++) {
    entry.push({
      fullUrl: `urn:uuid:${uuidFrom(rnd)}`,
      resource: makePatient(rnd),
      request: { method: 'POST', url: 'Patient' },
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

function uuidFrom(rnd: Random): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

// Name and commune lists, for other generators of French data (scripts/lib/bench/coordination.ts).
export { FAMILY, GIVEN_F, GIVEN_M, COMMUNES, STREET_TYPES, STREETS, uuidFrom };
