/**
 * One desktop session over one tunnel stream (protocols/rdp/desktop-stream.ts):
 *
 * ```
 * viewer ── connect{login,width,height} ──> authorize(login) ── deny ──> error, end, access.denied
 *                                           credentials(login) -> engine.connect(addr)
 * viewer <── ready ── rects (PNG/raw) ───── engine 'rects'           desktop.session.start
 * viewer ── mouse/key/wheel/clipboard/resize ──> engine input
 * either side ends ───────────────────────────────────────────────> desktop.session.end
 * ```
 *
 * Backpressure: while the stream will not take more (write() returned false) changed
 * rectangles are not queued; once it drains the whole picture goes once instead, so a
 * slow viewer costs one screen of memory, not a backlog. A malformed frame from the
 * viewer ends the session with an error message naming the problem.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../cluster/common/logger.ts';
import { DesktopStreamError } from '../../../protocols/rdp/errors.ts';
import {
  DesktopStreamDecoder, MAX_VIEWER_FRAME, encodeControl, encodeRect, parseViewerMessage, type AgentMessage, type ViewerMessage,
} from '../../../protocols/rdp/desktop-stream.ts';
import { encodeRects } from '../../../protocols/rdp/rect-encoder.ts';
import type { DesktopRecorder, RecordingHeader } from '../../../protocols/rdp/desktop-recording.ts';
import type { FrameRect, RdpCredentials, RdpEngine, RdpSession } from '../../../protocols/rdp/rdp-engine.ts';

/** What a session needs to know of its desktop. */
export interface DesktopTarget {
  name: string;
  host: string;
  port: number;
  labels: Record<string, string>;
  serverCertSha256?: string;
}

/** Who is asking, as the verified certificate says. */
export interface DesktopUser {
  username: string;
  roles: string[];
}

export interface DesktopSessionEvent {
  type: 'desktop.session.start' | 'desktop.session.end' | 'access.denied';
  outcome: 'success' | 'failure' | 'deny';
  user: DesktopUser;
  desktop: string;
  login?: string;
  sessionId: string;
  reason?: string;
  fields?: Record<string, unknown>;
}

export interface DesktopSessionOptions {
  target: DesktopTarget;
  user: DesktopUser;
  engine: RdpEngine;
  authorize: (login: string) => Promise<{ allowed: boolean; reason: string }>;
  credentials: (login: string) => Promise<RdpCredentials>;
  audit: (event: DesktopSessionEvent) => void;
  /** Starts a recording; undefined means this session is not recorded. */
  record?: (header: RecordingHeader) => DesktopRecorder | undefined;
  logger: Logger;
  /** Time for the viewer's connect message. Default 10 s. */
  connectTimeoutMs?: number;
}

/** Serves one accepted stream until either side ends it; never rejects. */
export async function serveDesktopSession(stream: Duplex, options: DesktopSessionOptions): Promise<void> {
  const session = new _Session(stream, options);
  await session.run();
}

class _Session {
  readonly #stream: Duplex;
  readonly #o: DesktopSessionOptions;
  readonly #id = randomUUID();
  readonly #decoder = new DesktopStreamDecoder({ maxFrame: MAX_VIEWER_FRAME, allowRects: false });
  #rdp: RdpSession | undefined;
  #recorder: DesktopRecorder | undefined;
  #login: string | undefined;
  #startedAt = 0;
  #ended = false;
  #congested = false;
  #frames = 0;
  #bytesOut = 0;
  #resolveDone!: () => void;
  readonly #done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
  #connectWaiter: ((message: ViewerMessage) => void) | undefined;
  #pendingConnect: ViewerMessage | undefined;

  constructor(stream: Duplex, options: DesktopSessionOptions) {
    this.#stream = stream;
    this.#o = options;
  }

  async run(): Promise<void> {
    this.#stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#stream.on('end', () => this.#finish('the viewer closed the stream'));
    this.#stream.on('close', () => this.#finish('the viewer closed the stream'));
    this.#stream.on('error', (error) => this.#finish(`the stream failed: ${error.message}`));
    this.#stream.on('drain', () => this.#onDrain());
    try {
      const connect = await this.#firstMessage();
      if (connect.type !== 'connect') throw new DesktopStreamError(`the first desktop stream message must be "connect", not ${JSON.stringify(connect.type)}`);
      await this.#connect(connect);
    } catch (error) {
      this.#fail(error);
    }
    await this.#done;
  }

  #firstMessage(): Promise<ViewerMessage> {
    if (this.#pendingConnect) return Promise.resolve(this.#pendingConnect);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new DesktopStreamError(`no connect message within ${this.#o.connectTimeoutMs ?? 10_000} ms`)), this.#o.connectTimeoutMs ?? 10_000);
      this.#connectWaiter = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
      void this.#done.then(() => {
        clearTimeout(timer);
        reject(new DesktopStreamError('the stream ended before the connect message'));
      });
    });
  }

  async #connect(message: Extract<ViewerMessage, { type: 'connect' }>): Promise<void> {
    const { target, user } = this.#o;
    this.#login = message.login;
    const decision = await this.#o.authorize(message.login);
    if (!decision.allowed) {
      this.#o.audit({ type: 'access.denied', outcome: 'deny', user, desktop: target.name, login: message.login, sessionId: this.#id, reason: decision.reason });
      this.#send({ type: 'error', code: 'PST_ACCESS_DENIED', message: decision.reason });
      this.#finish(decision.reason, true);
      return;
    }
    let rdp: RdpSession;
    try {
      const credentials = await this.#o.credentials(message.login);
      rdp = await this.#o.engine.connect({
        host: target.host, port: target.port, credentials, width: message.width, height: message.height, serverCertSha256: target.serverCertSha256,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#o.audit({ type: 'desktop.session.start', outcome: 'failure', user, desktop: target.name, login: message.login, sessionId: this.#id, reason });
      this.#send({ type: 'error', code: (error as { code?: string }).code ?? 'PST_RDP_CONNECT', message: reason });
      this.#finish(reason, true);
      return;
    }
    if (this.#ended) {
      rdp.close();
      return;
    }
    this.#rdp = rdp;
    this.#startedAt = Date.now();
    this.#recorder = this.#o.record?.({
      session_id: this.#id, desktop: target.name, user: user.username, login: message.login,
      started_at: new Date(this.#startedAt).toISOString(), width: rdp.width, height: rdp.height,
    });
    this.#o.audit({
      type: 'desktop.session.start', outcome: 'success', user, desktop: target.name, login: message.login, sessionId: this.#id,
      fields: { width: rdp.width, height: rdp.height, server_cert_sha256: rdp.serverCertSha256, ...(this.#recorder ? { recording: this.#recorder.path } : {}) },
    });
    this.#o.logger.info({ desktop: target.name, user: user.username, login: message.login, sessionId: this.#id, serverCertSha256: rdp.serverCertSha256 }, 'desktop session started');
    this.#send({ type: 'ready', desktop: target.name, login: message.login, width: rdp.width, height: rdp.height, session_id: this.#id });
    rdp.on('rects', (rects) => this.#onRects(rects));
    rdp.on('resize', (width, height) => {
      this.#send({ type: 'resize', width, height });
      this.#congested = true; // the next drain, or the next rects, send the whole new picture
      if (this.#stream.writableNeedDrain === false) this.#onDrain();
    });
    rdp.on('clipboard', (text) => this.#send({ type: 'clipboard', text }));
    rdp.on('close', (error, reason) => {
      const why = reason ? `the desktop ended the session: ${reason}` : 'the desktop ended the session';
      if (error) this.#send({ type: 'error', code: (error as { code?: string }).code ?? 'PST_RDP_SESSION', message: error.message });
      else this.#send({ type: 'end', reason: why });
      this.#finish(error?.message ?? why, true);
    });
  }

  #onData(chunk: Buffer): void {
    if (this.#ended) return;
    try {
      for (const frame of this.#decoder.push(chunk)) {
        if (frame.kind !== 'control') continue;
        const message = parseViewerMessage(frame.message);
        if (!this.#login) {
          if (this.#connectWaiter) this.#connectWaiter(message);
          else this.#pendingConnect ??= message;
          continue;
        }
        this.#input(message);
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  #input(message: ViewerMessage): void {
    const rdp = this.#rdp;
    if (message.type === 'close') return this.#finish('the viewer closed the session', true);
    if (message.type === 'connect') throw new DesktopStreamError('connect may be sent only once, first');
    if (!rdp) return; // still connecting: input before the picture is meaningless
    switch (message.type) {
      case 'mouse_move': return rdp.mouseMove(message.x, message.y);
      case 'mouse_button': return rdp.mouseButton(message.button, message.down);
      case 'wheel': return rdp.wheel(message.delta, message.horizontal);
      case 'key': return rdp.key(message.scancode, message.down);
      case 'clipboard': return void rdp.clipboardText(message.text).catch((error: Error) => this.#o.logger.warn({ err: error }, 'clipboard text not delivered'));
      case 'resize': return rdp.resize(message.width, message.height);
    }
  }

  #onRects(rects: FrameRect[]): void {
    if (this.#ended || this.#congested) return;
    for (const rect of rects) {
      for (const frame of encodeRects(rect)) this.#write(encodeRect(frame));
    }
    this.#frames++;
  }

  #onDrain(): void {
    if (!this.#congested || this.#ended || !this.#rdp) return;
    this.#congested = false;
    this.#onRects([this.#rdp.snapshot()]);
  }

  #send(message: AgentMessage): void {
    this.#write(encodeControl(message));
  }

  #write(frame: Buffer): void {
    if (this.#ended || this.#stream.destroyed || this.#stream.writableEnded) return;
    this.#bytesOut += frame.length;
    this.#recorder?.frame(frame);
    if (!this.#stream.write(frame)) this.#congested = true;
  }

  #fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: string }).code ?? 'PST_DESKTOP_STREAM';
    this.#o.logger.warn({ desktop: this.#o.target.name, user: this.#o.user.username, sessionId: this.#id, code, why: message }, 'desktop session ended with an error');
    this.#send({ type: 'error', code, message });
    this.#finish(message, true);
  }

  #finish(reason: string, endStream = false): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#rdp?.close();
    if (endStream) this.#stream.end();
    if (this.#rdp && this.#login) {
      this.#o.audit({
        type: 'desktop.session.end', outcome: 'success', user: this.#o.user, desktop: this.#o.target.name, login: this.#login, sessionId: this.#id, reason,
        fields: { duration_ms: Date.now() - this.#startedAt, frames: this.#frames, bytes_out: this.#bytesOut, ...(this.#recorder ? { recording: this.#recorder.path, recording_bytes: this.#recorder.bytes } : {}) },
      });
      this.#o.logger.info({ desktop: this.#o.target.name, user: this.#o.user.username, sessionId: this.#id, reason }, 'desktop session ended');
    }
    const recorder = this.#recorder;
    void (recorder ? recorder.close() : Promise.resolve()).then(() => this.#resolveDone());
  }
}

