// FHIR date/dateTime/instant values as half-open UTC ranges [low, high): a value stands for
// every instant its precision covers ("2024-03" is the whole of March). Index rows and
// search values use the same function, so the spec's precision rules follow from comparing ranges.

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

export interface DateRange {
  low: string; // ISO instant, inclusive
  high: string; // ISO instant, exclusive
}

export const OPEN_LOW = '-infinity';
export const OPEN_HIGH = 'infinity';

export function isValidDate(value: string): boolean {
  return toRange(value) !== undefined;
}

/** Returns undefined when the value is not a FHIR date, dateTime or instant. */
export function toRange(value: string): DateRange | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : undefined;
  const day = d ? Number(d) : undefined;
  if (month !== undefined && (month < 1 || month > 12)) return undefined;
  if (day !== undefined && (day < 1 || day > daysInMonth(year, month!))) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))) return undefined;
  // A time without a zone is taken as UTC; FHIR requires a zone on times anyway.
  const offsetMin = tz && tz !== 'Z' ? (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) : 0;
  let lowMs: number;
  let highMs: number;
  if (month === undefined) {
    lowMs = Date.UTC(year, 0, 1);
    highMs = Date.UTC(year + 1, 0, 1);
  } else if (day === undefined) {
    lowMs = Date.UTC(year, month - 1, 1);
    highMs = Date.UTC(year, month, 1);
  } else if (h === undefined) {
    lowMs = Date.UTC(year, month - 1, day);
    highMs = lowMs + 86_400_000;
  } else {
    const base = Date.UTC(year, month - 1, day, Number(h), Number(mi), s ? Number(s) : 0) - offsetMin * 60_000;
    if (s === undefined) {
      lowMs = base;
      highMs = base + 60_000;
    } else if (frac === undefined) {
      lowMs = base;
      highMs = base + 1000;
    } else {
      // Sub-second precision: keep microseconds exactly (PostgreSQL's resolution) in the strings.
      const micros = Number((frac + '000000').slice(0, 6));
      const step = 10 ** Math.max(0, 6 - frac.length);
      return { low: isoMicros(base, micros), high: isoMicros(base, Math.min(micros + step, 1_000_000)) };
    }
  }
  if (year < 1 || year > 9999) return undefined;
  return { low: new Date(lowMs).toISOString(), high: new Date(highMs).toISOString() };
}

function isoMicros(baseMs: number, micros: number): string {
  if (micros >= 1_000_000) return new Date(baseMs + 1000).toISOString();
  const iso = new Date(baseMs).toISOString(); // ...:SS.000Z
  return iso.slice(0, 19) + '.' + String(micros).padStart(6, '0') + 'Z';
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
