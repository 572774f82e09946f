/**
 * Web desktops: a websocket from the browser's canvas page, carried byte for byte to
 * the agent's desktop service through its tunnel, in this cluster or a leaf
 * (docs/desktops.md "The desktop stream": length-prefixed control and rect frames).
 * The proxy does not parse the stream; it checks the session, the Origin and the
 * cluster before the upgrade, asks *as the person* which host serves the desktop
 * (this auth, or the leaf's through the dialer: both list only desktops the person's
 * roles may see), and dials `desktop:NAME` with the person's certificate, so the
 * agent decides desktop_labels and desktop_logins, records and audits.
 *
 * ```
 * browser ──wss /v1/webapi/clusters/C/desktops/NAME/connect (cookie)──> proxy
 * proxy   ──dialer.dial({cluster: C, host, service: 'desktop:NAME', identity: user TLS certificate})──> agent desktop service
 * binary websocket messages <-> stream bytes, both ways, with backpressure
 * ```
 *
 * A refusal after the upgrade (unknown desktop, agent offline, dial refused) is sent
 * as one desktop-stream control frame `{"type":"error","code","message"}`, so the page
 * shows it as it shows the agent's own errors.
 */
import type { Duplex } from 'node:stream';
import type http from 'node:http';
import { X509Certificate } from 'node:crypto';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { PosternError } from '../../protocols/errors.ts';
import { TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import type { Logger } from '../common/logger.ts';
import type { ServiceDialer } from './service-dialer.ts';
import { checkOrigin } from './web-cookies.ts';
import { dialRefusal, matchPath, type WebSessionRoutes } from './web-session-routes.ts';
import type { ActiveWebSession } from './web-sessions.ts';
import { refuseUpgrade } from './web-terminal.ts';

export const desktopPattern = '/v1/webapi/clusters/:cluster/desktops/:name/connect';
/** A viewer's frames are at most 256 KiB (docs/desktops.md); one frame per message, plus slack. */
const maxViewerMessageBytes = 256 * 1024 + 64;
/** Pause the tunnel stream while this much picture waits for the browser. */
const highWaterBytes = 4 * 1024 * 1024;

/** One desktop as auth lists it (GetResources kind desktop). */
interface _Listed {
  metadata: { name: string };
  status?: { host_id?: string; online?: boolean };
}

export interface WebDesktopOptions {
  routes: WebSessionRoutes;
  dialer: ServiceDialer;
  logger: Logger;
}

/** Encodes one control frame of the desktop stream: LENGTH (u32 BE) TYPE 1 JSON. */
export function desktopControlFrame(message: Record<string, unknown>): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const frame = Buffer.alloc(5 + json.length);
  frame.writeUInt32BE(json.length + 1, 0);
  frame[4] = 1;
  json.copy(frame, 5);
  return frame;
}

/** Serves websocket upgrades for desktop sessions. */
export class WebDesktops {
  readonly #options: WebDesktopOptions;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: maxViewerMessageBytes, perMessageDeflate: false });

  constructor(options: WebDesktopOptions) {
    this.#options = options;
  }

  /** Handles an HTTP/1.1 upgrade to the desktop path; never rejects. */
  async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    let target: { session: ActiveWebSession; cluster: string; name: string };
    try {
      const url = new URL(req.url ?? '/', 'https://proxy.invalid');
      const params = matchPath(desktopPattern, url.pathname);
      if (!params) throw new PosternError('PST_NOT_FOUND', `no websocket endpoint ${url.pathname.slice(0, 128)}`);
      checkOrigin(req);
      target = { session: await this.#options.routes.sessionFor(req, params.cluster ?? ''), cluster: params.cluster ?? '', name: params.name ?? '' };
    } catch (error) {
      refuseUpgrade(socket, error);
      this.#options.logger.warn({ path: (req.url ?? '').slice(0, 128), why: (error as Error).message }, 'web desktop refused before the upgrade');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => void this.#run(ws, target.session, target.cluster, target.name));
  }

  close(): void {
    for (const client of this.#wss.clients) client.terminate();
    this.#wss.close();
  }

  async #run(ws: WebSocket, session: ActiveWebSession, cluster: string, name: string): Promise<void> {
    const log = this.#options.logger.child({ user: session.record.user, desktop: name, cluster });
    ws.on('error', () => {});
    // Input the page sends while the dial is in flight (its connect message) waits here.
    const early: Buffer[] = [];
    const collect = (data: RawData): void => void early.push(_bytes(data));
    ws.on('message', collect);
    let stream: Duplex;
    try {
      const identity = Buffer.from(new X509Certificate(session.record.tlsCertificatePem).toString()).toString('base64');
      const hostId = await this.#hostOf(session, cluster, name, identity);
      stream = await this.#options.dialer.dial({ cluster, host: hostId, service: `desktop:${name}`, identity }).catch((error: unknown) => {
        throw dialRefusal(error);
      });
      log.info({ hostId }, 'web desktop stream opened');
    } catch (error) {
      const message = error instanceof TunnelRejectedError || error instanceof PosternError ? error.message : String(error);
      log.warn({ why: message }, 'web desktop refused');
      if (ws.readyState === ws.OPEN) {
        ws.send(desktopControlFrame({ type: 'error', code: error instanceof PosternError ? error.code : 'PST_DESKTOP', message: `cannot open desktop "${name}": ${message}` }));
        ws.close(1000, 'refused');
      }
      return;
    }
    ws.off('message', collect);
    _bridge(ws, stream, early);
  }

  /** The online host serving `name`, among the desktops auth (here or the leaf's) lists for this person. */
  async #hostOf(session: ActiveWebSession, cluster: string, name: string, identity: string): Promise<string> {
    const local = this.#options.routes.isLocal(cluster);
    const rows = local
      ? JSON.parse((await session.auth.getResources({ kind: 'desktop', name }, { deadlineMs: 5_000 })).resourcesJson) as _Listed[]
      : await this.#options.dialer.list(cluster, 'desktop', identity).then((list) => list as _Listed[], (error: unknown) => {
        throw dialRefusal(error);
      });
    const online = rows.filter((row) => row.metadata.name === name && row.status?.online && row.status.host_id);
    if (online.length === 0) {
      throw new PosternError('PST_NOT_FOUND', rows.length === 0
        ? `no desktop named "${name}" is visible to you; list desktops on the resources page (your roles' desktop_labels decide)`
        : `desktop "${name}" is offline: its agent is not connected`);
    }
    return online[0]!.status!.host_id!;
  }
}

function _bytes(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
}

/** Bytes both ways; each side pauses while the other is full. */
function _bridge(ws: WebSocket, stream: Duplex, early: Buffer[]): void {
  stream.on('error', () => ws.close(1011, 'desktop stream failed'));
  for (const chunk of early) stream.write(chunk);
  stream.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true });
    if (ws.bufferedAmount > highWaterBytes) {
      stream.pause();
      const drain = setInterval(() => {
        if (ws.readyState !== ws.OPEN || ws.bufferedAmount <= highWaterBytes / 2) {
          clearInterval(drain);
          stream.resume();
        }
      }, 20);
    }
  });
  stream.on('end', () => ws.close(1000, 'desktop session ended'));
  stream.on('close', () => {
    if (ws.readyState === ws.OPEN) ws.close(1000, 'desktop session ended');
  });
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (!isBinary) return; // the desktop stream is binary frames only
    if (!stream.write(_bytes(data))) {
      ws.pause();
      stream.once('drain', () => ws.resume());
    }
  });
  ws.on('close', () => stream.end());
}
