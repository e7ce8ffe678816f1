// Applies src/store/migrations/NNN_*.sql in order, once each, under an advisory lock
// so that several servers starting together against one PostgreSQL do not race.
import { readdirSync, readFileSync } from 'node:fs';
import type { Db } from './db.ts';
import { vacuumTables } from './analyze.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

/** `dir`: the folder of migrations (the project's own; another in tests). */
export async function migrate(db: Db, dir: URL = MIGRATIONS_DIR): Promise<string[]> {
  const files = readdirSync(dir).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  const rewritten = new Set<string>(); // the tables the applied migrations name in vacuum-after
  const applied = await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(72731)');
    // Committed synchronously whatever the server's setting: a VACUUM marks a rewritten table's
    // pages all-visible (vacuum-after) only once the rows' commit is flushed to the WAL.
    await tx.query('SET LOCAL synchronous_commit = on');
    await tx.query('CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await tx.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = readFileSync(new URL(file, dir), 'utf8');
      for (const statement of splitStatements(sql)) await tx.query(statement);
      for (const table of vacuumAfter(sql)) rewritten.add(table);
      await tx.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
      applied.push(file);
    }
    return applied;
  });
  // VACUUM cannot run in a transaction: after the commit, by the process that applied them.
  if (rewritten.size) await vacuumTables(db, [...rewritten]);
  return applied;
}

/**
 * The tables a migration names in `-- vacuum-after: t1, t2`: those it rewrites (ALTER TABLE …
 * ADD COLUMN … STORED). A rewritten table has an empty visibility map, so its index-only scans
 * read the heap for every entry until a VACUUM; autovacuum would get to it only after a fifth of
 * its rows change (the rewrite does not count), and the embedded database has no autovacuum.
 */
export function vacuumAfter(sql: string): string[] {
  return [...sql.matchAll(/^--\s*vacuum-after:\s*(.+)$/gm)].flatMap((m) => m[1].split(',').map((t) => t.trim()).filter((t) => /^[a-z_][a-z0-9_]*$/.test(t)));
}

/** Statements end with ';' at the end of a line, except inside $$-quoted function bodies. */
function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let inBody = false;
  for (const line of sql.split('\n')) {
    if (!inBody && /^\s*--/.test(line)) continue;
    current += line + '\n';
    if ((line.match(/\$\$/g) ?? []).length % 2 === 1) inBody = !inBody;
    if (!inBody && /;\s*$/.test(line)) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}
