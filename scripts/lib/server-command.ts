// The command `npm start` runs, for scripts and tests that start the server as a process of its
// own: package.json's start script is the one place its Node flags are written.
import { readFileSync } from 'node:fs';

const root = new URL('../..', import.meta.url);

export function serverCommand(): { command: string; args: string[]; cwd: string } {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: { start: string } };
  const [node, ...args] = pkg.scripts.start.split(/\s+/);
  if (node !== 'node') throw new Error(`package.json start script must start with node: ${pkg.scripts.start}`);
  return { command: process.execPath, args, cwd: root.pathname };
}
