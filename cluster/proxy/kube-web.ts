/**
 * kubectl through the proxy: TLS with SNI `kube.postern` (kubeconfig `tls-server-name`,
 * written by psh kube login) or ALPN `postern-kube`, and the user's certificate routed
 * to one cluster (`routeToKubeCluster`). Each request goes over a keep-alive tunnel
 * stream to `kube_cluster:NAME` with the routed identity; the agent checks roles,
 * impersonates and forwards. Upgrades (exec, attach, port-forward) get their own stream.
 * Errors are Kubernetes `Status` objects, so kubectl prints the reason.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.ts';
import { ServiceDialError } from './errors.ts';
import { dialStatus, type ServiceDialer, type ServiceDialRequest } from './service-dialer.ts';
import { TunnelAgentPool, pipeUpgrade } from './tunnel-http.ts';
import { certificateDial, peerUser, type PeerUser } from './user-certificate.ts';

/** The SNI name kubeconfigs written by psh use for the proxy. */
export const kubeServerName = 'kube.postern';
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host']);

export interface KubeWebOptions {
  userCaPems: () => readonly string[];
  dialer: Pick<ServiceDialer, 'dial'>;
  logger: Logger;
  onRefused?: (reason: string) => void;
}

export class KubeWeb {
  readonly #options: KubeWebOptions;
  readonly #http1: http.Server;
  readonly #http2: http2.Http2Server;
  readonly #peers = new WeakMap<object, PeerUser>();
  readonly #agents: TunnelAgentPool;

  constructor(options: KubeWebOptions) {
    this.#options = options;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#serve(req, res);
    this.#http1 = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 60_000, maxHeaderSize: 65_536 }, handler);
    this.#http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.#upgrade(req, socket, head));
    this.#http2 = http2.createServer({ settings: { maxConcurrentStreams: 256 } }, handler as never);
    this.#http2.on('sessionError', () => {});
    this.#agents = new TunnelAgentPool((request) => options.dialer.dial(request), { idleMs: 120_000 });
  }

  owns(socket: TLSSocket): boolean {
    return socket.servername === kubeServerName;
  }

  readonly accept = (socket: TLSSocket): void => {
    if (socket.alpnProtocol === 'h2') this.#http2.emit('connection', socket);
    else this.#http1.emit('connection', socket);
  };

  close(): void {
    this.#agents.close();
    this.#http1.close();
    this.#http2.close();
  }

  #caller(req: IncomingMessage): { kubeCluster: string; dial: _CallerDial; user: string } | { status: number; why: string } {
    const key = 'stream' in req ? (req as unknown as { stream: { session: object } }).stream.session : req.socket;
    let peer = this.#peers.get(key);
    if (!peer) {
      peer = peerUser(req.socket as TLSSocket, this.#options.userCaPems());
      this.#peers.set(key, peer);
    }
    if (peer.kind === 'none') return { status: 401, why: 'no client certificate; run psh kube login CLUSTER and use the postern context' };
    if (peer.kind === 'bad') return { status: 401, why: `the client certificate was refused: ${peer.why}` };
    if (peer.identity.expires <= new Date()) return { status: 401, why: 'the client certificate has expired; run psh login and psh kube login again' };
    const kubeCluster = peer.identity.routeToKubeCluster;
    if (!kubeCluster) return { status: 403, why: 'this certificate is not routed to a Kubernetes cluster; run psh kube login CLUSTER' };
    const addr = `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`;
    return { kubeCluster, user: peer.identity.username, dial: certificateDial(peer.identity, peer.pem, addr) };
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const caller = this.#caller(req);
    if ('status' in caller) return this.#refuse(res, caller.status, caller.why);
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name.startsWith(':') || hopByHop.has(name)) continue;
      headers[name] = value;
    }
    headers.host = kubeServerName;
    const upstream = http.request({ method: req.method, path: req.url, headers, agent: this.#agents.get({ ...caller.dial, service: `kube_cluster:${caller.kubeCluster}` }) });
    upstream.on('response', (answer) => {
      const out: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !hopByHop.has(name)) out[name] = value;
      res.writeHead(answer.statusCode ?? 502, out);
      if (answer.headers['content-length'] === undefined) res.flushHeaders(); // watches stream
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (error) => {
      if (res.headersSent) return void res.destroy();
      this.#refuse(res, dialStatus(error), error instanceof ServiceDialError ? error.message : `the Kubernetes connection failed: ${error.message}`);
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on('error', () => upstream.destroy());
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined || 'stream' in req;
    if (hasBody && req.method !== 'GET' && req.method !== 'HEAD') req.pipe(upstream);
    else upstream.end();
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const caller = this.#caller(req);
    const fail = (status: number, why: string): void => {
      this.#options.onRefused?.('kube-upgrade-refused');
      const body = JSON.stringify(_status(status, why));
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    if ('status' in caller) return fail(caller.status, caller.why);
    let stream: Duplex;
    try {
      stream = await this.#options.dialer.dial({ ...caller.dial, service: `kube_cluster:${caller.kubeCluster}` });
    } catch (error) {
      return fail(dialStatus(error), (error as Error).message);
    }
    pipeUpgrade(req, socket, head, stream);
  }

  #refuse(res: ServerResponse, status: number, why: string): void {
    this.#options.onRefused?.(`kube-${status}`);
    this.#options.logger.info({ status, why }, 'kube request refused');
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(_status(status, why)));
  }
}

/** A Kubernetes metav1.Status for an error kubectl can print. */
function _status(code: number, message: string): Record<string, unknown> {
  const reason = code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : code === 404 ? 'NotFound' : 'ServiceUnavailable';
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `postern: ${message}`, reason, code };
}

type _CallerDial = Omit<ServiceDialRequest, 'service'>;
