/**
 * `psh login`: generates keys here (private keys never leave this machine), sends the
 * public halves with the password (and one-time code) to the proxy, and stores the
 * certificates it gets back as the current profile.
 */
import { generateKeyPairSync } from 'node:crypto';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { callWebApi, parseProxyAddress, type WebCertificates } from '../../cluster/api/web-client.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';
import { parseDuration } from '../../cluster/common/duration.ts';
import { saveProfile } from './profile.ts';
import { promptSecret } from './prompt.ts';
import { trustedCa } from './trust.ts';

interface LoginResponse extends WebCertificates {
  username: string;
  roles: string[];
  logins: string[];
}

export async function login(invocation: Invocation): Promise<number> {
  const [cluster] = invocation.positionals;
  if (cluster && !stringOption(invocation, 'user')) return (await import('./clusters.ts')).loginCluster(invocation, cluster);
  const proxy = stringOption(invocation, 'proxy', true);
  const user = stringOption(invocation, 'user') ?? process.env.USER;
  if (!user) throw new UsageError('--user is required');
  const caPems = await trustedCa(proxy, stringOption(invocation, 'ca-pin'));
  const password = await promptSecret(`Password for ${user}@${proxy}: `);
  const otp = stringOption(invocation, 'otp') ?? (invocation.options['ask-otp'] ? await promptSecret('One-time code: ') : '');
  const ssh = generateKeyPairSync('ed25519');
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ttl = stringOption(invocation, 'ttl');
  const response = await callWebApi<LoginResponse>(parseProxyAddress(proxy), 'POST', '/v1/login', {
    caPems,
    body: {
      user,
      password,
      totp_code: otp,
      ssh_public_key: formatAuthorizedKey(ssh.publicKey, `${user}@psh`),
      tls_public_key: tls.publicKey.export({ type: 'spki', format: 'pem' }),
      ttl_seconds: ttl ? Math.floor(parseDuration(ttl) / 1000) : 0,
    },
  });
  await saveProfile(
    { proxy, cluster: '', username: response.username, roles: response.roles, logins: response.logins, expires: response.expires, caPems, sshHostCaKeys: response.ssh_host_ca_keys },
    {
      tlsKeyPem: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      tlsCertPem: response.tls_certificate_pem,
      sshKeyPem: formatOpenSshPrivateKey(ssh.privateKey, { comment: `${user}@psh` }),
      sshCert: response.ssh_certificate,
    },
  );
  process.stdout.write(`Logged in as ${response.username} at ${proxy}\n  roles:   ${response.roles.join(', ')}\n  logins:  ${response.logins.join(', ') || '(none)'}\n  expires: ${response.expires}\n`);
  return 0;
}
