// A V8 CPU profile (node --cpu-prof, e.g. from bench-audit or bench-access --profile DIR) read as
// two tables: self time by function and by source file, and total (inclusive) time of the
// functions whose file matches --focus (default: the project's src/). For comparing two arms,
// run it on each profile; figures are shares of the profile's sampled time.
//
//   node scripts/profile-summary.ts FILE.cpuprofile [--top 25] [--focus /src/]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { numberArg, usageError } from './lib/cli.ts';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const { values: args, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, focus: { type: 'string', default: '/src/' } } });
if (positionals.length !== 1) usageError('give one .cpuprofile file');
const top = Math.floor(numberArg('top', args.top, 1, false));
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
});

const short = (url: string) => url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, 'node_modules/').replace(/^.*?\/src\//, 'src/') || '(native)';
const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

const selfByFunction = new Map<string, number>();
const selfByFile = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  add(selfByFunction, label(n), t);
  add(selfByFile, short(n.callFrame.url), t);
  // Inclusive time: once per distinct focused function on the sample's stack (recursion counted once).
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const c = byId.get(cur)!;
    if (!c.callFrame.url.includes(args.focus!)) continue;
    const l = label(c);
    if (!seen.has(l)) {
      seen.add(l);
      add(inclusive, l, t);
    }
  }
}
const pct = (t: number) => `${((t / total) * 100).toFixed(1).padStart(5)}%`;
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);
};
console.log(`${positionals[0]}: ${(total / 1e6).toFixed(2)} s sampled`);
print('self time by function', selfByFunction);
print('self time by file', selfByFile);
print(`total time of functions in ${args.focus}`, inclusive);
