import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { newLeafKey, sampleUser } from '../pki/test-fixtures.ts';
import { createCaCertificate, issueCertificate } from '../pki/x509.ts';
import { PeerIdentities } from './peer-identities.ts';

const t0 = new Date('2026-04-01T10:00:00Z');
const hour = 3_600_000;
const userCa = createCaCertificate({ clusterName: 'root', kind: 'user', now: new Date(t0.getTime() - 86_400_000) });
const otherCa = createCaCertificate({ clusterName: 'other', kind: 'user', now: new Date(t0.getTime() - 86_400_000) });
const leaf = newLeafKey();
const der = new X509Certificate(issueCertificate({ ca: userCa, publicKey: leaf.publicPem, identity: sampleUser(), notAfter: new Date(t0.getTime() + hour), now: t0, usage: 'client' })).raw;
const at = (ms: number) => new Date(t0.getTime() + ms);

test('a certificate verified once is answered from memory with the same identity', () => {
  const peers = new PeerIdentities();
  const first = peers.verify(der, [userCa.certPem], t0);
  assert.equal(first.kind === 'user' && first.username, 'alice@example.com');
  assert.equal(peers.verify(der, [userCa.certPem], at(1_000)), first);
});

test('a certificate from another CA is refused, and stays refused (failures are not remembered)', () => {
  const peers = new PeerIdentities();
  assert.throws(() => peers.verify(der, [otherCa.certPem], t0), /not issued by|issuer|trusted/i);
  assert.throws(() => peers.verify(der, [otherCa.certPem], t0), /not issued by|issuer|trusted/i);
});

test('a change of trusted CAs verifies again: a certificate whose CA is no longer trusted is refused at once', () => {
  const peers = new PeerIdentities();
  peers.verify(der, [userCa.certPem], t0);
  assert.throws(() => peers.verify(der, [otherCa.certPem], at(1_000)), /not issued by|issuer|trusted/i);
});

test('an expired certificate is refused even while remembered', () => {
  const peers = new PeerIdentities();
  peers.verify(der, [userCa.certPem], at(hour - 30_000));
  assert.throws(() => peers.verify(der, [userCa.certPem], at(hour + 1_000)), /expired/i);
});

test('after a minute the chain is checked again (a verification from a clock set back is not trusted either)', () => {
  const peers = new PeerIdentities();
  const first = peers.verify(der, [userCa.certPem], t0);
  const again = peers.verify(der, [userCa.certPem], at(61_000));
  assert.notEqual(again, first);
  assert.deepEqual(again, first);
  assert.notEqual(peers.verify(der, [userCa.certPem], at(-1_000)), again);
});
