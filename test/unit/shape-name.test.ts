// Prepared statements by query shape (src/store/db.ts shapeName): a generated search text gets a
// statement name at its third use, the same name for the same text, and none once the process
// has named its maximum, so a client sending endless new shapes cannot fill the connections.
import t from 'tap';
import { shapeName } from '../../src/store/db.ts';

t.test('a text is named at its third use, always with the same name', async (t) => {
  const sql = 'SELECT 1 FROM resources r WHERE r.id = $1 -- shape a';
  t.equal(shapeName(sql), undefined, 'first use: planned once, not prepared');
  t.equal(shapeName(sql), undefined, 'second use');
  const name = shapeName(sql);
  t.match(name, /^shape_[A-Za-z0-9_-]{24}$/, 'third use: a statement name');
  t.equal(shapeName(sql), name, 'the same name afterwards');
  t.not(shapeName(sql + ' '), name, 'another text never gets that name');
});

t.test('at most 200 texts are named per process', async (t) => {
  const names = new Map<number, string | undefined>();
  for (let i = 0; i < 300; i++) {
    const sql = `SELECT ${i} -- many`;
    shapeName(sql);
    shapeName(sql);
    names.set(i, shapeName(sql));
  }
  const named = [...names.values()].filter((n) => n !== undefined);
  t.equal(named.length, 199, 'the first 199 (one was named by the first test), then none');
  t.equal(new Set(named).size, 199, 'each its own name');
  t.equal(names.get(299), undefined, 'a text first seen past the cap stays unnamed');
  t.equal(shapeName('SELECT 0 -- many'), names.get(0), 'a named text keeps its name past the cap');
});
