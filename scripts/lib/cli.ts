// Command-line values of the scripts: a bad one is a message and exit code 2, not a stack trace.
import { dayNumber } from './bench/coordination.ts';

/** A bad command line: the message, and exit code 2. */
export function usageError(message: string): never {
  console.error(message);
  process.exit(2);
}

export function numberArg(name: string, value: string | undefined, min: number, integer = true): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) usageError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, not "${value}"`);
  return n;
}

/** --anchor: the day the generated data is dated around. */
export function anchorDayArg(value: string | undefined): number {
  try {
    return dayNumber(value!);
  } catch {
    console.error(`--anchor must be a date YYYY-MM-DD, not "${value}"`);
    process.exit(2);
  }
}
