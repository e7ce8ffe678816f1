// The conformance catalog: every StructureDefinition, ValueSet, CodeSystem, SearchParameter,
// CapabilityStatement and ImplementationGuide the server knows, by canonical URL. Three layers,
// first match wins: resources stored through the API (they take effect without restart), the
// FHIR packages in profiles/, and the R4 core definitions (data types, resources, core profiles
// and extensions). Validation, terminology and the CapabilityStatement read from here.
import type { CodeSystem, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { coreStructureDefinition } from '../definitions.ts';
import type { CodeSystemHandle, TerminologySource } from '../terminology/types.ts';
import { generateSnapshot } from '../validation/snapshot.ts';
import { readPackages, type FhirPackage, type PackageEntry, type PackageReport } from './packages.ts';

type Canonical = Resource & { url?: string; version?: string };

interface Entry {
  /** Type, url and version: what resolution needs without parsing the resource. */
  head: PackageEntry;
  /** "name#version" of the package it came from. */
  origin: string;
}

/** Compares FHIR package / business versions: numeric parts numerically, pre-releases first. */
export function compareVersions(a = '', b = ''): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return y !== undefined && /^\d+$/.test(y) ? -1 : 1; // 1.0 < 1.0.1, 1.0-ballot < 1.0
    if (y === undefined) return /^\d+$/.test(x) ? 1 : -1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx - ny;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export class ConformanceCatalog {
  private readonly packaged = new Map<string, Entry[]>();
  /** Stored through the API, by "type/id" and by canonical URL. */
  private readonly storedById = new Map<string, Canonical>();
  private readonly stored = new Map<string, Canonical[]>();
  private readonly snapshots = new Map<StructureDefinition, StructureDefinition>();
  private readonly generated = new WeakSet<StructureDefinition>();
  /** Resolutions, valid while `changes` is `resolvedAt` (validation resolves the same canonicals again and again). */
  private readonly resolved = new Map<string, Resource | undefined>();
  private resolvedAt = -1;
  /** The package each packaged resource handed out comes from. */
  private readonly origins = new WeakMap<Resource, string>();
  private changes = 0;
  report: PackageReport = { packages: [], missing: [], failures: [] };

  /** Loads the packages of a folder (replacing any loaded before), through cacheDir when given. */
  loadPackages(dir: string, cacheDir?: string): PackageReport {
    this.report = readPackages(dir, cacheDir);
    this.packaged.clear();
    for (const p of this.report.packages) this.addPackage(p);
    this.changes++;
    return this.report;
  }

  private addPackage(p: FhirPackage): void {
    for (const head of p.entries) {
      if (!head.url) continue;
      const list = this.packaged.get(head.url) ?? [];
      list.push({ head, origin: p.key });
      // Newest business version first, so an unversioned canonical gets the latest.
      list.sort((x, y) => compareVersions(y.head.version, x.head.version));
      this.packaged.set(head.url, list);
    }
  }

  get packages(): readonly FhirPackage[] {
    return this.report.packages;
  }

  /** Changes whenever the catalog's content does (for caches derived from it). */
  get version(): number {
    return this.changes;
  }

  /** Forgets the stored overlay (before it is loaded again from the database). */
  clearStored(): void {
    this.storedById.clear();
    this.stored.clear();
    this.changes++;
  }

  /** A resource stored through the API was written (created, updated) or deleted. */
  storedChanged(type: string, id: string, written: Resource | undefined): void {
    const resource = written as Canonical | undefined;
    const key = `${type}/${id}`;
    const before = this.storedById.get(key);
    if (before?.url) {
      const list = (this.stored.get(before.url) ?? []).filter((r) => r !== before);
      if (list.length) this.stored.set(before.url, list);
      else this.stored.delete(before.url);
    }
    this.storedById.delete(key);
    if (resource && resource.url && (resource as { status?: string }).status !== 'retired') {
      this.storedById.set(key, resource);
      this.stored.set(resource.url, [...(this.stored.get(resource.url) ?? []), resource]);
    }
    this.changes++;
  }

  /**
   * A conformance resource by canonical (`url` or `url|version`), of the given type. `context`
   * ("name#version" of the package whose definition holds the canonical) makes an unversioned
   * canonical resolve as that package's publisher did: to the package itself, then to the
   * versions of the packages it depends on, before the newest version loaded.
   */
  resolve<T extends Resource>(type: T['resourceType'], canonical: string, context?: string): T | undefined {
    if (this.resolvedAt !== this.changes) {
      this.resolved.clear();
      this.resolvedAt = this.changes;
    }
    const key = `${type}|${canonical}|${context ?? ''}`;
    if (this.resolved.has(key)) return this.resolved.get(key) as T | undefined;
    const found = this.resolveNow<T>(type, canonical, context);
    this.resolved.set(key, found);
    return found;
  }

  private resolveNow<T extends Resource>(type: T['resourceType'], canonical: string, context?: string): T | undefined {
    const bar = canonical.indexOf('|');
    const url = bar < 0 ? canonical : canonical.slice(0, bar);
    const version = bar < 0 ? undefined : canonical.slice(bar + 1);
    const matches = (r: { resourceType: string; version?: string }) =>
      r.resourceType === type && (version === undefined || r.version === version || (r.version ?? '').startsWith(`${version}.`));
    const stored = (this.stored.get(url) ?? []).filter(matches).sort((x, y) => compareVersions(y.version, x.version))[0];
    if (stored) return stored as T;
    const candidates = (this.packaged.get(url) ?? []).filter((e) => matches(e.head));
    const preferred = version === undefined && context ? this.preferredIn(candidates, context) : undefined;
    const packaged = preferred ?? candidates[0];
    if (packaged) return this.handOut(packaged) as T;
    if (type === 'StructureDefinition') return coreStructureDefinition(canonical) as T | undefined;
    return undefined;
  }

  private preferredIn(candidates: Entry[], context: string): Entry | undefined {
    const own = candidates.find((e) => e.origin === context);
    if (own) return own;
    const deps = this.report.packages.find((p) => p.key === context)?.dependencies ?? {};
    return candidates.find((e) => {
      const [name, version] = (e.origin ?? '').split('#');
      return deps[name] === version;
    });
  }

  /** The package a canonical resource comes from ("name#version"), if any. */
  originOf(resource: Resource): string | undefined {
    const url = (resource as Canonical).url;
    return this.origins.get(resource);
  }

  /** Whether a StructureDefinition came with its own snapshot (rather than one generated here). */
  publishedSnapshot(sd: StructureDefinition): boolean {
    return !this.generated.has(sd) && !!sd.snapshot?.element?.length;
  }

  /**
   * A StructureDefinition with its snapshot, generating one (cached) when the definition only
   * has a differential. Undefined when it is unknown.
   */
  structure(canonical: string, context?: string): { sd: StructureDefinition; issues: string[] } | undefined {
    const sd = this.resolve<StructureDefinition>('StructureDefinition', canonical, context);
    if (!sd) return undefined;
    if (sd.snapshot?.element?.length) return { sd, issues: [] };
    let generated = this.snapshots.get(sd);
    if (!generated) {
      const result = generateSnapshot(sd, (url) => this.structure(url)?.sd);
      generated = result.snapshot;
      this.snapshots.set(sd, generated);
      this.generated.add(generated);
      return { sd: generated, issues: result.issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => i.diagnostics ?? i.details?.text ?? '') };
    }
    return { sd: generated, issues: [] };
  }

  /** ValueSets and CodeSystems of the packages, as a terminology source (stored resources override them). */
  terminologySource(): TerminologySource {
    return {
      name: 'FHIR packages',
      valueSet: async (_tc, ref, version) => (ref.includes('/') && !ref.includes(':') ? undefined : this.packagedOf<ValueSet>('ValueSet', ref, version)),
      codeSystem: async (_tc, url, version): Promise<CodeSystemHandle | undefined> => {
        const cs = this.packagedOf<CodeSystem>('CodeSystem', url, version);
        return cs ? { key: `package:${url}|${cs.version ?? ''}`, load: async () => cs } : undefined;
      },
    };
  }

  private packagedOf<T extends Resource>(type: T['resourceType'], url: string, version?: string): T | undefined {
    const entry = (this.packaged.get(url) ?? []).find((e) => e.head.resourceType === type && (version === undefined || e.head.version === version));
    return entry ? (this.handOut(entry) as T) : undefined;
  }

  /** A packaged resource (parsed now if it was not yet), remembering where it comes from. */
  private handOut(entry: Entry): Resource {
    const resource = entry.head.resource;
    this.origins.set(resource, entry.origin);
    return resource;
  }
}

/** The catalog of this process. */
export const catalog = new ConformanceCatalog();
