/**
 * Test-only: a real proxy on 127.0.0.1 in front of an in-process test auth server, and
 * small clients for its port (HTTPS JSON, raw TLS) that trust the cluster's host CA.
 */
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { formatAuthorizedKey } from '../../../protocols/ssh/public-key.ts';
import { createLogger } from '../../common/logger.ts';
import type { IdentityFile } from '../../api/identity-file.ts';
import type { SystemRole } from '../../auth/pki/identity.ts';
import { startTestAuth, type TestAuth } from '../../../test/fixtures/auth.ts';
import { startProxy, type RunningProxy, type StartProxyOptions } from '../start-proxy.ts';

export interface TestProxy {
  auth: TestAuth;
  proxy: RunningProxy;
  port: number;
  /** The host CA, which the proxy's certificate chains to. */
  caPems: string[];
  /** The proxy's log so far, one parsed JSON object per line (debug level). */
  logs(): Array<Record<string, unknown>>;
  /** A host identity of this cluster (e.g. an agent's). */
  hostIdentity(roles: SystemRole[], hostId?: string): IdentityFile;
  stop(): Promise<void>;
}

/** Starts a test auth server (unless given) and a proxy in front of it. */
export async function startTestProxy(options: { auth?: TestAuth; proxy?: Partial<StartProxyOptions> } = {}): Promise<TestProxy> {
  const ownAuth = options.auth === undefined;
  const auth = options.auth ?? (await startTestAuth({ clusterName: 'alpha' }));
  const issue = (): IdentityFile => auth.server.issueHostIdentity({ hostId: 'proxy-1', nodeName: 'proxy-1', systemRoles: ['proxy'], ttlMs: 3_600_000, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const lines: string[] = [];
  const proxy = await startProxy({
    identity: issue(),
    renewIdentity: async () => issue(),
    authAddr: auth.server.address,
    listenAddr: '127.0.0.1:0',
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } }),
    ...options.proxy,
  });
  return {
    auth,
    proxy,
    logs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    port: Number(proxy.address.split(':').pop()),
    caPems: proxy.credentials.hostCaPems(),
    hostIdentity: (roles, hostId = `${roles.join('-')}-host`) =>
      auth.server.issueHostIdentity({ hostId, nodeName: hostId, systemRoles: roles, ttlMs: 3_600_000 }),
    async stop() {
      await proxy.close();
      if (ownAuth) await auth.stop();
    },
  };
}

/** One JSON answer from the web API. */
export interface WebAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // eslint-style escape hatch: tests read fields of many shapes.
  body: any;
}

/** Sends one HTTPS request to the proxy (HTTP/1.1), trusting `caPems`. */
export function webRequest(port: number, caPems: string[], method: string, path: string, body?: string | object, headers: Record<string, string> = {}): Promise<WebAnswer> {
  const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const request = https.request({
      host: '127.0.0.1', port, method, path, ca: caPems, agent: false,
      headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}), ...headers },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text ? JSON.parse(text) : undefined });
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}

/** Opens TLS to the proxy with the given ALPN, optionally presenting an identity. */
export async function tlsConnect(port: number, caPems: string[], options: { alpn: string[]; identity?: Pick<IdentityFile, 'key_pem' | 'cert_pem'>; servername?: string }): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1', port, ca: caPems, ALPNProtocols: options.alpn, servername: options.servername,
    ...(options.identity ? { cert: options.identity.cert_pem, key: options.identity.key_pem } : {}),
  });
  await once(socket, 'secureConnect');
  return socket;
}

/** Resolves when the peer closes `socket` (error or not), with the milliseconds it took. */
export function closedAfter(socket: net.Socket): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => {
    socket.on('error', () => {});
    socket.resume();
    if (socket.destroyed) return resolve(0);
    socket.once('close', () => resolve(Date.now() - started));
  });
}

/** Fresh client keys: an OpenSSH public key line and a PEM SPKI for TLS. */
export function clientKeys(): { sshLine: string; tlsPub: string; tlsKeyPem: string } {
  const ssh = generateKeyPairSync('ed25519');
  const tlsPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    sshLine: formatAuthorizedKey(ssh.publicKey, 'test'),
    tlsPub: tlsPair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    tlsKeyPem: tlsPair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}
