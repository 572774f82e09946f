#!/usr/bin/env node
/**
 * The multi-call entry point: the name the program is invoked by (`psh`, `pctl`,
 * `pbot`, `postern`), or else its first argument, picks the program. Each program's
 * module loads only when chosen, so `psh` starts without loading the daemon.
 */
import path from 'node:path';
import { runCommand, type Command } from './command.ts';

const programs: Record<string, () => Promise<{ program: Command }>> = {
  postern: () => import('./postern/program.ts'),
  pctl: () => import('./pctl/program.ts'),
  psh: () => import('./psh/program.ts'),
};

async function main(argv: string[]): Promise<number> {
  const invokedAs = path.basename(argv[1] ?? '').replace(/\.(ts|js|cjs|mjs)$/, '');
  let name = invokedAs in programs ? invokedAs : 'postern';
  let args = argv.slice(2);
  if (name === 'postern' && args[0] && args[0] in programs && args[0] !== 'postern') {
    name = args[0];
    args = args.slice(1);
  } else if (args[0] === 'postern') {
    args = args.slice(1);
  }
  const load = programs[name];
  if (!load) return 2;
  const { program } = await load();
  return runCommand(program, args);
}

// Not top-level await: the single binary's bundle is CommonJS (installers/build.ts).
void main(process.argv).then((code) => { process.exitCode = code; });
