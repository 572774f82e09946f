import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { startTestAuth } from '../../test/fixtures/auth.ts';
import { CaPinMismatchError, fetchPinnedCa, pinOf } from './pinned-ca.ts';
import { caPin } from '../auth/pki/ca-pin.ts';

test('fetchPinnedCa returns the CA whose pin matches, and refuses another pin or a malformed one', async () => {
  const auth = await startTestAuth();
  try {
    const caPem = auth.server.deps.authorities.trustedTlsCerts('host')[0] ?? '';
    const pin = pinOf(new X509Certificate(caPem));
    assert.equal(pin, caPin(caPem), 'the client-side pin must equal the one pctl status prints');
    const [host, port] = auth.server.address.split(':');
    const address = { host: host ?? '', port: Number(port) };
    assert.equal((await fetchPinnedCa(address, pin)).trim(), caPem.trim());
    await assert.rejects(fetchPinnedCa(address, `sha256:${'0'.repeat(64)}`), CaPinMismatchError);
    await assert.rejects(fetchPinnedCa(address, 'md5:abc'), /malformed/);
    const other = await startTestAuth({ clusterName: 'other' });
    try {
      const otherPin = pinOf(new X509Certificate(other.server.deps.authorities.trustedTlsCerts('host')[0] ?? ''));
      await assert.rejects(fetchPinnedCa(address, otherPin), /does not match --ca-pin/);
    } finally {
      await other.stop();
    }
  } finally {
    await auth.stop();
  }
});
