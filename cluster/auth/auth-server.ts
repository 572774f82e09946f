/**
 * The Auth Service process part: opens the backend, makes sure the cluster's CAs and
 * built-in roles exist, serves the gRPC API over mutual TLS, and keeps a local admin
 * identity on disk for `pctl` on this host (as Teleport's tctl does).
 *
 *   pctl / proxy / agent --mTLS gRPC--> AuthServer --> stores --> Backend (SQLite)
 */
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { Histogram, type Registry } from 'prom-client';
import type { Backend } from './backend/backend.ts';
import { SqliteBackend } from './backend/sqlite-backend.ts';
import { CertAuthorities } from './pki/authorities.ts';
import { CertIssuer } from './pki/cert-issuer.ts';
import { PeerIdentities } from './api/peer-identities.ts';
import { issueCertificate } from './pki/x509.ts';
import type { HostIdentity, SystemRole } from './pki/identity.ts';
import { UserStore } from './users/user-store.ts';
import { TokenStore } from './tokens/token-store.ts';
import { AuditLog } from './audit/audit-log.ts';
import { ResourceStore } from './resources/resource-store.ts';
import { createResourceRegistry } from './resources/kinds.ts';
import { ensureBuiltinRoles } from './builtin-roles.ts';
import { StaticCertificates } from './static-certificates.ts';
import { Authorizer } from './api/authorizer.ts';
import type { AuthDeps } from './api/auth-deps.ts';
import type { AuthExtension, AuthHandlers } from './api/auth-extension.ts';
import { BadInputError } from '../../protocols/errors.ts';
import type { CallContext } from './api/call-context.ts';
import { statusApi } from './api/status-api.ts';
import { resourcesApi } from './api/resources-api.ts';
import { usersApi } from './api/users-api.ts';
import { tokensApi } from './api/tokens-api.ts';
import { auditApi } from './api/audit-api.ts';
import { certsApi } from './api/certs-api.ts';
import { routesApi } from './api/routes-api.ts';
import { appSessionsApi } from './api/app-sessions-api.ts';
import { dbCertsApi } from './api/db-certs-api.ts';
import { issueRoutedCertificate } from './api/routed-certs-api.ts';
import { presenceApi } from './api/presence-api.ts';
import { webSessionsApi } from './api/web-sessions-api.ts';
import { PresenceStore } from './presence/presence-store.ts';
import { RecordingStore } from './recordings/recording-store.ts';
import { recordingsApi } from './api/recordings-api.ts';
import { AuthService } from '../api/gen/postern/auth/v1/auth_pb.ts';
import { addService, clientAddrHeader, maxMessageBytes } from '../api/grpc-glue.ts';
import { authServerName } from '../api/auth-client.ts';
import { writeIdentityFile, type IdentityFile } from '../api/identity-file.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { parseDuration } from '../common/duration.ts';
import { splitHostPort } from '../common/diag-server.ts';
import { versionInfo } from '../common/version.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';

export interface AuthServerOptions {
  clusterName: string;
  dataDir: string;
  listenAddr: string;
  logger: Logger;
  clock?: Clock;
  maxSessionTtl?: string;
  /** Where API call metrics go (the daemon's /metrics registry). */
  registry?: Registry;
  /** Lower scrypt cost for tests. */
  scrypt?: { N: number; r: number; p: number; keylen: number };
  /** Handlers and resource hooks from outside the core (root/, leaf/). */
  extensions?: readonly AuthExtension[];
}

const adminIdentityTtlMs = 24 * 3_600_000;

/** The admin identity `pctl` uses on the auth host; kept fresh while the server runs. */
export function adminIdentityPath(dataDir: string): string {
  return path.join(dataDir, 'admin-identity.json');
}

export class AuthServer {
  readonly deps: AuthDeps;
  readonly #server: grpc.Server;
  readonly #options: AuthServerOptions;
  readonly #peers = new PeerIdentities();
  #port = 0;
  #adminTimer: NodeJS.Timeout | undefined;

  private constructor(deps: AuthDeps, server: grpc.Server, options: AuthServerOptions) {
    this.deps = deps;
    this.#server = server;
    this.#options = options;
  }

  /** Opens state, creates what is missing, and starts serving. */
  static async start(options: AuthServerOptions): Promise<AuthServer> {
    const clock = options.clock ?? systemClock;
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const backend = SqliteBackend.open(path.join(options.dataDir, 'backend.sqlite'), { clock });
    try {
      const deps = await assemble(backend, options, clock);
      for (const extension of deps.extensions) Object.assign(deps.resourceHooks, extension.resourceHooks?.(deps));
      const server = new grpc.Server({
        'grpc.max_receive_message_length': maxMessageBytes,
        'grpc.max_send_message_length': maxMessageBytes,
      });
      const auth = new AuthServer(deps, server, options);
      await auth.#listen();
      await auth.#writeAdminIdentity();
      auth.#adminTimer = setInterval(() => void auth.#writeAdminIdentity().catch((error: unknown) => options.logger.error({ err: error }, 'renewing the admin identity failed')), adminIdentityTtlMs / 2);
      auth.#adminTimer.unref();
      return auth;
    } catch (error) {
      await backend.close();
      throw error;
    }
  }

  /** The address the gRPC API listens on, with the bound port. */
  get address(): string {
    const [host] = splitHostPort(this.#options.listenAddr);
    return `${host.includes(':') ? `[${host}]` : host}:${this.#port}`;
  }

  /** Issues a host identity directly (for a proxy in the same process, or tests). */
  issueHostIdentity(options: { hostId: string; nodeName: string; systemRoles: SystemRole[]; ttlMs: number; dnsNames?: string[]; ipAddresses?: string[]; withSsh?: boolean }): IdentityFile {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // An SSH host key and certificate, for a host that serves SSH itself (the proxy's jump server).
    const ssh = options.withSsh ? generateKeyPairSync('ed25519') : undefined;
    const identity: HostIdentity = {
      kind: 'host',
      hostId: options.hostId,
      nodeName: options.nodeName,
      cluster: this.deps.clusterName,
      systemRoles: options.systemRoles,
      expires: new Date(this.deps.clock.now().getTime() + options.ttlMs),
    };
    const pair = this.deps.issuer.issueHost({
      identity,
      tlsPublicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      dnsNames: options.dnsNames,
      ipAddresses: options.ipAddresses,
      ...(ssh ? { sshPublicKey: formatAuthorizedKey(ssh.publicKey, options.hostId) } : {}),
    });
    return {
      version: 1,
      cluster: this.deps.clusterName,
      key_pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      cert_pem: pair.tlsCertPem,
      ca_pems: this.deps.authorities.trustedTlsCerts('host'),
      auth_addr: this.address,
      host_id: options.hostId,
      ...(ssh && pair.sshCertificate ? { ssh_cert: pair.sshCertificate, ssh_key_pem: formatOpenSshPrivateKey(ssh.privateKey, { comment: options.hostId }) } : {}),
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#adminTimer);
    await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    await this.deps.backend.close();
  }

  async #listen(): Promise<void> {
    const own = this.issueHostIdentity({
      hostId: `auth.${this.deps.clusterName}`,
      nodeName: 'auth',
      systemRoles: ['auth'],
      ttlMs: 365 * 86_400_000,
      dnsNames: [authServerName, 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    // The chain carries the host CA so a new proxy can check it against its CA pin.
    const material = new StaticCertificates({
      caPems: this.deps.authorities.trustedTlsCerts('host', 'user'),
      certPem: own.cert_pem + own.ca_pems.join(''),
      keyPem: own.key_pem,
    });
    const credentials = grpc.experimental.createCertificateProviderServerCredentials(material, material, false);
    const calls = apiCallMetric(this.#options.registry);
    addService<(typeof AuthService)['method'], CallContext>(
      this.#server,
      AuthService,
      handlers(this.deps),
      (call) => this.#callContext(call),
      (method, error) => this.deps.logger.error({ err: error, method }, 'auth API call failed unexpectedly'),
      (method, code, seconds) => calls?.observe({ method, code }, seconds),
    );
    const [host, port] = splitHostPort(this.#options.listenAddr);
    this.#port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    this.deps.logger.info({ addr: this.address, cluster: this.deps.clusterName }, 'auth API listening');
  }

  #callContext(call: grpc.ServerUnaryCall<unknown, unknown>): CallContext {
    const certificate = call.getAuthContext().sslPeerCertificate;
    if (!certificate?.raw) return { peerAddr: call.getPeer() };
    const identity = this.#peers.verify(certificate.raw, this.deps.authorities.trustedTlsCerts('host', 'user'), this.deps.clock.now());
    // A proxy relays logins, joins and sign-ups: the address worth auditing is its client's.
    const relayed = call.metadata.get(clientAddrHeader)[0];
    if (identity.kind === 'host' && identity.systemRoles.includes('proxy') && typeof relayed === 'string' && /^[0-9A-Fa-f.:[\]]{2,64}$/.test(relayed)) {
      return { identity, peerAddr: relayed, relayedBy: call.getPeer() };
    }
    return { identity, peerAddr: call.getPeer() };
  }

  async #writeAdminIdentity(): Promise<void> {
    const identity = this.issueHostIdentity({ hostId: 'admin', nodeName: 'admin', systemRoles: ['admin'], ttlMs: adminIdentityTtlMs });
    await writeIdentityFile(adminIdentityPath(this.#options.dataDir), identity);
  }
}

async function assemble(backend: Backend, options: AuthServerOptions, clock: Clock): Promise<AuthDeps> {
  const authorities = new CertAuthorities({ backend, clock, logger: options.logger });
  await authorities.ensure(options.clusterName);
  const registry = createResourceRegistry();
  const resources = new ResourceStore(backend, registry);
  await ensureBuiltinRoles(resources);
  const audit = new AuditLog(backend, { cluster: options.clusterName, clock });
  return {
    clusterName: options.clusterName,
    version: versionInfo().version,
    backendName: 'sqlite',
    backend,
    clock,
    logger: options.logger,
    users: new UserStore(backend, { clock, scrypt: options.scrypt, totpIssuer: `Postern ${options.clusterName}` }),
    tokens: new TokenStore(backend, { clock }),
    audit,
    resources,
    registry,
    authorities,
    issuer: new CertIssuer(authorities, clock),
    authorizer: new Authorizer(resources, audit),
    presence: new PresenceStore(backend, clock),
    recordings: new RecordingStore(backend, path.join(options.dataDir, 'recordings')),
    maxSessionTtlMs: parseDuration(options.maxSessionTtl ?? '12h'),
    resourceHooks: {},
    extensions: options.extensions ?? [],
  };
}

function apiCallMetric(registry: Registry | undefined): Histogram<'method' | 'code'> | undefined {
  if (!registry) return undefined;
  return new Histogram({
    name: 'postern_auth_api_call_seconds',
    help: 'Auth API calls by method and result code, and how long they took',
    labelNames: ['method', 'code'],
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2],
    registers: [registry],
  });
}

function handlers(deps: AuthDeps): AuthHandlers {
  return {
    ...statusApi(deps),
    ...resourcesApi(deps),
    ...usersApi(deps),
    ...tokensApi(deps),
    ...auditApi(deps),
    ...certsApi(deps),
    ...routesApi(deps),
    ...appSessionsApi(deps),
    ...dbCertsApi(deps),
    issueRoutedCertificate: (request, ctx) => issueRoutedCertificate(deps, request, ctx),
    ...presenceApi(deps),
    ...recordingsApi(deps),
    ...webSessionsApi(deps),
    async validateTrustedCluster() {
      throw new BadInputError('this cluster does not accept trusted clusters (the root side of trust is not enabled in this build)');
    },
    async forwardLeafAudit() {
      throw new BadInputError('this cluster does not accept trusted clusters (the root side of trust is not enabled in this build)');
    },
    ...(Object.assign({}, ...deps.extensions.map((extension) => extension.handlers?.(deps) ?? {})) as Partial<AuthHandlers>),
  };
}
