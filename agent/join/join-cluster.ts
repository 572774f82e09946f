/**
 * First contact: an agent with a token and a CA pin becomes a host of the cluster.
 *
 * ```
 * agent                                   proxy (public port)            auth
 *   TLS, no trust yet ─────────────────────> chain [proxy leaf, host CA]
 *   fetchPinnedCa: CA whose SPKI sha256 = pin, and it signed the leaf
 *   HTTPS trusting only that CA: GET /v1/discovery  (cluster name)
 *   keys generated here (P-256 TLS, Ed25519 SSH)
 *   POST /v1/join { token, roles, node_name, public keys } ──> Join(token) ──> certificates
 *   agent-identity.json (0600, atomic) + agent-join.json (token labels)
 * ```
 *
 * A wrong pin fails before the token leaves the machine; private keys never do.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { writeIdentityFile, type IdentityFile } from '../../cluster/api/identity-file.ts';
import { fetchPinnedCa } from '../../cluster/api/pinned-ca.ts';
import { splitHostPort } from '../../cluster/common/diag-server.ts';
import { PosternError } from '../../protocols/errors.ts';
import { agentIdentityPath, loadAgentIdentity } from '../identity/agent-identity.ts';
import { certificateInfo } from '../identity/certificate-info.ts';
import { generateHostKeys, type HostKeys } from '../identity/host-keys.ts';
import { writeJoinRecord, type JoinRecord } from '../identity/join-record.ts';
import { fetchDiscovery } from '../proxy/discovery.ts';
import { ProxyApiError, ProxyUnreachableError } from '../proxy/errors.ts';
import { proxyRequest } from '../proxy/proxy-web-client.ts';
import type { ProxyTrust } from '../proxy/proxy-peer.ts';
import { AlreadyJoinedError, JoinResponseError } from './errors.ts';

/** Options for {@link joinCluster}. */
export interface JoinOptions {
  /** The proxy's public address, host:port. */
  proxyAddr: string;
  token: string;
  /** `sha256:<hex>` of the cluster's host CA public key (`pctl status`). */
  caPin: string;
  dataDir: string;
  nodeName: string;
  /** Labels the host owner gives (`--labels`); kept in agent-join.json. */
  labels?: Record<string, string>;
  /** System roles asked for. Default `['node']`. */
  roles?: string[];
  /** Addresses for the certificates' names (SANs, SSH principals). */
  addresses?: string[];
  /** Per network step. Default 10 s. */
  timeoutMs?: number;
}

/** What a join produced. */
export interface JoinResult {
  identity: IdentityFile;
  record: JoinRecord;
  identityPath: string;
  cluster: string;
  expires: Date;
}

const joinResponseSchema = z.object({
  host_id: z.string().min(1),
  token_labels: z.record(z.string(), z.string()).default({}),
  certificates: z.object({
    ssh_certificate: z.string().min(1),
    tls_certificate_pem: z.string().includes('BEGIN CERTIFICATE'),
    tls_ca_pems: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
    ssh_host_ca_keys: z.array(z.string()),
    expires: z.string(),
  }),
});

type JoinResponse = z.output<typeof joinResponseSchema>;

/** Joins the cluster behind `proxyAddr` with a token and writes the host identity into `dataDir`. */
export async function joinCluster(options: JoinOptions): Promise<JoinResult> {
  const identityPath = agentIdentityPath(options.dataDir);
  const existing = await loadAgentIdentity(options.dataDir).catch(() => 'unreadable' as const);
  if (existing !== undefined) {
    const what = existing === 'unreadable' ? 'an identity file that cannot be used' : `the identity of host ${existing.host_id} in cluster ${existing.cluster}`;
    throw new AlreadyJoinedError(`${options.dataDir} holds ${what} already (${identityPath}); to join again, move it aside first`);
  }
  const caPem = await _pinnedCa(options);
  const trust: ProxyTrust = { caPems: [caPem] };
  const discovery = await fetchDiscovery(options.proxyAddr, trust, { timeoutMs: options.timeoutMs });
  const keys = await generateHostKeys(options.nodeName);
  const response = await _requestJoin(options, trust, keys);
  const identity = _identityFrom(response, keys, { cluster: discovery.cluster_name, proxyAddr: options.proxyAddr, caPem });
  const record: JoinRecord = {
    version: 1,
    host_id: response.host_id,
    node_name: options.nodeName,
    token_labels: response.token_labels,
    labels: options.labels ?? {},
    joined_at: new Date().toISOString(),
  };
  await writeJoinRecord(options.dataDir, record);
  await writeIdentityFile(identityPath, identity);
  return { identity, record, identityPath, cluster: discovery.cluster_name, expires: certificateInfo(identity.cert_pem).notAfter };
}

async function _pinnedCa(options: JoinOptions): Promise<string> {
  const [host, port] = splitHostPort(options.proxyAddr);
  try {
    return await fetchPinnedCa({ host, port }, options.caPin, { timeoutMs: options.timeoutMs, alpn: ['http/1.1'] });
  } catch (error) {
    if (error instanceof PosternError && (error.code === 'PST_CONNECT' || error.code === 'PST_CONNECT_TIMEOUT')) {
      throw new ProxyUnreachableError(options.proxyAddr, error.message.replace(/^cannot connect to \S+: /, ''), { cause: error });
    }
    throw error;
  }
}

async function _requestJoin(options: JoinOptions, trust: ProxyTrust, keys: HostKeys): Promise<JoinResponse> {
  let body: unknown;
  try {
    body = await proxyRequest(options.proxyAddr, '/v1/join', {
      method: 'POST',
      trust,
      timeoutMs: options.timeoutMs,
      body: {
        token: options.token,
        roles: options.roles ?? ['node'],
        node_name: options.nodeName,
        ssh_public_key: keys.sshPublicKey,
        tls_public_key: keys.tlsPublicKeyPem,
        addresses: options.addresses ?? [],
      },
    });
  } catch (error) {
    if (error instanceof ProxyApiError) throw new ProxyApiError(error.code, `the cluster refused the join: ${error.message}`, error.status);
    throw error;
  }
  const parsed = joinResponseSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new JoinResponseError(`the proxy at ${options.proxyAddr} answered the join without a valid ${issue?.path.join('.') ?? 'body'}: ${issue?.message}`);
  }
  return parsed.data;
}

/** Builds the identity file, checking the certificate is for our key and from the pinned CA. */
function _identityFrom(response: JoinResponse, keys: HostKeys, where: { cluster: string; proxyAddr: string; caPem: string }): IdentityFile {
  const { certificates } = response;
  const certificate = new X509Certificate(certificates.tls_certificate_pem);
  const pinned = new X509Certificate(where.caPem);
  if (!certificate.checkPrivateKey(createPrivateKey(keys.tlsKeyPem))) {
    throw new JoinResponseError(`the proxy at ${where.proxyAddr} returned a certificate for another key; nothing was written`);
  }
  if (!certificate.checkIssued(pinned) || !certificate.verify(pinned.publicKey)) {
    throw new JoinResponseError(`the proxy at ${where.proxyAddr} returned a certificate not signed by the pinned CA; nothing was written`);
  }
  const caPems = certificates.tls_ca_pems.some((pem) => new X509Certificate(pem).fingerprint256 === pinned.fingerprint256)
    ? certificates.tls_ca_pems
    : [where.caPem, ...certificates.tls_ca_pems];
  return {
    version: 1,
    cluster: where.cluster,
    key_pem: keys.tlsKeyPem,
    cert_pem: certificates.tls_certificate_pem,
    ca_pems: caPems,
    ssh_cert: certificates.ssh_certificate,
    ssh_key_pem: keys.sshKeyPem,
    proxy_addr: where.proxyAddr,
    host_id: response.host_id,
  };
}
