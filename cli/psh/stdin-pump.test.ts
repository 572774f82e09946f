import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * A child process pumps its stdin (a real pipe) into a Writable that takes each chunk
 * late, as a backed-up TLS socket does, and prints the SHA-256 of what it was given:
 * a read buffer reused before its write completed would change bytes still queued.
 */
const child = `
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pumpStdin } from ${JSON.stringify(path.join(import.meta.dirname, 'stdin-pump.ts'))};
const hash = createHash('sha256');
let chunks = 0;
const slow = new Writable({
  highWaterMark: 1024 * 1024,
  write(chunk, _encoding, callback) {
    chunks++;
    setTimeout(() => { hash.update(chunk); callback(); }, chunks % 8 === 0 ? 2 : 0);
  },
  final(callback) {
    process.stdout.write(hash.digest('hex') + ' ' + chunks);
    callback();
  },
});
pumpStdin(slow);
`;

test('pumpStdin delivers a pipe byte-exact to a writer that takes its chunks late', async () => {
  const data = randomBytes(24 * 1024 * 1024);
  const proc = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stdin.end(data);
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  assert.equal(code, 0);
  const [digest, chunks] = out.split(' ');
  assert.equal(digest, createHash('sha256').update(data).digest('hex'));
  assert.ok(Number(chunks) > 8, `the data came in ${chunks} chunks; the test needs several in flight`);
});
