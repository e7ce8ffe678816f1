// Where a benchmark writes its results: bench-results/<name>-<UTC time to the second>.json, so that
// no run replaces another (a run of some arms or steps only used to overwrite the day's file).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../../..', import.meta.url).pathname;

/** A run's time as its files are named: 2026-11-24T022633Z. */
export const runStamp = (at = new Date()): string => at.toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');

/** bench-results/<name>-<stamp>.json, the folder created if need be. */
export function resultsFile(name: string, stamp = runStamp()): string {
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}-${stamp}.json`);
}
