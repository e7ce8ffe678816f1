// Realistic French care-coordination data for the search benchmark, deterministic for a seed.
//
// A shared pool comes first: organisations (DAC, SSIAD, MSP, pharmacies, hospitals, EHPAD) with
// FINESS / idNatSt numbers, and practitioners with RPPS / idNatPs numbers, each with one
// PractitionerRole in an organisation of their territory. Pool resources carry ids chosen
// here (sent as PUT), so every later reference to them is a literal `Type/id` and loading the
// pool twice changes nothing.
//
// Then, per patient (its own seed, so any patient can be generated alone and in any order):
// Patient (INS-NIR unique within a run, médecin traitant, DAC), sometimes an aidant
// (RelatedPerson), the cercle de soins (CareTeam), the PPCS (CarePlan), conditions (CIM-10),
// encounters, appointments (past and future), liaison messages (Communication), observations
// (LOINC, UCUM quantities), the multidimensional assessment (QuestionnaireResponse) and
// coordination tasks. About 23 resources per patient; references inside a patient are
// urn:uuid (the patient's entries always travel in one transaction bundle).
//
// Identifier systems and codes follow fixtures/demo.json and FR Core.
import type {
  Appointment, BundleEntry, CarePlan, CareTeam, CareTeamParticipant, CodeableConcept, Communication, Condition, Encounter,
  Observation, Organization, Patient, Practitioner, PractitionerRole, QuestionnaireResponse, QuestionnaireResponseItem,
  Reference, RelatedPerson, Resource, Task,
} from '@medplum/fhirtypes';
import { FAMILY, GIVEN_F, GIVEN_M, makePatient, nirKey, seeded, STREET_TYPES, STREETS, uuidFrom, type Random } from './patients.ts';

// ---------------------------------------------------------------- systems and codes

export const SYS = {
  INS: 'urn:oid:1.2.250.1.213.1.4.8',
  IDNPS: 'urn:oid:1.2.250.1.71.4.2.1',
  IDNST: 'urn:oid:1.2.250.1.71.4.2.2',
  RPPS: 'https://rpps.esante.gouv.fr',
  FINESS: 'https://finess.esante.gouv.fr',
  FR_0203: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203',
  LOINC: 'http://loinc.org',
  UCUM: 'http://unitsofmeasure.org',
  CIM10: 'http://hl7.org/fhir/sid/icd-10',
  G15: 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante',
  R09: 'https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle',
  R23: 'https://mos.esante.gouv.fr/NOS/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice',
  R38: 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale',
  R85: 'https://mos.esante.gouv.fr/NOS/TRE_R85-RolePriseCharge/FHIR/TRE-R85-RolePriseCharge',
  R216: 'https://mos.esante.gouv.fr/NOS/TRE_R216-HL7RoleCode/FHIR/TRE-R216-HL7RoleCode',
  R259: 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7ParticipationFunction/FHIR/TRE-R259-HL7ParticipationFunction',
  R260: 'https://mos.esante.gouv.fr/NOS/TRE_R260-HL7RoleClass/FHIR/TRE-R260-HL7RoleClass',
  R3307: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307',
  NS: 'https://dac-bench.example/fhir/NamingSystem',
} as const;

// ---------------------------------------------------------------- small helpers

const pick = <T>(rnd: Random, list: readonly T[]): T => list[Math.floor(rnd() * list.length)];
const int = (rnd: Random, min: number, max: number): number => min + Math.floor(rnd() * (max - min + 1));
const chance = (rnd: Random, p: number): boolean => rnd() < p;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;
/** Roughly normal (Irwin–Hall of 4 uniforms), mean 0, sd 1. */
const gauss = (rnd: Random): number => (rnd() + rnd() + rnd() + rnd() - 2) * Math.sqrt(3);

/** A 32-bit mix of a seed and an index (murmur3's finaliser), for per-item seeds. */
export function mixSeed(seed: number, index: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The Luhn check digit to append to `payload` (RPPS, FINESS). */
export function luhnKey(payload: string): string {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) {
    let d = Number(payload[payload.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

const fold = (s: string): string => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
const slug = (s: string): string => fold(s).replace(/[^a-z]+/g, '-').replace(/^-|-$/g, '');

// ---------------------------------------------------------------- dates (Europe/Paris)

const DAY = 86_400_000;

/** Day number (days since 1970-01-01) of a YYYY-MM-DD date. */
export function dayNumber(date: string): number {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(ms)) throw new Error(`not a date: ${date}`);
  return Math.floor(ms / DAY);
}

export function isoDay(day: number): string {
  return new Date(day * DAY).toISOString().slice(0, 10);
}

function lastSunday(year: number, month0: number): number {
  const last = new Date(Date.UTC(year, month0 + 1, 0));
  return last.getUTCDate() - last.getUTCDay();
}

/** Summer time in France: from the last Sunday of March to the last Sunday of October. */
function parisOffset(day: number): string {
  const d = new Date(day * DAY);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const dd = d.getUTCDate();
  const summer = (m > 2 && m < 9) || (m === 2 && dd >= lastSunday(y, 2)) || (m === 9 && dd < lastSunday(y, 9));
  return summer ? '+02:00' : '+01:00';
}

/** A local Paris date-time: day number, minutes after midnight. */
export function parisDateTime(day: number, minutes: number): string {
  const m = Math.max(0, Math.min(minutes, 23 * 60 + 59));
  return `${isoDay(day)}T${pad(Math.floor(m / 60), 2)}:${pad(m % 60, 2)}:00${parisOffset(day)}`;
}

/** Moves Saturdays and Sundays to a working day: the Monday after, or the Friday before. */
function workingDay(day: number, backwards = false): number {
  const wd = new Date(day * DAY).getUTCDay();
  if (backwards) return wd === 6 ? day - 1 : wd === 0 ? day - 2 : day;
  return wd === 6 ? day + 2 : wd === 0 ? day + 1 : day;
}

// ---------------------------------------------------------------- territories and the pool

/** DAC territories: department, city, postal code, phone prefix, territory name. */
const TERRITORIES: readonly [string, string, string, string, string][] = [
  ['33', 'Bordeaux', '33300', '05', 'Bordeaux Garonne'],
  ['33', 'Libourne', '33500', '05', 'Libournais'],
  ['75', 'Paris', '75011', '01', 'Paris Est'],
  ['75', 'Paris', '75015', '01', 'Paris Sud-Ouest'],
  ['69', 'Lyon', '69003', '04', 'Lyon Centre'],
  ['13', 'Marseille', '13005', '04', 'Marseille Provence'],
  ['31', 'Toulouse', '31000', '05', 'Toulouse Métropole'],
  ['44', 'Nantes', '44000', '02', 'Nantes Loire'],
  ['67', 'Strasbourg', '67000', '03', 'Eurométropole de Strasbourg'],
  ['59', 'Lille', '59000', '03', 'Métropole lilloise'],
  ['35', 'Rennes', '35000', '02', 'Pays de Rennes'],
  ['34', 'Montpellier', '34000', '04', 'Montpellier Hérault'],
  ['06', 'Nice', '06000', '04', "Côte d'Azur"],
  ['64', 'Pau', '64000', '05', 'Béarn'],
  ['2A', 'Ajaccio', '20000', '04', 'Corse-du-Sud'],
  ['87', 'Limoges', '87000', '05', 'Haute-Vienne'],
];

type OrgKind = 'DAC' | 'SSIAD' | 'MSP' | 'PHARMACIE' | 'CH' | 'EHPAD';
const ORG_KINDS: readonly { kind: OrgKind; share: number; label: string }[] = [
  { kind: 'SSIAD', share: 0.15, label: 'Service de soins infirmiers à domicile (SSIAD)' },
  { kind: 'MSP', share: 0.32, label: 'Maison de santé pluriprofessionnelle (MSP)' },
  { kind: 'PHARMACIE', share: 0.32, label: "Pharmacie d'officine" },
  { kind: 'CH', share: 0.08, label: 'Centre hospitalier' },
  { kind: 'EHPAD', share: 0.13, label: 'Établissement d’hébergement pour personnes âgées dépendantes (EHPAD)' },
];
const PLACES = [
  'des Chartrons', 'du Centre', 'Saint-Michel', 'des Tilleuls', 'du Parc', 'des Quais', 'de la Gare', 'des Coteaux', 'Pasteur',
  'du Marché', 'des Lilas', 'Jean Jaurès', 'Victor Hugo', 'de la Vallée', 'des Acacias', 'Sainte-Anne', 'du Moulin', 'de la Source',
];

type Profession = 'gp' | 'nurse' | 'physio' | 'pharmacist' | 'coordinator' | 'specialist';
interface ProfessionDef {
  share: number;
  g15: [string, string];
  orgs: OrgKind[];
  title: 'Dr' | '';
  salaried: number;
  specialty?: CodeableConcept[];
  role?: CodeableConcept;
}
const SPECIALTIES = ['Gériatrie', 'Cardiologie', 'Neurologie', 'Psychiatrie', 'Néphrologie', 'Endocrinologie', 'Oncologie médicale', 'Pneumologie'];
const PROFESSIONS: Record<Profession, ProfessionDef> = {
  gp: {
    share: 0.27, g15: ['10', 'Médecin'], orgs: ['MSP'], title: 'Dr', salaried: 0,
    specialty: [{ coding: [{ system: SYS.R38, code: 'SM54', display: 'Médecine générale (SM)' }] }],
  },
  nurse: { share: 0.28, g15: ['60', 'Infirmier'], orgs: ['MSP', 'SSIAD', 'EHPAD'], title: '', salaried: 0.4 },
  physio: { share: 0.12, g15: ['70', 'Masseur-Kinésithérapeute'], orgs: ['MSP'], title: '', salaried: 0 },
  pharmacist: { share: 0.1, g15: ['21', 'Pharmacien'], orgs: ['PHARMACIE'], title: 'Dr', salaried: 0.2 },
  coordinator: {
    share: 0.08, g15: ['60', 'Infirmier'], orgs: ['DAC'], title: '', salaried: 1,
    role: { coding: [{ system: SYS.R85, code: '330', display: 'Coordonnateur de parcours' }], text: 'Coordinateur / coordinatrice de parcours' },
  },
  specialist: { share: 0.15, g15: ['10', 'Médecin'], orgs: ['CH'], title: 'Dr', salaried: 1 },
};

export interface PoolOrganization {
  id: string;
  kind: OrgKind;
  territory: number;
  finess: string;
  name: string;
  short: string;
}

export interface PoolPractitioner {
  id: string;
  roleId: string;
  profession: Profession;
  territory: number;
  org: number;
  idNatPs: string;
  gender: 'female' | 'male';
  /** "Dr Antoine Moreau" */
  name: string;
  /** "Dr Antoine Moreau (MSP des Chartrons)" */
  display: string;
  /** Mme / M. */
  civility: string;
}

export interface Pool {
  organizations: PoolOrganization[];
  practitioners: PoolPractitioner[];
  /** Per territory, per profession: indexes into practitioners. */
  byTerritory: Record<Profession, number[]>[];
  /** Per territory: indexes into organizations by kind. */
  orgsByTerritory: Record<OrgKind, number[]>[];
  /** The resources to load (PUT with these ids): organisations first, then practitioners and roles. */
  resources: Resource[];
}

export interface PoolSizes {
  organizations: number;
  practitioners: number;
}

export const DEFAULT_POOL: PoolSizes = { organizations: 300, practitioners: 3000 };

function personName(rnd: Random): { family: string; given: string; gender: 'female' | 'male' } {
  const female = rnd() < 0.6;
  return { family: pick(rnd, FAMILY), given: pick(rnd, female ? GIVEN_F : GIVEN_M), gender: female ? 'female' : 'male' };
}

function phone(rnd: Random, prefix: string): string {
  return `${prefix} ${pad(int(rnd, 10, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)}`;
}

function mobile(rnd: Random): string {
  return `0${pick(rnd, ['6', '7'])} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)} ${pad(int(rnd, 0, 99), 2)}`;
}

/** The shared pool of organisations and practitioners (resources and their ids), for a seed. */
export function makePool(seed: number, sizes: PoolSizes = DEFAULT_POOL): Pool {
  const rnd = seeded(mixSeed(seed, 0x7fffffff));
  const nTerritories = Math.max(1, Math.min(TERRITORIES.length, Math.floor(sizes.organizations / 6)));
  const organizations: PoolOrganization[] = [];
  const orgResources: Organization[] = [];
  const orgsByTerritory = Array.from({ length: nTerritories }, () => ({ DAC: [], SSIAD: [], MSP: [], PHARMACIE: [], CH: [], EHPAD: [] }) as Record<OrgKind, number[]>);

  const addOrg = (kind: OrgKind, territory: number, label: string) => {
    const [dept, city, postalCode, phonePrefix, territoryName] = TERRITORIES[territory];
    const n = organizations.length;
    // FINESS: department (2A/2B count as 20 in the key), 6 digits, Luhn key.
    const body = `${dept}${pad(100_000 + ((n * 7919 + seed) % 900_000), 6)}`;
    const finess = body + luhnKey(body.replace(/^2[AB]/, '20'));
    const place = `${pick(rnd, PLACES)}`;
    let name: string;
    let short: string;
    switch (kind) {
      case 'DAC': name = `Dispositif d'appui à la coordination ${territoryName}`; short = `DAC ${territoryName}`; break;
      case 'SSIAD': name = `SSIAD ${place} – ${city}`; short = `SSIAD ${place}`; break;
      case 'MSP': name = `Maison de santé pluriprofessionnelle ${place} – ${city}`; short = `MSP ${place}`; break;
      case 'PHARMACIE': name = `Pharmacie ${place} – ${city}`; short = `Pharmacie ${place}`; break;
      case 'CH': name = `Centre hospitalier ${city} – site ${place}`; short = `CH ${city}`; break;
      case 'EHPAD': name = `EHPAD Résidence ${place} – ${city}`; short = `EHPAD ${place}`; break;
    }
    const id = uuidFrom(rnd);
    organizations.push({ id, kind, territory, finess, name, short });
    orgsByTerritory[territory][kind].push(n);
    orgResources.push({
      resourceType: 'Organization',
      id,
      identifier: [
        {
          use: 'official',
          type: { coding: [{ system: SYS.FR_0203, code: 'IDNST', display: 'Identification nationale de structure définie par l’ANS dans le CI_SIS' }] },
          system: SYS.IDNST,
          value: `1${finess}`,
        },
        {
          use: 'official',
          type: { coding: [{ system: SYS.FR_0203, code: 'FINEG', display: "FINESS d'entité géographique" }] },
          system: SYS.FINESS,
          value: finess,
        },
      ],
      active: true,
      type: [
        { coding: [{ system: SYS.R3307, code: 'GEOGRAPHICAL-ENTITY', display: 'Entité géographique' }] },
        { text: label },
      ],
      name,
      ...(kind === 'DAC' ? { alias: [short] } : {}),
      telecom: [
        { system: 'phone', value: phone(rnd, phonePrefix), use: 'work' },
        { system: 'email', value: `contact@${slug(short)}-${n}.example`, use: 'work' },
      ],
      address: [{
        use: 'work', type: 'both', line: [`${int(rnd, 1, 120)} ${pick(rnd, STREET_TYPES)} ${pick(rnd, STREETS)}`], city, postalCode, country: 'FR',
      }],
    });
  };

  for (let t = 0; t < nTerritories; t++) addOrg('DAC', t, "Dispositif d'appui à la coordination (DAC)");
  const rest = Math.max(0, sizes.organizations - nTerritories);
  let made = 0;
  for (const k of ORG_KINDS) {
    const count = k === ORG_KINDS[ORG_KINDS.length - 1] ? rest - made : Math.round(rest * k.share);
    for (let i = 0; i < count; i++) addOrg(k.kind, (made + i) % nTerritories, k.label);
    made += count;
  }

  const practitioners: PoolPractitioner[] = [];
  const practResources: Resource[] = [];
  const byTerritory = Array.from({ length: nTerritories }, () => ({ gp: [], nurse: [], physio: [], pharmacist: [], coordinator: [], specialist: [] }) as Record<Profession, number[]>);
  const professions = Object.entries(PROFESSIONS) as [Profession, ProfessionDef][];
  for (let i = 0; i < sizes.practitioners; i++) {
    // Professions by share, spread evenly over the territories.
    let u = ((i * 0.6180339887) % 1);
    let profession: Profession = 'gp';
    for (const [p, def] of professions) {
      if (u < def.share) {
        profession = p;
        break;
      }
      u -= def.share;
    }
    const def = PROFESSIONS[profession];
    const territory = i % nTerritories;
    const candidates = def.orgs.flatMap((k) => orgsByTerritory[territory][k]);
    const org = candidates.length ? pick(rnd, candidates) : int(rnd, 0, organizations.length - 1);
    const o = organizations[org];
    const { family, given, gender } = personName(rnd);
    const civility = gender === 'female' ? 'Mme' : 'M.';
    const prefix = def.title || civility;
    const name = `${prefix} ${given} ${family}`;
    const rppsBody = `10${pad(((seed % 1000) * 100_000 + i) % 100_000_000, 8)}`;
    const rpps = rppsBody + luhnKey(rppsBody);
    const id = uuidFrom(rnd);
    const roleId = uuidFrom(rnd);
    const phonePrefix = TERRITORIES[o.territory][3];
    const email = `${slug(given)}.${slug(family)}.${i}@${slug(o.short)}.example`;
    practitioners.push({ id, roleId, profession, territory, org, idNatPs: `8${rpps}`, gender, name, display: `${name} (${o.short})`, civility });
    byTerritory[territory][profession].push(i);
    const practitioner: Practitioner = {
      resourceType: 'Practitioner',
      id,
      identifier: [
        {
          use: 'official',
          type: { coding: [{ system: SYS.FR_0203, code: 'IDNPS', display: 'Identifiant National de Professionnel de Santé' }] },
          system: SYS.IDNPS,
          value: `8${rpps}`,
        },
        { use: 'official', type: { coding: [{ system: SYS.FR_0203, code: 'RPPS', display: 'N° RPPS' }] }, system: SYS.RPPS, value: rpps },
      ],
      active: true,
      name: [{ use: 'official', family, given: [given], prefix: [prefix], text: name }],
      telecom: [
        { system: 'email', value: email, use: 'work' },
        ...(chance(rnd, 0.6) ? [{ system: 'phone' as const, value: mobile(rnd), use: 'work' as const }] : []),
      ],
      gender,
      qualification: [{
        code: {
          coding: [
            { system: SYS.R09, code: 'C', display: 'Civil' },
            { system: SYS.G15, code: def.g15[0], display: def.g15[1] },
          ],
        },
      }],
    };
    const specialty = def.specialty ?? (profession === 'specialist' ? [{ text: pick(rnd, SPECIALTIES) }] : undefined);
    const role: PractitionerRole = {
      resourceType: 'PractitionerRole',
      id: roleId,
      active: true,
      period: { start: `${2010 + (i % 16)}-${pad(1 + (i % 12), 2)}-01` },
      practitioner: { reference: `Practitioner/${id}`, display: name },
      organization: { reference: `Organization/${o.id}`, display: o.short },
      code: [
        def.role ?? { coding: [{ system: SYS.G15, code: def.g15[0], display: def.g15[1] }] },
        {
          coding: [chance(rnd, def.salaried)
            ? { system: SYS.R23, code: 'S', display: 'Salarié' }
            : { system: SYS.R23, code: 'L', display: 'Libéral' }],
        },
      ],
      ...(specialty ? { specialty } : {}),
      telecom: [{ system: 'phone', value: phone(rnd, phonePrefix), use: 'work' }, { system: 'email', value: email, use: 'work' }],
    };
    practResources.push(practitioner, role);
  }
  return { organizations, practitioners, byTerritory, orgsByTerritory, resources: [...orgResources, ...practResources] };
}

// ---------------------------------------------------------------- per-patient data

export const CONDITIONS: readonly [string, string, number][] = [
  // CIM-10 code, French display, share of patients
  ['I10', 'Hypertension essentielle (primitive)', 0.45],
  ['E11.9', 'Diabète sucré de type 2, sans complication', 0.25],
  ['G30.9', "Maladie d'Alzheimer, sans précision", 0.12],
  ['I50.9', 'Insuffisance cardiaque, sans précision', 0.15],
  ['J44.9', 'Maladie pulmonaire obstructive chronique, sans précision', 0.1],
  ['F32.9', 'Épisode dépressif, sans précision', 0.12],
  ['M81.9', 'Ostéoporose, sans précision', 0.12],
  ['N18.3', 'Maladie rénale chronique, stade 3', 0.1],
  ['G20', 'Maladie de Parkinson', 0.05],
  ['R29.6', 'Tendance à la chute, non classée ailleurs', 0.2],
  ['I48.9', 'Fibrillation et flutter auriculaires, sans précision', 0.1],
  ['C50.9', 'Tumeur maligne du sein, sans précision', 0.04],
  ['E66.9', 'Obésité, sans précision', 0.1],
  ['F03', 'Démence, sans précision', 0.06],
];

interface ObsKind {
  key: string;
  loinc: string;
  display: string;
  text: string;
  category: 'vital-signs' | 'laboratory' | 'survey';
  unit?: string;
  ucum?: string;
  weight: (p: Profile) => number;
  value?: (rnd: Random, p: Profile) => number;
}
interface Profile {
  weightKg: number;
  diabetic: boolean;
  ckd: boolean;
  hypertensive: boolean;
}
/** The observation kinds (LOINC, UCUM) and how often each is measured. */
export const OBSERVATIONS: readonly ObsKind[] = [
  { key: 'weight', loinc: '29463-7', display: 'Body weight', text: 'Poids', category: 'vital-signs', unit: 'kg', ucum: 'kg', weight: () => 3, value: (r, p) => round(p.weightKg + gauss(r) * 1.2, 1) },
  { key: 'bp', loinc: '85354-9', display: 'Blood pressure panel with all children optional', text: 'Tension artérielle', category: 'vital-signs', weight: (p) => (p.hypertensive ? 4 : 2) },
  { key: 'hr', loinc: '8867-4', display: 'Heart rate', text: 'Fréquence cardiaque', category: 'vital-signs', unit: '/min', ucum: '/min', weight: () => 1.5, value: (r) => Math.round(72 + gauss(r) * 10) },
  { key: 'temp', loinc: '8310-5', display: 'Body temperature', text: 'Température', category: 'vital-signs', unit: '°C', ucum: 'Cel', weight: () => 0.6, value: (r) => round(36.9 + gauss(r) * 0.4, 1) },
  { key: 'spo2', loinc: '2708-6', display: 'Oxygen saturation in Arterial blood', text: 'Saturation en oxygène', category: 'vital-signs', unit: '%', ucum: '%', weight: () => 0.6, value: (r) => Math.min(100, Math.round(96 + gauss(r) * 1.5)) },
  { key: 'glucose', loinc: '2339-0', display: 'Glucose [Mass/volume] in Blood', text: 'Glycémie capillaire', category: 'laboratory', unit: 'g/L', ucum: 'g/L', weight: (p) => (p.diabetic ? 3 : 0.2), value: (r, p) => round((p.diabetic ? 1.5 : 0.95) + gauss(r) * 0.2, 2) },
  { key: 'hba1c', loinc: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', text: 'HbA1c', category: 'laboratory', unit: '%', ucum: '%', weight: (p) => (p.diabetic ? 1 : 0), value: (r) => round(7.2 + gauss(r) * 0.8, 1) },
  { key: 'creat', loinc: '14682-9', display: 'Creatinine [Moles/volume] in Serum or Plasma', text: 'Créatininémie', category: 'laboratory', unit: 'µmol/L', ucum: 'umol/L', weight: (p) => (p.ckd ? 1.5 : 0.3), value: (r, p) => Math.round((p.ckd ? 150 : 80) + gauss(r) * 15) },
  { key: 'pain', loinc: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported', text: 'Douleur (échelle numérique)', category: 'survey', unit: 'score', ucum: '{score}', weight: () => 0.8, value: (r) => int(r, 0, 8) },
];

const APPOINTMENT_KINDS: readonly { profession: Profession; text: string; minutes: number[]; type: [string, string] }[] = [
  { profession: 'gp', text: 'Consultation de suivi chez le médecin traitant', minutes: [15, 20, 30], type: ['FOLLOWUP', 'A follow up visit from a previous appointment'] },
  { profession: 'gp', text: 'Visite à domicile du médecin traitant', minutes: [30], type: ['ROUTINE', 'Routine appointment - default if not valued'] },
  { profession: 'nurse', text: 'Passage infirmier à domicile : pansement et surveillance', minutes: [15, 30], type: ['ROUTINE', 'Routine appointment - default if not valued'] },
  { profession: 'physio', text: 'Séance de kinésithérapie : rééducation à la marche', minutes: [30, 45], type: ['ROUTINE', 'Routine appointment - default if not valued'] },
  { profession: 'specialist', text: 'Consultation spécialisée', minutes: [20, 30], type: ['CHECKUP', 'A routine check-up, such as an annual physical'] },
  { profession: 'coordinator', text: "Visite d'évaluation multidimensionnelle au domicile", minutes: [60, 90], type: ['CHECKUP', 'A routine check-up, such as an annual physical'] },
  { profession: 'coordinator', text: 'Réunion de concertation pluriprofessionnelle (RCP)', minutes: [45, 60], type: ['FOLLOWUP', 'A follow up visit from a previous appointment'] },
];

const TOPICS = [
  'Cahier de liaison – passage infirmier', 'Sortie d’hospitalisation', 'Demande de réévaluation du traitement', 'Chute à domicile',
  'Renouvellement d’ordonnance', 'Point de situation', 'Organisation des aides à domicile', 'Résultats de biologie', 'Épuisement de l’aidant',
];
const MESSAGES = [
  'Passage effectué ce matin, {p} est fatigué·e mais sans plainte particulière. TA {ta}.',
  '{p} a fait une chute hier soir en se levant la nuit, sans gravité apparente. Pouvez-vous passer cette semaine ?',
  'Retour à domicile prévu jeudi après l’hospitalisation ; merci de reprendre les passages infirmiers dès vendredi.',
  'Les résultats de biologie du {d} sont arrivés : créatininémie stable, glycémie à jeun un peu élevée.',
  'L’aidante principale signale un épuisement ; une solution de répit est à étudier lors de la prochaine RCP.',
  'Traitement modifié ce jour : arrêt de l’amlodipine, surveillance tensionnelle couché/debout deux fois par semaine.',
  'Portage de repas en place depuis lundi, la toilette est assurée par le SSIAD le matin.',
  'Pouvez-vous renouveler l’ordonnance de kinésithérapie (20 séances) ? Bonne progression à la marche.',
];
const TASKS = [
  'Organiser le portage de repas', 'Demander une aide-ménagère (APA)', 'Planifier une réévaluation gériatrique',
  'Transmettre le PPCS au médecin traitant', "Contacter l'aidant pour un point de situation", 'Mettre en place une téléassistance',
  'Préparer la sortie d’hospitalisation', 'Solliciter une évaluation ergothérapique du domicile',
];
const AIDANT_LINKS: readonly [string, string, 'female' | 'male' | undefined][] = [
  ['DAUC', 'Fille', 'female'], ['SONC', 'Fils', 'male'], ['SPS', 'Conjoint', undefined], ['NIECE', 'Nièce', 'female'], ['FRND', 'Ami(e)', undefined],
];

export interface GeneratorOptions {
  seed: number;
  /** Data is spread around this day: history before it, some appointments and tasks after. */
  anchorDay: number;
  pool: Pool;
}

/** Per-run state: INS-NIR values given so far, so that each is unique (generate in index order). */
export class CoordinationGenerator {
  readonly options: GeneratorOptions;
  private readonly insUsed = new Set<string>();

  constructor(options: GeneratorOptions) {
    this.options = options;
  }

  /** A unique INS-NIR: the patient's, or with the next free order number of the same birth data. */
  private uniqueIns(ins: string): string {
    let nir13 = ins.slice(0, 13);
    let value = ins;
    for (let order = Number(nir13.slice(10, 13)); this.insUsed.has(value); ) {
      order = order >= 999 ? 1 : order + 1;
      nir13 = nir13.slice(0, 10) + pad(order, 3);
      value = nir13 + nirKey(nir13);
    }
    this.insUsed.add(value);
    return value;
  }

  /** The transaction entries of patient number `index` (0-based): the patient first. */
  patient(index: number): BundleEntry[] {
    const { pool, anchorDay } = this.options;
    const rnd = seeded(mixSeed(this.options.seed, index));
    const urn = () => `urn:uuid:${uuidFrom(rnd)}`;
    const entries: BundleEntry[] = [];
    const add = <T extends Resource>(resource: T, fullUrl = urn()): string => {
      entries.push({ fullUrl, resource, request: { method: 'POST', url: resource.resourceType } });
      return fullUrl;
    };

    const territory = index % pool.byTerritory.length;
    const staff = pool.byTerritory[territory];
    const orgs = pool.orgsByTerritory[territory];
    const anyOf = (p: Profession): PoolPractitioner => {
      const list = staff[p].length ? staff[p] : pool.practitioners.map((_, i) => i).filter((i) => pool.practitioners[i].profession === p);
      return pool.practitioners[pick(rnd, list.length ? list : [0])];
    };
    const roleRef = (p: PoolPractitioner): Reference<PractitionerRole> => ({ reference: `PractitionerRole/${p.roleId}`, display: p.display });
    const practRef = (p: PoolPractitioner): Reference<Practitioner> => ({ reference: `Practitioner/${p.id}`, display: p.name });
    const orgRef = (i: number): Reference<Organization> => ({ reference: `Organization/${pool.organizations[i].id}`, display: pool.organizations[i].short });
    const dac = orgs.DAC[0] ?? 0;

    // The team: médecin traitant, coordinator, and most often a nurse, a physiotherapist, a pharmacist.
    const gp = anyOf('gp');
    const coordinator = anyOf('coordinator');
    const nurse = chance(rnd, 0.85) ? anyOf('nurse') : undefined;
    const physio = chance(rnd, 0.45) ? anyOf('physio') : undefined;
    const pharmacist = chance(rnd, 0.55) ? anyOf('pharmacist') : undefined;
    const specialist = chance(rnd, 0.5) ? anyOf('specialist') : undefined;
    const ssiad = orgs.SSIAD.length && chance(rnd, 0.3) ? pick(rnd, orgs.SSIAD) : undefined;
    const team = [gp, coordinator, nurse, physio, pharmacist, specialist].filter((x): x is PoolPractitioner => x !== undefined);
    const teamOf = (p: Profession) => team.find((t) => t.profession === p) ?? gp;

    // Patient.
    const patient: Patient = makePatient(rnd);
    const ins = this.uniqueIns(patient.identifier![0].value!);
    patient.identifier![0].value = ins;
    patient.identifier![1].system = `${SYS.NS}/ipp`;
    patient.identifier![1].value = `IPP-${this.options.seed}-${pad(index, 7)}`;
    patient.generalPractitioner = [roleRef(gp)];
    patient.managingOrganization = orgRef(dac);
    const female = patient.gender === 'female';
    const who = `${female ? 'Mme' : 'M.'} ${patient.name![0].given![0]} ${patient.name![0].family}`;
    const patientUrn = add(patient);
    const subject: Reference<Patient> = { reference: patientUrn, display: who };
    const profile: Profile = {
      weightKg: round(female ? 58 + gauss(rnd) * 9 : 74 + gauss(rnd) * 11, 1),
      diabetic: false,
      ckd: false,
      hypertensive: false,
    };

    // Follow-up by the DAC began between 3 years and 1 month before the anchor day.
    const startDay = anchorDay - int(rnd, 30, 3 * 365);
    const endDay = anchorDay + 90; // future appointments and tasks up to 3 months ahead
    const past = () => workingDay(int(rnd, startDay, anchorDay - 1), true);
    const dayTime = (day: number, from = 8, to = 18) => parisDateTime(day, int(rnd, from * 4, to * 4) * 15);

    // Aidant.
    let aidant: { urn: string; display: string } | undefined;
    if (chance(rnd, 0.45)) {
      const [code, display, g] = pick(rnd, AIDANT_LINKS);
      const gender = g ?? (female ? 'male' : 'female');
      const given = pick(rnd, gender === 'female' ? GIVEN_F : GIVEN_M);
      const family = code === 'SPS' ? patient.name![0].family! : pick(rnd, FAMILY);
      const name = `${gender === 'female' ? 'Mme' : 'M.'} ${given} ${family}`;
      const related: RelatedPerson = {
        resourceType: 'RelatedPerson',
        active: true,
        patient: subject,
        relationship: [
          { coding: [{ system: SYS.R260, code: 'ECON', display: "Entité à contacter en cas d'urgence" }] },
          { coding: [{ system: SYS.R216, code, display }] },
          { text: 'Aidant principal' },
        ],
        name: [{ use: 'official', family, given: [given] }],
        telecom: [{ system: 'phone', value: mobile(rnd), use: 'mobile', rank: 1 }],
        gender,
        period: { start: isoDay(startDay) },
      };
      aidant = { urn: add(related), display: name };
    }

    // Conditions (at least one), which set the patient's profile.
    const conditions: string[] = [];
    const chosen = CONDITIONS.filter(([, , share]) => chance(rnd, share));
    if (!chosen.length) chosen.push(pick(rnd, CONDITIONS));
    for (const [code, display] of chosen.slice(0, 4)) {
      if (code === 'I10') profile.hypertensive = true;
      if (code.startsWith('E11')) profile.diabetic = true;
      if (code.startsWith('N18')) profile.ckd = true;
      const condition: Condition = {
        resourceType: 'Condition',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item', display: 'Problem List Item' }] }],
        code: { coding: [{ system: SYS.CIM10, code, display }], text: display },
        subject,
        onsetDateTime: isoDay(startDay - int(rnd, 30, 15 * 365)),
        recordedDate: isoDay(startDay + int(rnd, 0, 20)),
        recorder: roleRef(gp),
      };
      conditions.push(add(condition));
    }

    // The cercle de soins.
    const member = (p: PoolPractitioner, role: CodeableConcept, start: number): CareTeamParticipant => ({
      role: [role], member: roleRef(p), period: { start: isoDay(start) },
    });
    const r85 = (text: string): CodeableConcept => ({ coding: [{ system: SYS.R85, code: '353', display: "Membre de l'équipe de soins" }], text });
    const participants: CareTeamParticipant[] = [
      member(gp, { coding: [{ system: SYS.R259, code: 'PCP', display: 'Médecin traitant' }] }, startDay),
      // The coordinator as a Practitioner acting for the DAC (a Practitioner member may have onBehalfOf).
      {
        role: [{ coding: [{ system: SYS.R85, code: '330', display: 'Coordonnateur de parcours' }] }],
        member: practRef(coordinator),
        onBehalfOf: orgRef(coordinator.org),
        period: { start: isoDay(startDay) },
      },
    ];
    if (nurse) participants.push(member(nurse, r85('Infirmier(ère)'), startDay + int(rnd, 0, 60)));
    if (physio) participants.push(member(physio, r85('Masseur-kinésithérapeute'), startDay + int(rnd, 0, 120)));
    if (pharmacist) participants.push(member(pharmacist, r85('Pharmacien(ne) d’officine'), startDay + int(rnd, 0, 60)));
    if (specialist) participants.push(member(specialist, r85('Médecin spécialiste'), startDay + int(rnd, 0, 200)));
    if (ssiad !== undefined) {
      participants.push({ role: [r85('Service de soins infirmiers à domicile')], member: orgRef(ssiad), period: { start: isoDay(startDay + int(rnd, 0, 30)) } });
    }
    if (aidant) {
      participants.push({
        role: [{ coding: [{ system: SYS.R260, code: 'ECON', display: "Entité à contacter en cas d'urgence" }], text: 'Aidant principal' }],
        member: { reference: aidant.urn, display: aidant.display },
        period: { start: isoDay(startDay) },
      });
    }
    const careTeam: CareTeam = {
      resourceType: 'CareTeam',
      identifier: [{ system: `${SYS.NS}/cercle-de-soins`, value: `CDS-${this.options.seed}-${pad(index, 7)}` }],
      status: 'active',
      name: `Cercle de soins de ${who}`,
      subject,
      period: { start: isoDay(startDay) },
      participant: participants,
      managingOrganization: [orgRef(dac)],
    };
    const careTeamUrn = add(careTeam);

    // Encounters (home visits, consultations).
    const nEncounters = int(rnd, 0, 2);
    for (let i = 0; i < nEncounters; i++) {
      const p = pick(rnd, team);
      const day = past();
      const minute = int(rnd, 32, 70) * 15;
      const home = chance(rnd, 0.6);
      const encounter: Encounter = {
        resourceType: 'Encounter',
        status: 'finished',
        class: home
          ? { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH', display: 'home health' }
          : { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
        type: [{ text: home ? 'Visite à domicile' : 'Consultation' }],
        subject,
        participant: [{ individual: roleRef(p) }],
        period: { start: parisDateTime(day, minute), end: parisDateTime(day, minute + 30) },
        reasonReference: [{ reference: pick(rnd, conditions) }],
        serviceProvider: orgRef(p.org),
      };
      add(encounter);
    }

    // Appointments: mostly past (fulfilled, sometimes missed or cancelled), some booked ahead.
    const appointments: string[] = [];
    const nAppointments = int(rnd, 2, 7);
    for (let i = 0; i < nAppointments; i++) {
      const future = chance(rnd, 0.25);
      const kind = pick(rnd, APPOINTMENT_KINDS);
      const p = teamOf(kind.profession);
      const day = future ? workingDay(int(rnd, anchorDay, endDay)) : past();
      const minute = int(rnd, 32, 70) * 15;
      const minutes = pick(rnd, kind.minutes);
      const r = rnd();
      const status: Appointment['status'] = future ? 'booked' : r < 0.85 ? 'fulfilled' : r < 0.92 ? 'cancelled' : 'noshow';
      const appointment: Appointment = {
        resourceType: 'Appointment',
        identifier: [{ system: `${SYS.NS}/rendez-vous`, value: `RDV-${this.options.seed}-${pad(index, 7)}-${i}` }],
        status,
        ...(status === 'cancelled' ? { cancelationReason: { text: pick(rnd, ['Annulé par le patient', 'Hospitalisation en cours', 'Indisponibilité du professionnel']) } } : {}),
        appointmentType: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0276', code: kind.type[0], display: kind.type[1] }] },
        description: kind.text,
        start: parisDateTime(day, minute),
        end: parisDateTime(day, minute + minutes),
        minutesDuration: minutes,
        created: isoDay(Math.min(day, anchorDay) - int(rnd, 1, 30)),
        participant: [
          { actor: subject, required: 'required', status: status === 'noshow' ? 'declined' : 'accepted' },
          { actor: roleRef(p), required: 'required', status: 'accepted' },
        ],
      };
      appointments.push(add(appointment));
    }

    // The PPCS, sometimes after an earlier completed one.
    const plans = chance(rnd, 0.12) ? 2 : 1;
    for (let i = 0; i < plans; i++) {
      const current = i === plans - 1;
      const begin = current ? startDay + int(rnd, 7, 20) : startDay - int(rnd, 200, 400);
      const activity: NonNullable<CarePlan['activity']> = [];
      for (const p of team.slice(2)) {
        activity.push({
          detail: {
            status: current ? 'in-progress' : 'completed',
            description: pick(rnd, [
              'Aide à la toilette et soins d’hygiène', 'Surveillance de la tension artérielle', 'Rééducation à la marche et travail de l’équilibre',
              'Préparation des piluliers et conciliation médicamenteuse', 'Suivi de la glycémie capillaire', 'Réévaluation du traitement antalgique',
            ]),
            scheduledString: pick(rnd, ['Tous les matins', '2 fois par semaine', '1 fois par semaine', 'Tous les 15 jours', 'Chaque mois']),
            performer: [roleRef(p)],
          },
        });
      }
      if (current) for (const a of appointments.slice(0, 2)) activity.push({ reference: { reference: a } });
      const plan: CarePlan = {
        resourceType: 'CarePlan',
        identifier: [{ system: `${SYS.NS}/ppcs`, value: `PPCS-${this.options.seed}-${pad(index, 7)}-${i}` }],
        status: current ? 'active' : 'completed',
        intent: 'plan',
        category: [{ text: 'Plan personnalisé de coordination en santé (PPCS)' }],
        title: `Plan personnalisé de coordination en santé – ${who}`,
        description: pick(rnd, [
          'Maintien à domicile en sécurité, prévention des chutes et soutien de l’aidant.',
          'Coordination du retour à domicile après hospitalisation et adaptation des aides.',
          'Suivi des pathologies chroniques et prévention des réhospitalisations.',
          'Accompagnement de la perte d’autonomie et mise en place des aides (APA).',
        ]),
        subject,
        period: { start: isoDay(begin), end: isoDay(begin + 365) },
        created: isoDay(begin),
        author: roleRef(coordinator),
        contributor: [roleRef(coordinator), roleRef(gp)],
        careTeam: [{ reference: careTeamUrn, display: `Cercle de soins de ${who}` }],
        addresses: conditions.slice(0, 3).map((c) => ({ reference: c })),
        ...(activity.length ? { activity } : {}),
      };
      add(plan);
    }

    // Liaison messages.
    const nMessages = int(rnd, 1, 6);
    for (let i = 0; i < nMessages; i++) {
      const from = pick(rnd, team);
      const to = team.filter((t) => t !== from);
      const recipients = to.length ? [pick(rnd, to), ...(chance(rnd, 0.4) ? [coordinator] : [])].filter((x, j, a) => a.indexOf(x) === j && x !== from) : [coordinator];
      const day = past();
      const text = pick(rnd, MESSAGES)
        .replace('{p}', who)
        .replace('{ta}', `${int(rnd, 11, 16)}/${int(rnd, 6, 9)}`)
        .replace('{d}', isoDay(day - int(rnd, 1, 10)));
      const communication: Communication = {
        resourceType: 'Communication',
        status: 'completed',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: pick(rnd, ['notification', 'alert', 'instruction', 'reminder']) }] }],
        subject,
        topic: { text: pick(rnd, TOPICS) },
        sent: dayTime(day, 7, 20),
        recipient: (recipients.length ? recipients : [gp]).map(roleRef),
        sender: roleRef(from),
        payload: [{ contentString: text }],
      };
      add(communication);
    }

    // Observations: a few series, more of what the conditions call for.
    const nObservations = int(rnd, 3, 9);
    const weights = OBSERVATIONS.map((o) => o.weight(profile));
    const totalWeight = weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < nObservations; i++) {
      let u = rnd() * totalWeight;
      let k = 0;
      while (k < OBSERVATIONS.length - 1 && u >= weights[k]) u -= weights[k++];
      const o = OBSERVATIONS[k];
      const performer = o.category === 'laboratory' ? gp : (nurse ?? gp);
      const observation: Observation = {
        resourceType: 'Observation',
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: o.category }] }],
        code: { coding: [{ system: SYS.LOINC, code: o.loinc, display: o.display }], text: o.text },
        subject,
        effectiveDateTime: dayTime(int(rnd, startDay, anchorDay - 1), 7, 19),
        performer: [roleRef(performer)],
      };
      if (o.key === 'bp') {
        const sys = Math.round((profile.hypertensive ? 142 : 125) + gauss(rnd) * 12);
        const dia = Math.round((profile.hypertensive ? 84 : 76) + gauss(rnd) * 8);
        observation.component = [
          { code: { coding: [{ system: SYS.LOINC, code: '8480-6', display: 'Systolic blood pressure' }] }, valueQuantity: { value: sys, unit: 'mmHg', system: SYS.UCUM, code: 'mm[Hg]' } },
          { code: { coding: [{ system: SYS.LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] }, valueQuantity: { value: dia, unit: 'mmHg', system: SYS.UCUM, code: 'mm[Hg]' } },
        ];
      } else {
        observation.valueQuantity = { value: o.value!(rnd, profile), unit: o.unit, system: SYS.UCUM, code: o.ucum };
      }
      add(observation);
    }

    // The multidimensional assessment, sometimes re-assessed.
    const assessments = chance(rnd, 0.3) ? 2 : 1;
    for (let i = 0; i < assessments; i++) {
      const day = i === 0 ? startDay + int(rnd, 0, 14) : past();
      const item = (linkId: string, text: string, answer: NonNullable<QuestionnaireResponseItem['answer']>[number]): QuestionnaireResponseItem => ({ linkId, text, answer: [answer] });
      const response: QuestionnaireResponse = {
        resourceType: 'QuestionnaireResponse',
        questionnaire: 'https://dac-bench.example/fhir/Questionnaire/evaluation-multidimensionnelle|1.2',
        status: 'completed',
        subject,
        authored: dayTime(day),
        author: roleRef(coordinator),
        source: subject,
        item: [
          {
            linkId: 'situation',
            text: 'Situation de vie',
            item: [
              item('situation.vit-seul', 'Vit seul(e) à domicile', { valueBoolean: chance(rnd, 0.55) }),
              item('situation.aidant', 'Aidant principal', { valueString: aidant ? aidant.display : 'Aucun aidant identifié' }),
              item('situation.aides', 'Aides en place', { valueString: pick(rnd, ['Aucune', 'Aide-ménagère 2 h par semaine', 'Portage de repas', 'SSIAD le matin, aide-ménagère']) }),
            ],
          },
          {
            linkId: 'autonomie',
            text: 'Autonomie',
            item: [
              item('autonomie.gir', 'Groupe iso-ressources (GIR) estimé', { valueInteger: int(rnd, 2, 6) }),
              item('autonomie.chutes', 'Nombre de chutes au cours des 6 derniers mois', { valueInteger: int(rnd, 0, 4) }),
            ],
          },
          item('besoins', 'Besoins prioritaires identifiés', { valueString: pick(rnd, TASKS) }),
        ],
      };
      add(response);
    }

    // Coordination tasks.
    const nTasks = int(rnd, 0, 2);
    for (let i = 0; i < nTasks; i++) {
      const authored = past();
      const s = rnd();
      const status: Task['status'] = s < 0.5 ? 'completed' : s < 0.8 ? 'in-progress' : 'requested';
      const owner = pick(rnd, team);
      const task: Task = {
        resourceType: 'Task',
        status,
        intent: 'order',
        priority: chance(rnd, 0.15) ? 'urgent' : 'routine',
        description: pick(rnd, TASKS),
        for: subject,
        authoredOn: dayTime(authored),
        lastModified: dayTime(Math.max(authored, Math.min(anchorDay - 1, authored + int(rnd, 0, 20))), 18, 19),
        requester: roleRef(coordinator),
        owner: roleRef(owner),
        ...(status !== 'requested' ? { executionPeriod: { start: isoDay(authored + 1), ...(status === 'completed' ? { end: isoDay(authored + int(rnd, 2, 25)) } : {}) } } : {}),
      };
      add(task);
    }
    return entries;
  }
}

/** A transaction Bundle of entries. */
export function transaction(entries: BundleEntry[]): { resourceType: 'Bundle'; type: 'transaction'; entry: BundleEntry[] } {
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

/**
 * The pool's resources as PUT entries (their ids are chosen here), in bundles of about `size`:
 * the organisations' bundles, then the practitioners' (each with its role in the same bundle).
 */
export function poolBundles(pool: Pool, size: number): { organizations: BundleEntry[][]; practitioners: BundleEntry[][] } {
  const put = (r: Resource): BundleEntry => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } });
  const chunk = (resources: Resource[], step: number): BundleEntry[][] => {
    const out: BundleEntry[][] = [];
    const per = Math.max(step, Math.floor(size / step) * step);
    for (let i = 0; i < resources.length; i += per) out.push(resources.slice(i, i + per).map(put));
    return out;
  };
  const orgs = pool.resources.filter((r) => r.resourceType === 'Organization');
  const practitioners = pool.resources.filter((r) => r.resourceType !== 'Organization');
  return { organizations: chunk(orgs, 1), practitioners: chunk(practitioners, 2) };
}
