/**
 * The web terminal: a websocket from the browser, an SSH session from the proxy to
 * the node's SSH service through its tunnel (in this cluster or, through trust, in a
 * leaf), logged in with the web session's SSH certificate, so the node decides access
 * and records the session exactly as for `psh ssh` / `psh ssh --cluster LEAF`.
 *
 * ```
 * browser ──wss /v1/webapi/clusters/C/nodes/N/terminal?login=L&cols=&rows= (cookie)──> proxy
 * proxy   ──dialer.dial({cluster: C, host: N, service: 'ssh', identity: user TLS certificate})
 *           ──> agent (here, or leaf proxy ──> agent) ──> SSH service
 * proxy   ──ssh2 Client (session's SSH certificate, host certificate checked)──> shell (pty)
 * frames: binary = terminal bytes both ways; text = JSON control:
 *   browser -> proxy {"type":"resize","cols":C,"rows":R}
 *   proxy -> browser {"type":"ready"} | {"type":"error","message":M} | {"type":"exit","code":N}
 * ```
 *
 * The session, the Origin and the cluster are checked before the upgrade (401/403/404
 * answers, no websocket); what happens after (unknown node, a leaf the roles do not
 * reach, login refused by the node) arrives as an error frame, so the page can show
 * it. The web session's certificate routes to this cluster; for a leaf the dialer
 * checks the roles' cluster_labels and the leaf maps the roles, as for psh.
 */
import type { Duplex } from 'node:stream';
import type http from 'node:http';
import { X509Certificate } from 'node:crypto';
import ssh2, { type ClientChannel, type ParsedKey } from 'ssh2';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { PosternError } from '../../protocols/errors.ts';
import { parseCertificate, parseCertificateLine } from '../../protocols/ssh/certificate.ts';
import { parseAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { verifyCertificate } from '../../protocols/ssh/verify-certificate.ts';
import type { Logger } from '../common/logger.ts';
import { sshService } from './ssh-route.ts';
import type { ServiceDialer } from './service-dialer.ts';
import { statusOf } from './http-json.ts';
import { checkOrigin } from './web-cookies.ts';
import { dialRefusal, matchPath, type WebSessionRoutes } from './web-session-routes.ts';
import type { ActiveWebSession } from './web-sessions.ts';

export const terminalPattern = '/v1/webapi/clusters/:cluster/nodes/:node/terminal';
/** Largest frame a browser may send (keystrokes and pastes). */
const maxFrameBytes = 1024 * 1024;
/** Pause the SSH channel while this much output waits for the browser. */
const highWaterBytes = 1024 * 1024;
const hostCertAlgorithms = [
  'ssh-ed25519-cert-v01@openssh.com', 'ecdsa-sha2-nistp256-cert-v01@openssh.com', 'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com', 'rsa-sha2-512-cert-v01@openssh.com', 'rsa-sha2-256-cert-v01@openssh.com',
];

/** A web terminal refusal after the session check; audited. */
export interface WebTerminalAuditEvent {
  user: string;
  roles: string[];
  remoteAddr: string;
  node: string;
  login: string;
  cluster: string;
  reason: string;
}

export interface WebTerminalOptions {
  routes: WebSessionRoutes;
  dialer: ServiceDialer;
  logger: Logger;
  audit?: (event: WebTerminalAuditEvent) => void;
}

interface _Request {
  session: ActiveWebSession;
  cluster: string;
  node: string;
  login: string;
  cols: number;
  rows: number;
}

/** Serves websocket upgrades for web terminals. */
export class WebTerminals {
  readonly #options: WebTerminalOptions;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes, perMessageDeflate: false });

  constructor(options: WebTerminalOptions) {
    this.#options = options;
  }

  /** Handles an HTTP/1.1 upgrade request; never rejects. */
  async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    let request: _Request;
    try {
      request = await this.#check(req);
    } catch (error) {
      refuseUpgrade(socket, error);
      this.#options.logger.warn({ path: (req.url ?? '').slice(0, 128), why: (error as Error).message }, 'web terminal refused before the upgrade');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => void this.#run(ws, request, `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`));
  }

  close(): void {
    for (const client of this.#wss.clients) client.terminate();
    this.#wss.close();
  }

  async #check(req: http.IncomingMessage): Promise<_Request> {
    const url = new URL(req.url ?? '/', 'https://proxy.invalid');
    const params = matchPath(terminalPattern, url.pathname);
    if (!params) throw new PosternError('PST_NOT_FOUND', `no websocket endpoint ${url.pathname.slice(0, 128)}`);
    checkOrigin(req);
    const session = await this.#options.routes.sessionFor(req, params.cluster ?? '');
    const login = url.searchParams.get('login') ?? '';
    if (!/^[A-Za-z0-9._-][A-Za-z0-9._@-]{0,63}$/.test(login)) throw new PosternError('PST_BAD_INPUT', 'login: name the operating-system user to log in as (?login=NAME)');
    const size = (name: string, fallback: number, max: number): number => {
      const value = Number(url.searchParams.get(name) ?? fallback);
      return Number.isInteger(value) && value >= 1 && value <= max ? value : fallback;
    };
    return { session, cluster: params.cluster ?? '', node: params.node ?? '', login, cols: size('cols', 80, 1000), rows: size('rows', 24, 500) };
  }

  async #run(ws: WebSocket, request: _Request, remoteAddr: string): Promise<void> {
    const { session, node, login, cluster } = request;
    const user = session.record.user;
    const log = this.#options.logger.child({ user, node, login, cluster, remoteAddr });
    ws.on('error', () => {});
    let client: ssh2.Client | undefined;
    ws.once('close', () => client?.end());
    try {
      const { dialer, routes } = this.#options;
      // Here the host id is resolved first (the host certificate names it); a leaf resolves its own, and the page names leaf nodes by host id.
      const hostId = routes.isLocal(cluster) ? await dialer.resolveHost(node) : node;
      const identity = Buffer.from(new X509Certificate(session.record.tlsCertificatePem).toString()).toString('base64');
      const stream = await dialer.dial({ cluster, host: hostId, service: sshService, identity }).catch((error: unknown) => {
        throw dialRefusal(error);
      });
      if (ws.readyState !== ws.OPEN) {
        stream.destroy();
        return;
      }
      client = new ssh2.Client();
      const channel = await _shell(client, stream, session, { hostId, login, cols: request.cols, rows: request.rows });
      log.info({ hostId }, 'web terminal opened');
      _bridge(ws, channel, client);
      ws.send(JSON.stringify({ type: 'ready' }));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.warn({ why: message }, 'web terminal refused');
      this.#options.audit?.({ user, roles: session.record.roles, remoteAddr, node, login, cluster, reason: message });
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ type: 'error', message: `cannot open a terminal on ${node} as ${login}: ${message}` }));
        ws.close(4403, 'refused');
      }
      client?.end();
    }
  }
}

/** Logs in to the node's SSH service over `stream` with the session's certificate and opens a pty shell. */
function _shell(client: ssh2.Client, stream: Duplex, session: ActiveWebSession, target: { hostId: string; login: string; cols: number; rows: number }): Promise<ClientChannel> {
  const parsed = ssh2.utils.parseKey(session.record.sshPrivateKey);
  if (parsed instanceof Error || Array.isArray(parsed)) throw new PosternError('PST_INTERNAL', 'the web session\'s SSH key cannot be read; sign in again');
  const { certificate: userCert } = parseCertificateLine(session.record.sshCertificate);
  const certBlob = Buffer.from(session.record.sshCertificate.trim().split(/\s+/)[1] ?? '', 'base64');
  // ssh2 offers a certificate when the key's type and public blob are the certificate's (patched ssh2).
  const key: ParsedKey = Object.create(parsed) as ParsedKey;
  Object.defineProperty(key, 'type', { value: userCert.algorithm });
  Object.defineProperty(key, 'getPublicSSH', { value: () => certBlob });
  const hostCas = session.record.sshHostCaKeys.map((line) => parseAuthorizedKey(line).publicKey.blob);
  let hostProblem = '';
  return new Promise((resolve, reject) => {
    client.once('ready', () => {
      client.shell({ term: 'xterm-256color', cols: target.cols, rows: target.rows }, (error, channel) => (error ? reject(error) : resolve(channel)));
    });
    client.once('error', (error) => reject(new PosternError('PST_SSH', hostProblem || error.message)));
    client.connect({
      sock: stream,
      username: target.login,
      authHandler: [{ type: 'publickey', username: target.login, key }] as never,
      algorithms: { serverHostKey: hostCertAlgorithms as never },
      readyTimeout: 20_000,
      keepaliveInterval: 30_000,
      hostVerifier: (blob: Buffer) => {
        try {
          verifyCertificate(parseCertificate(blob), { now: new Date(), trustedCAs: hostCas, expectedType: 'host', principal: target.hostId });
          return true;
        } catch (error) {
          hostProblem = `the node's host certificate is not trusted: ${(error as Error).message}`;
          return false;
        }
      },
    });
  });
}

/** Terminal bytes both ways with backpressure; resize from control frames; exit status to the page. */
function _bridge(ws: WebSocket, channel: ClientChannel, client: ssh2.Client): void {
  let pending = 0;
  const output = (data: Buffer): void => {
    pending += data.length;
    if (pending > highWaterBytes) channel.pause();
    ws.send(data, { binary: true }, () => {
      pending -= data.length;
      if (pending <= highWaterBytes / 2 && channel.isPaused()) channel.resume();
    });
  };
  channel.on('data', output);
  channel.stderr.on('data', output);
  let exitCode: number | undefined;
  channel.on('exit', (code: number | null) => {
    if (typeof code === 'number') exitCode = code;
  });
  channel.on('close', () => {
    if (ws.readyState === ws.OPEN) {
      ws.send(JSON.stringify({ type: 'exit', ...(exitCode !== undefined ? { code: exitCode } : {}) }));
      ws.close(1000, 'session ended');
    }
    client.end();
  });
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      if (!channel.write(bytes)) {
        ws.pause();
        channel.once('drain', () => ws.resume());
      }
      return;
    }
    let control: { type?: unknown; cols?: unknown; rows?: unknown };
    try {
      control = JSON.parse(bytes.toString('utf8')) as typeof control;
    } catch {
      return; // not JSON: ignored, the session goes on
    }
    if (control.type === 'resize' && Number.isInteger(control.cols) && Number.isInteger(control.rows)) {
      const cols = Math.min(Math.max(Number(control.cols), 1), 1000);
      const rows = Math.min(Math.max(Number(control.rows), 1), 500);
      channel.setWindow(rows, cols, 0, 0);
    }
  });
}

/** Answers a refused upgrade with a plain HTTP error and closes. */
export function refuseUpgrade(socket: Duplex, error: unknown): void {
  const status = statusOf(error);
  const message = error instanceof PosternError ? error.message : 'internal error in the proxy';
  const body = JSON.stringify({ error: { code: error instanceof PosternError ? error.code : 'PST_INTERNAL', message } }) + '\n';
  const reason = ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' } as Record<number, string>)[status] ?? 'Error';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
