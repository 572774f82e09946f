/**
 * Certificate issuance on one core: what `psh login` costs the auth server. Each pair
 * is an X.509 client certificate carrying the user identity (cluster/auth/pki/x509.ts,
 * our DER builder) and an OpenSSH user certificate (protocols/ssh/certificate.ts),
 * both from the user CA loaded by CertAuthorities, with the client's keys arriving as
 * text (PEM SPKI and an authorized_keys line), as in LoginRequest.
 *
 * Baseline in the same run: @peculiar/x509's X509CertificateGenerator issuing the
 * same X.509 certificate. Also printed: CPU microseconds per pair (process.cpuUsage).
 *
 *   node_modules/.bin/node bench/certs.ts        (BENCH_CERTS_MS=3000 per measurement)
 */
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SqliteBackend } from '../cluster/auth/backend/sqlite-backend.ts';
import { CertAuthorities } from '../cluster/auth/pki/authorities.ts';
import type { UserIdentity } from '../cluster/auth/pki/identity.ts';
import { encodeIdentityExtension } from '../cluster/auth/pki/x509-extensions.ts';
import { issueCertificate, verifyCertificateChain, type X509Ca } from '../cluster/auth/pki/x509.ts';
import { signCertificate } from '../protocols/ssh/certificate.ts';
import { formatAuthorizedKey, parseAuthorizedKey } from '../protocols/ssh/public-key.ts';
import { CertIssuer } from '../cluster/auth/pki/cert-issuer.ts';
import { sshUserExtensions } from '../cluster/api/ssh-identity.ts';
import { systemClock } from '../cluster/common/clock.ts';
import { AuthServer } from '../cluster/auth/auth-server.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { connectAuth } from '../cluster/api/auth-client.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const measureMs = Number(process.env.BENCH_CERTS_MS ?? 3000);
const target = 2000;

const identity: UserIdentity = {
  kind: 'user',
  username: 'alice@example.com',
  roles: ['dev', 'auditor', 'db-readers'],
  traits: { logins: ['alice', 'ubuntu'], db_users: ['app_reader'], kube_groups: ['viewers'] },
  logins: ['alice', 'ubuntu'],
  cluster: 'root',
  routeToCluster: 'leaf-1',
  mfaVerified: true,
  bot: false,
  expires: new Date(Date.now() + 12 * 3_600_000),
};

/** Runs the benchmark and prints its figures; the last line is the pairs-per-second rate. */
export async function run(): Promise<void> {
  const backend = SqliteBackend.open(':memory:');
  try {
    const cas = new CertAuthorities({ backend });
    await cas.ensure('root');
    const x509Ca = cas.x509Signer('user');
    const sshCa = cas.sshSigner('user');
    const tlsKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const sshKeyLine = formatAuthorizedKey(generateKeyPairSync('ed25519').publicKey, 'alice@laptop');
    const notAfter = identity.expires;

    const x509 = () => issueCertificate({ ca: x509Ca, publicKey: tlsKeyPem, identity, notAfter, usage: 'client' });
    const ssh = () =>
      signCertificate(
        {
          type: 'user',
          publicKey: parseAuthorizedKey(sshKeyLine).publicKey,
          keyId: identity.username,
          principals: identity.logins,
          validAfter: new Date(Date.now() - 60_000),
          validBefore: notAfter,
          extensions: sshUserExtensions(identity, { pty: true, portForwarding: true, agentForwarding: false }),
        },
        sshCa,
      );
    // Sanity: what we time is a certificate the auth API accepts.
    verifyCertificateChain(x509(), { trustedCaCerts: cas.trustedTlsCerts('user'), expectedKind: 'user', usage: 'client' });

    const x509Only = measure(x509);
    const sshOnly = measure(ssh);
    // The pair as the auth server issues it on login (cert-issuer.ts), extensions and all.
    const issuer = new CertIssuer(cas, systemClock);
    const pairs = measure(() => issuer.issueUser({ identity, sshPublicKey: sshKeyLine, tlsPublicKey: tlsKeyPem, permit: { pty: true, portForwarding: true, agentForwarding: false } }));
    const peculiar = await measurePeculiar(x509Ca, tlsKeyPem, notAfter);

    print(`X.509 client certificates (DER builder + node:crypto): ${fmt(x509Only.rate)}/s, ${x509Only.cpuUs.toFixed(0)} us CPU each`);
    print(`SSH user certificates (protocols/ssh signCertificate, Ed25519 CA): ${fmt(sshOnly.rate)}/s, ${sshOnly.cpuUs.toFixed(0)} us CPU each`);
    print(`baseline: @peculiar/x509 X509CertificateGenerator, same X.509 certificate: ${fmt(peculiar.rate)}/s, ${peculiar.cpuUs.toFixed(0)} us CPU each`);
    print(`X.509 issuance ratio ours/@peculiar: ${(x509Only.rate / peculiar.rate).toFixed(1)}x`);
    const login = await measureLoginRoundTrip();
    print(`login API round trip (proxy identity -> gRPC mTLS -> scrypt N=2^15 -> pair): p50 ${login.p50.toFixed(1)} ms, p99 ${login.p99.toFixed(1)} ms over ${login.count} logins`);
    print(`CPU per pair: ${pairs.cpuUs.toFixed(0)} us (one core)`);
    print(`certificate pairs issued: ${fmt(pairs.rate)}/s (target >= ${target})`);
  } finally {
    await backend.close();
  }
}

/** Logins through the real API with production password hashing, measured from the proxy's side. */
async function measureLoginRoundTrip(count = 40): Promise<{ p50: number; p99: number; count: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-login-'));
  const auth = await AuthServer.start({ clusterName: 'bench', dataDir: dir, listenAddr: '127.0.0.1:0', logger: silentLogger() });
  const proxy = connectAuth(auth.address, auth.issueHostIdentity({ hostId: 'proxy', nodeName: 'proxy', systemRoles: ['proxy'], ttlMs: 3_600_000 }));
  try {
    await auth.deps.users.create('alice', { roles: ['access'], traits: { logins: ['alice'] } });
    const password = 'correct horse battery staple';
    await auth.deps.users.setPassword('alice', password);
    const sshPublicKey = formatAuthorizedKey(generateKeyPairSync('ed25519').publicKey);
    const tlsPublicKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const times: number[] = [];
    for (let i = 0; i < count + 3; i++) {
      const start = performance.now();
      await proxy.client.login({ user: 'alice', password, sshPublicKey, tlsPublicKey });
      if (i >= 3) times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return { p50: times[Math.floor(times.length * 0.5)] ?? 0, p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] ?? 0, count };
  } finally {
    proxy.close();
    await auth.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Measurement {
  rate: number;
  cpuUs: number;
}

function measure(work: () => unknown, ms = measureMs): Measurement {
  for (let i = 0; i < 300; i++) work(); // warm-up: JIT, caches
  const cpu = process.cpuUsage();
  const start = performance.now();
  let count = 0;
  while (performance.now() - start < ms) {
    for (let i = 0; i < 50; i++) work();
    count += 50;
  }
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { rate: (count / elapsed) * 1000, cpuUs: (used.user + used.system) / count };
}

async function measurePeculiar(ca: X509Ca, publicKeyPem: string, notAfter: Date): Promise<Measurement> {
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', ca.key.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const caCert = new x509.X509Certificate(ca.certPem);
  const ext = encodeIdentityExtension(identity);
  const issue = async () => {
    const publicKey = await new x509.PublicKey(publicKeyPem).export(alg, ['verify']);
    return x509.X509CertificateGenerator.create({
      serialNumber: webcrypto.getRandomValues(new Uint8Array(16)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '4'),
      subject: 'O=dev, O=auditor, O=db-readers, CN=alice@example.com',
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter,
      signingKey,
      publicKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
        new x509.Extension(ext.oid, false, ext.value),
      ],
    });
  };
  for (let i = 0; i < 100; i++) await issue();
  const cpu = process.cpuUsage();
  const start = performance.now();
  let count = 0;
  while (performance.now() - start < Math.min(measureMs, 2000)) {
    await issue();
    count++;
  }
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { rate: (count / elapsed) * 1000, cpuUs: (used.user + used.system) / count };
}

function fmt(rate: number): string {
  return Math.round(rate).toString();
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
