import { test } from 'node:test';
import assert from 'node:assert/strict';
import { option, runCommand, type Command, type Invocation } from './command.ts';

/** A command that records what it was given. */
function recorder(verbatimAfter: number | undefined): { command: Command; seen: Invocation[] } {
  const seen: Invocation[] = [];
  const command: Command = {
    name: 'x',
    summary: 'test',
    usage: 'x',
    options: { proxy: option('string', 'p'), local: option('string', 'l', { short: 'L', multiple: true }), tty: option('boolean', 't', { short: 't' }) },
    ...(verbatimAfter !== undefined ? { verbatimAfter } : {}),
    run: async (invocation) => {
      seen.push(invocation);
      return 0;
    },
  };
  return { command, seen };
}

test('verbatimAfter 1: options before the node are ours, everything after it is the command', async () => {
  const { command, seen } = recorder(1);
  assert.equal(await runCommand(command, ['-t', '-L', '8080:h:80', '--proxy', 'p:1', 'root@web-1', 'ls', '-l', '--proxy', 'q']), 0);
  assert.deepEqual(seen[0]!.positionals, ['root@web-1', 'ls', '-l', '--proxy', 'q']);
  assert.equal(seen[0]!.options.proxy, 'p:1');
  assert.deepEqual(seen[0]!.options.local, ['8080:h:80']);
  assert.equal(seen[0]!.options.tty, true);
});

test('verbatimAfter 0: the first word that is not one of our options starts the pass-through', async () => {
  const { command, seen } = recorder(0);
  assert.equal(await runCommand(command, ['--proxy', 'p:1', '-r', '-P', '2222', 'a', 'b:c']), 0);
  assert.deepEqual(seen[0]!.positionals, ['-r', '-P', '2222', 'a', 'b:c']);
  assert.equal(seen[0]!.options.proxy, 'p:1');
});

test('without verbatimAfter an unknown option after a positional is still an error', async () => {
  const { command, seen } = recorder(undefined);
  const stderr = process.stderr.write;
  process.stderr.write = () => true;
  try {
    assert.equal(await runCommand(command, ['a', '-l']), 2);
  } finally {
    process.stderr.write = stderr;
  }
  assert.equal(seen.length, 0);
});
