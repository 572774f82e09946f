/**
 * How a proxy gets its host identity (system role `proxy`) and keeps it current.
 *
 * - Auth in the same process: issued directly by the local auth server.
 * - Auth elsewhere: first start fetches the auth CA by its pin, joins anonymously with a
 *   token, and stores the identity in `data_dir/proxy-identity.json`; later starts reuse
 *   the file. Renewal is a join without a token, authenticated by the current certificate.
 *
 * Either way the certificate names the public address, localhost, 127.0.0.1 and the
 * host name, so agents reach the proxy by any of them and verify it with the host CA.
 */
import { generateKeyPairSync, randomUUID, X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { PosternError } from '../../protocols/errors.ts';
import { authServerName, connectAuth, type AuthClient } from '../api/auth-client.ts';
import { readIdentityFile, writeIdentityFile, type IdentityFile } from '../api/identity-file.ts';
import { fetchPinnedCa } from '../api/pinned-ca.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { SystemRole } from '../auth/pki/identity.ts';
import { splitHostPort } from '../common/diag-server.ts';
import type { Logger } from '../common/logger.ts';
import { ProxyIdentityError } from './errors.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';
import { kubeServerName } from './kube-web.ts';

/** The names the proxy's certificate carries. */
export interface ProxyNames {
  nodeName: string;
  dnsNames: string[];
  ipAddresses: string[];
}

/** An auth server in this process: what `AuthServer` offers the proxy. */
export interface LocalAuth {
  readonly address: string;
  issueHostIdentity(options: { hostId: string; nodeName: string; systemRoles: SystemRole[]; ttlMs: number; dnsNames?: string[]; ipAddresses?: string[]; withSsh?: boolean }): IdentityFile;
}

/** Where a proxy keeps its identity. */
export function proxyIdentityPath(dataDir: string): string {
  return path.join(dataDir, 'proxy-identity.json');
}

/** The certificate names for a proxy reachable at `publicHost`. */
export function proxyNames(publicHost: string | undefined, appDomain?: string): ProxyNames {
  const hostname = os.hostname();
  // Apps live at APP.<domain>: one wildcard name covers them all (OpenSSL clients want two labels under it).
  const domain = appDomain ?? (publicHost !== undefined && isIP(publicHost) === 0 && publicHost.includes('.') ? publicHost : undefined);
  const all = [publicHost, 'localhost', '127.0.0.1', '::1', hostname, kubeServerName, ...(domain ? [`*.${domain}`] : [])].filter((n): n is string => !!n && n !== '0.0.0.0' && n !== '::');
  const unique = [...new Set(all)];
  return { nodeName: hostname, dnsNames: unique.filter((n) => isIP(n) === 0), ipAddresses: unique.filter((n) => isIP(n) !== 0) };
}

/** Proxy certificates from the local auth server live this long; renewal comes at two thirds. */
export const localIdentityTtlMs = 7 * 86_400_000;

/** Issues the proxy's identity from the auth server in this process, keeping the host id of an earlier run. */
export async function localProxyIdentity(auth: LocalAuth, dataDir: string, names: ProxyNames): Promise<IdentityFile> {
  const previous = await readIdentityFile(proxyIdentityPath(dataDir), '').catch(() => undefined);
  const hostId = previous?.host_id ?? randomUUID();
  const identity = auth.issueHostIdentity({ hostId, nodeName: names.nodeName, systemRoles: ['proxy'], ttlMs: localIdentityTtlMs, dnsNames: names.dnsNames, ipAddresses: names.ipAddresses, withSsh: true });
  await writeIdentityFile(proxyIdentityPath(dataDir), identity);
  return identity;
}

/** Options for {@link joinedProxyIdentity}. */
export interface JoinOptions {
  dataDir: string;
  /** The auth API, directly or through a proxy's public port (SNI auth.postern is passed through). */
  authAddr: string;
  token?: string;
  caPin?: string;
  names: ProxyNames;
  logger: Logger;
}

/** The stored identity if it is still usable; otherwise joins with the token and stores the new one. */
export async function joinedProxyIdentity(options: JoinOptions): Promise<IdentityFile> {
  const file = proxyIdentityPath(options.dataDir);
  const stored = await readIdentityFile(file, 'join again with proxy.token and proxy.ca_pin').catch((error: unknown) => {
    if (error instanceof PosternError && /does not exist/.test(error.message)) return undefined;
    throw error;
  });
  if (stored !== undefined && _validFor(stored) > 0) {
    options.logger.info({ file, hostId: stored.host_id }, 'using the stored proxy identity');
    return stored;
  }
  if (!options.token || !options.caPin) {
    const why = stored === undefined ? `${file} does not exist` : `the identity in ${file} has expired`;
    throw new ProxyIdentityError(`the proxy has no usable identity (${why}); set proxy.token (pctl tokens add --type=proxy) and proxy.ca_pin (pctl status) in the config`);
  }
  const identity = await _joinWithToken({ ...options, token: options.token, caPin: options.caPin });
  await writeIdentityFile(file, identity);
  options.logger.info({ file, hostId: identity.host_id, cluster: identity.cluster }, 'proxy joined the cluster');
  return identity;
}

async function _joinWithToken(options: JoinOptions & { token: string; caPin: string }): Promise<IdentityFile> {
  const [host, port] = splitHostPort(options.authAddr);
  let caPem: string;
  try {
    caPem = await fetchPinnedCa({ host, port }, options.caPin, { servername: authServerName });
  } catch (error) {
    throw new ProxyIdentityError(`cannot check the auth service at ${options.authAddr} against proxy.ca_pin: ${(error as Error).message}`, { cause: error });
  }
  const anonymous = connectAuth(options.authAddr, { key_pem: '', cert_pem: '', ca_pems: [caPem] });
  try {
    return await _issue(anonymous.client, { token: options.token, hostId: '' }, options.authAddr, options.names);
  } finally {
    anonymous.close();
  }
}

/** Renews through the auth API with the current identity: same host id, a fresh key. */
export async function renewProxyIdentity(auth: AuthClient, current: IdentityFile, names: ProxyNames): Promise<IdentityFile> {
  if (!current.host_id) throw new ProxyIdentityError('cannot renew the proxy identity: it has no host id; remove proxy-identity.json and join again');
  return _issue(auth, { token: '', hostId: current.host_id }, current.auth_addr ?? '', names);
}

async function _issue(auth: AuthClient, how: { token: string; hostId: string }, authAddr: string, names: ProxyNames): Promise<IdentityFile> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // The SSH host key of the proxy's jump server (ssh -J).
  const ssh = generateKeyPairSync('ed25519');
  const joined = await auth.join({
    sshPublicKey: formatAuthorizedKey(ssh.publicKey, names.nodeName),
    token: how.token,
    hostId: how.hostId,
    roles: ['proxy'],
    nodeName: names.nodeName,
    tlsPublicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    addresses: [...names.dnsNames.filter((n) => n !== names.nodeName), ...names.ipAddresses],
  });
  const certificates = joined.certificates;
  if (!certificates?.tlsCertificatePem || certificates.tlsCaPems.length === 0) throw new ProxyIdentityError('the auth service answered the join without certificates');
  const identity = verifyCertificateChain(certificates.tlsCertificatePem, { trustedCaCerts: certificates.tlsCaPems, expectedKind: 'host' });
  return {
    version: 1,
    cluster: identity.cluster,
    key_pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert_pem: certificates.tlsCertificatePem,
    ca_pems: certificates.tlsCaPems,
    auth_addr: authAddr,
    host_id: joined.hostId,
    ...(certificates.sshCertificate ? { ssh_cert: certificates.sshCertificate, ssh_key_pem: formatOpenSshPrivateKey(ssh.privateKey, { comment: joined.hostId }) } : {}),
  };
}

/** Milliseconds the identity's certificate is still valid (negative once expired). */
function _validFor(identity: IdentityFile, now = Date.now()): number {
  return new X509Certificate(identity.cert_pem).validToDate.getTime() - now;
}

/** True once two thirds of the certificate's lifetime have passed. */
export function needsRenewal(identity: IdentityFile, now = new Date()): boolean {
  const certificate = new X509Certificate(identity.cert_pem);
  const from = certificate.validFromDate.getTime();
  const to = certificate.validToDate.getTime();
  return now.getTime() >= from + ((to - from) * 2) / 3;
}
