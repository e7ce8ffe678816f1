// Creates an embedded database folder (initdb) in a short-lived child process: initdb's
// WebAssembly module and its memory (about 1 GB at peak) then never enter the server process.
import { PGlite } from '@electric-sql/pglite';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: pglite-init.ts <data folder>');
  process.exit(2);
}
const db = await PGlite.create(dir);
await db.close();
