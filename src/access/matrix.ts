// The habilitation matrix (habilitations.json, versioned with the code): data categories, the
// one mapping of resource types to categories, and what each profession or role may read and
// write in each category. Loaded and checked once; a malformed file stops the server at start.
import { readFileSync } from 'node:fs';
import { getPatientCompartmentParams, getResourceTypes } from '../fhir/definitions.ts';

export type Category = 'medical' | 'social' | 'medico-social' | 'administrative' | 'agenda' | 'liaison';
export const CATEGORIES: readonly Category[] = ['medical', 'social', 'medico-social', 'administrative', 'agenda', 'liaison'];

export type Action = 'read' | 'write';
/** Per category: 'r', 'w' or 'rw'; a category left out grants nothing. */
export type Rights = Partial<Record<Category, string>>;

export interface RoleRow {
  id: string;
  label: string;
  /** "system|code" codings (PractitionerRole.code, CareTeam.participant.role) that select this row. */
  codes: string[];
  rights: Rights;
}

export type CallerKind = 'professional' | 'patient' | 'related-person';

export interface MatrixFile {
  version: string;
  description?: string;
  categorySystem: string;
  categories: Category[];
  resourceCategories: Partial<Record<Category, string[]>>;
  defaultCategory: Category;
  coordinatorRoles: string[];
  roles: RoleRow[];
  defaultProfessional: { label: string; rights: Rights };
  patient: { label: string; rights: Rights };
  relatedPerson: { label: string; rights: Rights };
  outsideCompartment: { label: string; read: CallerKind[]; write: CallerKind[] };
  breakGlass: { label: string; maxMinutes: number; minReasonLength: number; overridesObjection: boolean; rights: Rights };
  /** Security label codes (in these systems) that hide a resource from a kind of caller. */
  visibilityLabels: { label: string; systems: string[]; hiddenFrom: Partial<Record<CallerKind, string[]>>; authorSees: boolean };
}

export const MATRIX_URL = new URL('./habilitations.json', import.meta.url);

export class Matrix {
  readonly file: MatrixFile;
  private readonly byCode = new Map<string, RoleRow[]>();
  private readonly typeCategory = new Map<string, Category>();

  constructor(file: MatrixFile) {
    check(file);
    this.file = file;
    for (const row of file.roles) for (const code of row.codes) this.byCode.set(code, [...(this.byCode.get(code) ?? []), row]);
    for (const [cat, types] of Object.entries(file.resourceCategories)) for (const t of types ?? []) this.typeCategory.set(t, cat as Category);
  }

  get version(): string {
    return this.file.version;
  }

  /** A resource type that belongs to patients' compartments (their data), or Patient itself. */
  isPatientData(resourceType: string): boolean {
    return resourceType === 'Patient' || getPatientCompartmentParams(resourceType).length > 0;
  }

  /** The data category of a patient-compartment resource type. */
  categoryOf(resourceType: string): Category {
    return this.typeCategory.get(resourceType) ?? this.file.defaultCategory;
  }

  /** Every patient-compartment resource type, by category. */
  typesByCategory(): Map<Category, string[]> {
    const map = new Map<Category, string[]>(CATEGORIES.map((c) => [c, []]));
    for (const t of getResourceTypes()) if (this.isPatientData(t)) map.get(this.categoryOf(t))!.push(t);
    return map;
  }

  /** Every patient-compartment resource type. */
  patientDataTypes(): string[] {
    return getResourceTypes().filter((t) => this.isPatientData(t));
  }

  /** The rows a set of "system|code" codings select; the default professional row when none. */
  rowsFor(codes: Iterable<string>): Rights[] {
    const rows = new Set<RoleRow>();
    for (const c of codes) for (const r of this.byCode.get(c) ?? []) rows.add(r);
    return rows.size ? [...rows].map((r) => r.rights) : [this.file.defaultProfessional.rights];
  }

  isCoordinatorCode(code: string): boolean {
    return this.file.coordinatorRoles.includes(code);
  }
}

/** The categories a set of rights rows grants for an action (the union of the rows). */
export function granted(rows: Rights[], action: Action): Set<Category> {
  const letter = action === 'read' ? 'r' : 'w';
  const out = new Set<Category>();
  for (const row of rows) for (const c of CATEGORIES) if (row[c]?.includes(letter)) out.add(c);
  return out;
}

function check(f: MatrixFile): void {
  const fail = (m: string) => {
    throw new Error(`Habilitation matrix: ${m}`);
  };
  if (typeof f.version !== 'string' || !f.version) fail('version is missing');
  const cats = new Set<string>(CATEGORIES);
  if (!Array.isArray(f.categories) || f.categories.some((c) => !cats.has(c))) fail(`categories must be among ${CATEGORIES.join(', ')}`);
  if (!cats.has(f.defaultCategory)) fail(`defaultCategory "${f.defaultCategory}" is not a category`);
  const seen = new Map<string, string>();
  for (const [cat, types] of Object.entries(f.resourceCategories ?? {})) {
    if (!cats.has(cat)) fail(`resourceCategories: "${cat}" is not a category`);
    for (const t of types ?? []) {
      if (seen.has(t)) fail(`${t} is in two categories (${seen.get(t)}, ${cat})`);
      seen.set(t, cat);
    }
  }
  const rights = (where: string, r: Rights) => {
    for (const [k, v] of Object.entries(r ?? {})) {
      if (!cats.has(k)) fail(`${where}: "${k}" is not a category`);
      if (!/^(r|w|rw)$/.test(v ?? '')) fail(`${where}.${k}: "${v}" must be r, w or rw`);
    }
  };
  for (const row of f.roles ?? []) {
    if (!row.id || !Array.isArray(row.codes) || row.codes.some((c) => !/^[^|]+\|[^|]+$/.test(c))) fail(`role ${row.id ?? '?'}: codes are "system|code"`);
    rights(`role ${row.id}`, row.rights);
  }
  rights('defaultProfessional', f.defaultProfessional?.rights);
  rights('patient', f.patient?.rights);
  rights('relatedPerson', f.relatedPerson?.rights);
  rights('breakGlass', f.breakGlass?.rights);
  if (!(f.breakGlass?.maxMinutes > 0)) fail('breakGlass.maxMinutes must be positive');
  const labels = f.visibilityLabels;
  if (!labels || !Array.isArray(labels.systems) || !labels.systems.length) fail('visibilityLabels.systems must list the label code systems');
  for (const [kind, codes] of Object.entries(labels.hiddenFrom ?? {})) {
    if (!['professional', 'patient', 'related-person'].includes(kind)) fail(`visibilityLabels.hiddenFrom: "${kind}" is not a kind of caller`);
    if (!Array.isArray(codes) || codes.some((c) => typeof c !== 'string' || !c)) fail(`visibilityLabels.hiddenFrom.${kind} must list codes`);
  }
}

let loaded: Matrix | undefined;

/** The shipped matrix (src/access/habilitations.json), or the file named by HABILITATIONS_FILE. */
export function matrix(): Matrix {
  if (!loaded) {
    const file = process.env.HABILITATIONS_FILE ? new URL(process.env.HABILITATIONS_FILE, `file://${process.cwd()}/`) : MATRIX_URL;
    loaded = new Matrix(JSON.parse(readFileSync(file, 'utf8')) as MatrixFile);
  }
  return loaded;
}
