// Creates an embedded database folder in a short-lived child process: initdb and the first
// migrations (DDL on a new cluster grows PGlite's WebAssembly memory by some 250 MB, and
// WebAssembly memory never shrinks) then happen outside the server process.
import { PGlite } from '@electric-sql/pglite';
import { PgliteDb } from './db.ts';
import { migrate } from './migrate.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: pglite-init.ts <data folder>');
  process.exit(2);
}
const db = new PgliteDb(await PGlite.create(dir));
await migrate(db);
await db.close();
