// UCUM canonical units for quantity search (search.html#quantity): a quantity whose unit is a
// UCUM code is also indexed in the base units of its dimension (g, m, s, K, mol as a count...),
// so that 1500 g is found by gt1|http://unitsofmeasure.org|kg and 1 m by 100||cm with UCUM.
// Units are parsed by the NLM's UCUM library (@lhncbc/ucum-lhc, also what fhirpath.js uses):
// UCUM's grammar (prefixes, exponents, annotations, special units) is not written by hand here.
import { createRequire } from 'node:module';

export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/**
 * How a UCUM unit maps to canonical units: canonical = value × factor + offset. Units whose
 * conversion is not of that form with a positive factor (pH, decibels: logarithmic) have none,
 * and are searched by their exact code only. Factor and offset are decimal strings.
 */
export interface Canonical {
  unit: string;
  factor: string;
  offset?: string;
}

interface UcumResult {
  status: string;
  magnitude?: number;
  unitToExp?: Record<string, number>;
  fromUnitIsSpecial?: boolean;
}
interface UcumUtils {
  convertToBaseUnits(unit: string, value: number): UcumResult;
}

let utils: UcumUtils | undefined;
function ucum(): UcumUtils {
  // Loaded on first use (its unit tables take ~30 ms and 4 MB), through require: the package is CommonJS without types.
  if (!utils) {
    const mod = createRequire(import.meta.url)('@lhncbc/ucum-lhc') as { UcumLhcUtils: { getInstance(): UcumUtils } };
    utils = mod.UcumLhcUtils.getInstance();
  }
  return utils;
}

const cache = new Map<string, Canonical | null>();
const MAX_CACHE = 10_000; // unit codes also come from search requests: keep the cache bounded

/** Rounds a binary float to `digits` significant digits as a decimal string (a double holds 15 exactly). */
function round(x: number, digits: number): string {
  return String(Number(x.toPrecision(digits)));
}

/** The canonical form of a UCUM unit code, or undefined when it is not a convertible UCUM code. */
export function canonicalUnit(code: string): Canonical | undefined {
  const hit = cache.get(code);
  if (hit !== undefined) return hit ?? undefined;
  let result: Canonical | null = null;
  try {
    const at = (v: number) => ucum().convertToBaseUnits(code, v);
    const r1 = at(1);
    if (r1.status === 'succeeded' && r1.unitToExp && typeof r1.magnitude === 'number') {
      const unit = Object.entries(r1.unitToExp)
        .filter(([, exp]) => exp !== 0)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([u, exp]) => (exp === 1 ? u : `${u}${exp}`))
        .join('.') || '1';
      if (!r1.fromUnitIsSpecial) {
        if (r1.magnitude > 0) result = { unit, factor: round(r1.magnitude, 15) };
      } else {
        // Special units: affine ones (Celsius, Fahrenheit) have f(2) - f(1) = f(1) - f(0); logarithmic
        // ones (pH, decibels) do not and stay unconverted. 12 digits absorb the float error of f(1) - f(0).
        const r0 = at(0);
        const r2 = at(2);
        if (r0.status === 'succeeded' && r2.status === 'succeeded') {
          const [f0, f1, f2] = [r0.magnitude!, r1.magnitude, r2.magnitude!];
          const factor = f1 - f0;
          if (factor > 0 && Math.abs(f2 - f1 - factor) <= 1e-9 * factor) {
            result = { unit, factor: round(factor, 12) };
            if (f0 !== 0) result.offset = round(f0, 12);
          }
        }
      }
    }
  } catch {
    result = null; // the library throws on some malformed codes: not a UCUM unit
  }
  if (cache.size >= MAX_CACHE) cache.clear();
  cache.set(code, result);
  return result ?? undefined;
}

// Exact decimal arithmetic on strings (a FHIR decimal times a factor), so indexed canonical
// values equal what PostgreSQL's numeric computes for the search bounds: no binary rounding.
interface Decimal {
  m: bigint;
  e: number;
}

function parseDecimal(s: string): Decimal | undefined {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!match || (!match[2] && !match[3])) return undefined;
  const frac = match[3] ?? '';
  const m = BigInt((match[1] === '-' ? '-' : '') + (match[2] || '0') + frac);
  return { m, e: Number(match[4] ?? 0) - frac.length };
}

function add(a: Decimal, b: Decimal): Decimal {
  const e = Math.min(a.e, b.e);
  return { m: a.m * 10n ** BigInt(a.e - e) + b.m * 10n ** BigInt(b.e - e), e };
}

/** value × factor + offset, exactly, as a decimal string PostgreSQL's numeric accepts; undefined if value is not a number. */
export function toCanonicalValue(value: string, c: Canonical): string | undefined {
  const v = parseDecimal(value);
  const f = parseDecimal(c.factor);
  if (!v || !f) return undefined;
  let r: Decimal = { m: v.m * f.m, e: v.e + f.e };
  if (c.offset) {
    const o = parseDecimal(c.offset);
    if (!o) return undefined;
    r = add(r, o);
  }
  return `${r.m}e${r.e}`;
}
