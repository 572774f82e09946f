import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';

// installers/build-ssh2-crypto.ts builds it at npm install; without it ssh2 ciphers run in JS
// and SSH bulk throughput drops by about a third, silently.
test('ssh2 runs with its native crypto binding (built by postinstall for the pinned Node)', () => {
  const crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
  assert.equal(crypto.bindingAvailable, true, 'ssh2 has no native crypto binding: run `node installers/build-ssh2-crypto.ts --force` and read its error');
});

// Node 24's node::ObjectWrap removes a per-object cleanup hook in its destructor and CHECKs that
// a Node context is entered; V8 deletes collected ciphers from GC weak callbacks that may run
// outside one (an agent aborted mid-transfer: "Assertion failed: (env) != nullptr" in
// RemoveEnvironmentCleanupHook, from ~ChaChaPolyDecipher). The patched binding derives from
// Nan::ObjectWrap, which registers no such hook, so the addon imports neither hook function.
// (The abort itself depends on when V8 collects, too rare to provoke in a test.)
test('the crypto binding does not use per-object environment cleanup hooks (they abort when V8 collects a cipher outside a context)', () => {
  const addon = createRequire(import.meta.url).resolve('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
  const image = readFileSync(addon);
  assert.ok(image.includes('sshcrypto'), 'not the ssh2 crypto addon');
  for (const symbol of ['AddEnvironmentCleanupHook', 'RemoveEnvironmentCleanupHook']) {
    assert.equal(image.includes(symbol), false, `${addon} imports node::${symbol}: ssh2's binding.cc still derives from node::ObjectWrap (patches/ssh2+1.17.0.patch not applied?); rebuild with node installers/build-ssh2-crypto.ts --force`);
  }
});
