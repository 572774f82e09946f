/**
 * `pctl auth sign --format=db`: what an operator needs to let a database accept the
 * cluster's db agents by certificate. The key pair is made here; auth signs the server
 * certificate with the host CA (so `tls.mode: verify-full` on the agent works with the
 * cluster's host CA as `ca_file`) and returns the db-client CA the database must trust
 * for client certificates (CN = database user).
 *
 *   server.crt        the database's certificate (host CA)      ssl_cert_file / ssl_cert
 *   server.key        its private key (0600)                    ssl_key_file / ssl_key
 *   server.cas        the host CA, for the agent's tls.ca_file
 *   db-client-ca.crt  the db-client CA                           ssl_ca_file / ssl_ca
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { parseDuration } from '../../cluster/common/duration.ts';
import { withAuth } from './connect.ts';

export async function authSign(invocation: Invocation): Promise<number> {
  const format = stringOption(invocation, 'format');
  if (format !== 'db') throw new UsageError(`--format must be db (a database server certificate); got ${format === undefined ? 'nothing' : JSON.stringify(format)}`);
  const hosts = (stringOption(invocation, 'host') ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  if (hosts.length === 0) throw new UsageError('--host is required: the database\'s host name, e.g. --host db.internal,10.0.0.5');
  const out = stringOption(invocation, 'out');
  if (!out) throw new UsageError('--out is required: the directory to write the certificate, key and CAs into');
  const ttl = stringOption(invocation, 'ttl');
  const ttlSeconds = ttl ? BigInt(Math.floor(parseDuration(ttl) / 1000)) : 0n;
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return withAuth(invocation, async ({ client }) => {
    const signed = await client.signDatabaseCertificate({
      purpose: 'server',
      name: hosts[0]!,
      altNames: hosts.slice(1),
      tlsPublicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      ttlSeconds,
      database: '',
    });
    await mkdir(out, { recursive: true, mode: 0o700 });
    const files = {
      'server.crt': signed.tlsCertificatePem,
      'server.key': pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      'server.cas': signed.signerCaPems.join(''),
      'db-client-ca.crt': signed.dbClientCaPems.join(''),
    };
    for (const [name, content] of Object.entries(files)) await writeFileAtomic(path.join(out, name), content, name.endsWith('.key') ? 0o600 : 0o644);
    process.stdout.write([
      `Wrote ${Object.keys(files).map((f) => path.join(out, f)).join(', ')} (expires ${signed.expires}).`,
      '',
      'PostgreSQL (postgresql.conf, then pg_hba.conf):',
      `  ssl = on`,
      `  ssl_cert_file = '${path.join(out, 'server.crt')}'`,
      `  ssl_key_file = '${path.join(out, 'server.key')}'`,
      `  ssl_ca_file = '${path.join(out, 'db-client-ca.crt')}'`,
      `  hostssl all all 0.0.0.0/0 cert`,
      'MariaDB / MySQL ([mysqld], then per user):',
      `  ssl_cert = ${path.join(out, 'server.crt')}`,
      `  ssl_key = ${path.join(out, 'server.key')}`,
      `  ssl_ca = ${path.join(out, 'db-client-ca.crt')}`,
      `  CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice';`,
      `Agent (postern.yaml agent.db.databases[]): tls: { mode: verify-full, ca_file: ${path.join(out, 'server.cas')}, server_name: ${hosts[0]} }, auth: { type: cert }`,
      '',
    ].join('\n'));
    return 0;
  });
}
