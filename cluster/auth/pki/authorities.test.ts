import assert from 'node:assert/strict';
import { createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { AlreadyExistsError } from '../../../protocols/errors.ts';
import { formatCertificate, signCertificate } from '../../../protocols/ssh/certificate.ts';
import type { Backend } from '../backend/backend.ts';
import { SqliteBackend } from '../backend/sqlite-backend.ts';
import { FakeClock } from '../../common/clock.ts';
import { CertAuthorities } from './authorities.ts';
import { caKinds } from './ca-kinds.ts';
import { jwkThumbprint } from './jwk.ts';
import { newLeafKey, runTool, sampleHost, sampleUser, scratchDir } from './test-fixtures.ts';
import { createCaCertificate, issueCertificate, verifyCertificateChain } from './x509.ts';

let scratch: Awaited<ReturnType<typeof scratchDir>>;
const open: SqliteBackend[] = [];
before(async () => {
  scratch = await scratchDir();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});
after(() => scratch.cleanup());

function memoryBackend(): SqliteBackend {
  const backend = SqliteBackend.open(':memory:');
  open.push(backend);
  return backend;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts lost creates, and holds every get's answer a few ms so concurrent ensure() calls all read before any writes. */
function racyBackend(inner: Backend, lost: { count: number }): Backend {
  return Object.assign(Object.create(inner) as Backend, {
    get: async (key: string) => {
      await sleep(2);
      const item = await inner.get(key);
      await sleep(10);
      return item;
    },
    create: async (input: Parameters<Backend['create']>[0]) => {
      try {
        return await inner.create(input);
      } catch (error) {
        if (error instanceof AlreadyExistsError) lost.count++;
        throw error;
      }
    },
  });
}

describe('CertAuthorities.ensure', () => {
  it('creates the four CAs with the halves their kind needs, stored as JSON with PKCS#8 keys', async () => {
    const backend = memoryBackend();
    const cas = new CertAuthorities({ backend });
    await cas.ensure('root');
    const items = await backend.range('/authorities/root/');
    assert.deepEqual(items.map((i) => i.key).sort(), caKinds.map((k) => `/authorities/root/${k}`).sort());
    const user = JSON.parse((await backend.get('/authorities/root/user'))!.value);
    assert.deepEqual(Object.keys(user).sort(), ['active', 'additional_trusted', 'cluster', 'created', 'kind', 'remote', 'version']);
    assert.deepEqual(user.additional_trusted, []);
    assert.equal(user.remote, false);
    assert.match(user.active.tls.key_pem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(user.active.ssh.private_key_pem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(user.active.ssh.public_key, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* root-user-ca$/);
    assert.deepEqual(Object.keys(cas.get('host').active).sort(), ['ssh', 'tls']);
    assert.deepEqual(Object.keys(cas.get('db-client').active), ['tls']);
    assert.deepEqual(Object.keys(cas.get('jwt').active), ['jwt']);
    assert.equal(new X509Certificate(cas.publicAuthority('db-client').tlsCertPems[0]!).subject, 'O=Postern\nOU=db-client\nCN=root');
  });

  it('loads existing CAs without writing (a restart, or a second auth server)', async () => {
    const backend = memoryBackend();
    const first = new CertAuthorities({ backend });
    await first.ensure('root');
    const before = (await backend.range('/authorities/')).map((i) => i.revision);
    const second = new CertAuthorities({ backend });
    await second.ensure('root');
    assert.deepEqual((await backend.range('/authorities/')).map((i) => i.revision), before);
    for (const kind of caKinds) assert.deepEqual(second.publicAuthority(kind), first.publicAuthority(kind));
  });

  it('two auth servers starting at once on one store end with one CA per kind', async () => {
    const file = join(scratch.path, 'race.db');
    const lost = { count: 0 };
    const storeA = SqliteBackend.open(file);
    const storeB = SqliteBackend.open(file); // a second connection, as a second process would have
    open.push(storeA, storeB);
    const a = new CertAuthorities({ backend: racyBackend(storeA, lost) });
    const b = new CertAuthorities({ backend: racyBackend(storeB, lost) });
    await Promise.all([a.ensure('root'), b.ensure('root'), a.ensure('root')]);
    assert.ok(lost.count >= 1, `the race was exercised: ${lost.count} create(s) lost`);
    for (const kind of caKinds) assert.deepEqual(a.publicAuthority(kind), b.publicAuthority(kind), kind);
    assert.equal((await storeB.range('/authorities/')).length, 4);
    // A certificate from either server verifies against the other's trust.
    const cert = issueCertificate({ ca: a.x509Signer('user'), publicKey: newLeafKey().publicPem, identity: sampleUser(), notAfter: new Date(Date.now() + 60_000), usage: 'client' });
    assert.equal(verifyCertificateChain(cert, { trustedCaCerts: b.trustedTlsCerts('user') }).kind, 'user');
  });

  it('refuses use before ensure, and a second cluster name', async () => {
    const cas = new CertAuthorities({ backend: memoryBackend() });
    assert.throws(() => cas.get('user'), { code: 'PST_CA', message: /call ensure/ });
    assert.throws(() => cas.clusterName, { code: 'PST_CA' });
    await cas.ensure('root');
    await assert.rejects(cas.ensure('other'), /loaded for cluster root, not other/);
    await assert.rejects(new CertAuthorities({ backend: memoryBackend() }).ensure('bad/name'), { code: 'PST_BAD_INPUT' });
  });

  it('refuses a stored CA that does not parse, naming where it is and what to do', async () => {
    const backend = memoryBackend();
    await new CertAuthorities({ backend }).ensure('root');
    const item = (await backend.get('/authorities/root/host'))!;
    const stored = JSON.parse(item.value);
    const corruptions: Array<[string, unknown]> = [
      ['not JSON', '{'],
      ['unknown field', { ...stored, extra: 1 }],
      ['missing SSH half', { ...stored, active: { tls: stored.active.tls } }],
      ['TLS key of another CA', { ...stored, active: { ...stored.active, tls: { ...stored.active.tls, key_pem: createCaCertificate({ clusterName: 'x', kind: 'host' }).keyPem } } }],
      ['missing private key', { ...stored, active: { ...stored.active, ssh: { public_key: stored.active.ssh.public_key } } }],
    ];
    for (const [name, value] of corruptions) {
      await backend.put({ key: item.key, value: typeof value === 'string' ? value : JSON.stringify(value) });
      await assert.rejects(new CertAuthorities({ backend }).ensure('root'), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'PST_CA', name);
        assert.match(e.message, /stored at \/authorities\/root\/host is unreadable.*Restore the backend from a backup/s, name);
        return true;
      });
    }
  });
});

describe('CertAuthorities public material and signers', () => {
  it('issues X.509 certificates that verify against its trust, per kind', async () => {
    const cas = new CertAuthorities({ backend: memoryBackend() });
    await cas.ensure('root');
    const key = newLeafKey();
    const host = issueCertificate({ ca: cas.x509Signer('host'), publicKey: key.publicPem, identity: sampleHost(), notAfter: new Date(Date.now() + 60_000), usage: 'server' });
    assert.equal(verifyCertificateChain(host, { trustedCaCerts: cas.trustedTlsCerts('host'), expectedKind: 'host' }).kind, 'host');
    assert.throws(() => verifyCertificateChain(host, { trustedCaCerts: cas.trustedTlsCerts('user') }), { code: 'PST_CERT_UNKNOWN_CA' });
    assert.equal(cas.trustedTlsCerts('user', 'host').length, 2);
    assert.deepEqual(cas.publicAuthority('host').tlsPins, [cas.get('host').active.tls!.pin]);
  });

  it('exports the SSH CA as an authorized_keys line that ssh-keygen reads, and signs certificates it accepts', async () => {
    const cas = new CertAuthorities({ backend: memoryBackend() });
    await cas.ensure('root');
    const exported = cas.publicAuthority('user');
    const keyFile = await scratch.file('user-ca.pub', `${exported.sshPublicKeys[0]}\n`);
    const listed = await runTool('ssh-keygen', ['-l', '-f', keyFile]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.toString(), `256 ${exported.sshFingerprints[0]} root-user-ca (ED25519)\n`);

    const blob = signCertificate(
      { type: 'user', publicKey: newLeafKey('ed25519').publicKey, keyId: 'alice', principals: ['alice'], validAfter: new Date(), validBefore: new Date(Date.now() + 60_000) },
      cas.sshSigner('user'),
    );
    const certFile = await scratch.file('alice-cert.pub', `${formatCertificate(blob)}\n`);
    const shown = await runTool('ssh-keygen', ['-L', '-f', certFile]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.ok(shown.stdout.toString().includes(`Signing CA: ED25519 ${exported.sshFingerprints[0]} (using ssh-ed25519)`), shown.stdout.toString());
  });

  it('serves a JWKS whose kid is the RFC 7638 thumbprint and whose key verifies ES256 signatures', async () => {
    const cas = new CertAuthorities({ backend: memoryBackend() });
    await cas.ensure('root');
    const { keys } = cas.jwks();
    assert.equal(keys.length, 1);
    const jwk = keys[0]!;
    assert.deepEqual(Object.keys(jwk).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(jwk.kid, jwkThumbprint(jwk.x, jwk.y));
    const signer = cas.jwtSigner();
    assert.equal(signer.kid, jwk.kid);
    const data = Buffer.from('header.payload');
    const signature = sign('sha256', data, { key: signer.key, dsaEncoding: 'ieee-p1363' });
    assert.equal(signature.length, 64);
    const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
    assert.equal(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), true);
    assert.equal(verify('sha256', Buffer.from('header.tampered'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), false);
  });

  it('never puts private material in the public export', async () => {
    const cas = new CertAuthorities({ backend: memoryBackend() });
    await cas.ensure('root');
    const text = JSON.stringify(caKinds.map((k) => cas.publicAuthority(k)));
    assert.doesNotMatch(text, /PRIVATE KEY|"d":/);
    assert.match(text, /BEGIN CERTIFICATE/);
  });
});

describe('CertAuthorities remote CAs', () => {
  async function leafWithRootCas() {
    const backend = memoryBackend();
    const leaf = new CertAuthorities({ backend, clock: new FakeClock() });
    await leaf.ensure('leaf');
    const root = new CertAuthorities({ backend: memoryBackend() });
    await root.ensure('root');
    return { backend, leaf, root };
  }
  const input = (root: CertAuthorities, kind: 'host' | 'user') => {
    const pub = root.publicAuthority(kind);
    return { cluster: 'root', kind, tlsCertPems: pub.tlsCertPems, sshPublicKeys: pub.sshPublicKeys };
  };

  it('stores a trusted root host and user CAs, public only, and lists and removes them', async () => {
    const { backend, leaf, root } = await leafWithRootCas();
    await leaf.putRemote(input(root, 'user'));
    await leaf.putRemote(input(root, 'host'));
    const stored = JSON.parse((await backend.get('/authorities/root/user'))!.value);
    assert.equal(stored.remote, true);
    assert.doesNotMatch(JSON.stringify(stored), /PRIVATE KEY/);
    const remote = (await leaf.getRemote('root', 'user'))!;
    assert.equal(remote.remote, true);
    assert.equal(remote.active.tls!.signer, undefined);
    assert.equal(remote.active.ssh!.privateKey, undefined);
    // A root user's certificate verifies against the remote CA the leaf stored.
    const cert = issueCertificate({ ca: root.x509Signer('user'), publicKey: newLeafKey().publicPem, identity: sampleUser(), notAfter: new Date(Date.now() + 60_000), usage: 'client' });
    assert.equal(verifyCertificateChain(cert, { trustedCaCerts: [remote.active.tls!.certPem], expectedKind: 'user' }).kind, 'user');
    assert.deepEqual((await leaf.listRemote()).map((a) => `${a.cluster}/${a.kind}`).sort(), ['root/host', 'root/user']);
    assert.equal(await leaf.getRemote('leaf', 'user'), undefined, 'the local CA is not remote');
    assert.equal(await leaf.removeRemote('root'), 2);
    assert.deepEqual(await leaf.listRemote(), []);
    assert.equal(leaf.get('user').cluster, 'leaf');
  });

  it('replaces a remote CA (the root rotated), keeping the old key as additionally trusted when sent', async () => {
    const { leaf, root } = await leafWithRootCas();
    const first = await leaf.putRemote(input(root, 'user'));
    const rotated = new CertAuthorities({ backend: memoryBackend() });
    await rotated.ensure('root');
    const next = rotated.publicAuthority('user');
    const old = root.publicAuthority('user');
    const second = await leaf.putRemote({ cluster: 'root', kind: 'user', tlsCertPems: [...next.tlsCertPems, ...old.tlsCertPems], sshPublicKeys: [...next.sshPublicKeys, ...old.sshPublicKeys] });
    assert.ok(second.revision > first.revision);
    assert.equal(second.active.tls!.pin, next.tlsPins[0]);
    assert.equal(second.additionalTrusted[0]!.tls!.pin, old.tlsPins[0]);
  });

  it('refuses its own cluster name, private keys, the wrong CA kind and mismatched lists', async () => {
    const { leaf, root } = await leafWithRootCas();
    const good = input(root, 'user');
    await assert.rejects(leaf.putRemote({ ...good, cluster: 'leaf' }), /this cluster's own name/);
    const withKey = `${good.tlsCertPems[0]}${createCaCertificate({ clusterName: 'root', kind: 'user' }).keyPem}`;
    await assert.rejects(leaf.putRemote({ ...good, tlsCertPems: [withKey] }), /one PEM CERTIFICATE block/);
    await assert.rejects(leaf.putRemote({ ...good, tlsCertPems: root.publicAuthority('host').tlsCertPems }), /of a Postern user CA/);
    await assert.rejects(leaf.putRemote({ ...good, sshPublicKeys: [] }), /as many X.509 certificates as SSH keys/);
    await assert.rejects(leaf.putRemote({ ...good, sshPublicKeys: ['ssh-ed25519 AAAA'] }), { code: 'PST_CA' });
    await assert.rejects(leaf.putRemote({ ...good, kind: 'jwt' as never }), /only host and user CAs/);
    await assert.rejects(leaf.removeRemote('leaf'), /it is this cluster/);
    assert.deepEqual(await leaf.listRemote(), []);
  });

  it('refuses to start a cluster whose name is stored as a remote CA', async () => {
    const { backend, root } = await leafWithRootCas();
    const leaf = new CertAuthorities({ backend });
    await leaf.ensure('leaf');
    await leaf.putRemote(input(root, 'host'));
    await assert.rejects(new CertAuthorities({ backend }).ensure('root'), /holds a remote CA, not this cluster's own/);
  });
});
