import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

// installers/build-ssh2-crypto.ts builds it at npm install; without it ssh2 ciphers run in JS
// and SSH bulk throughput drops by about a third, silently.
test('ssh2 runs with its native crypto binding (built by postinstall for the pinned Node)', () => {
  const crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
  assert.equal(crypto.bindingAvailable, true, 'ssh2 has no native crypto binding: run `node installers/build-ssh2-crypto.ts --force` and read its error');
});
