/**
 * The RdpEngine on ironrdp-wasm (MIT, Devolutions' IronRDP built for the web), run
 * inside Node:
 *
 * ```
 * IronRdpEngine.connect ─ registerGateway ─> ws://postern-rdp.invalid/gN (in-process)
 *   SessionBuilder(username, password, size, renderCanvas = FrameCanvas)
 *     .proxyAddress(url).connect()
 *        wasm ── RDCleanPath ──> acceptRDCleanPath ── TCP+TLS ──> host:port
 *   session.run() draws with putImageData -> FrameCanvas -> 'rects' events
 *   input: InputTransaction(DeviceEvent...) -> session.applyInputs
 * ```
 *
 * The wasm module is loaded once per process (about 4 MB, ~100 ms to compile); each
 * connection is a Session of it. The wasm's glue looks up browser globals by name, so
 * frame-canvas.ts and in-process-websocket.ts define the few it needs.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import sea from 'node:sea';
import type * as Wasm from 'ironrdp-wasm';
import { FrameCanvas, installCanvasGlobals } from './frame-canvas.ts';
import { installInProcessWebSocket, registerGateway } from './in-process-websocket.ts';
import { acceptRDCleanPath } from './rdcleanpath-gateway.ts';
import { RdpConnectError, RdpSessionError } from './errors.ts';
import type { FrameRect, MouseButton, RdpConnectOptions, RdpEngine, RdpSession, RdpSessionEvents } from './rdp-engine.ts';

type WasmModule = typeof Wasm;
/** The name the single binary embeds the wasm under (installers/build.ts). */
export const IRONRDP_WASM_ASSET = 'ironrdp.wasm';
let loading: Promise<WasmModule> | undefined;

/** Loads and instantiates ironrdp-wasm once. */
function _wasm(): Promise<WasmModule> {
  loading ??= (async () => {
    installCanvasGlobals();
    installInProcessWebSocket();
    const module = (await import('ironrdp-wasm')) as WasmModule & { default: (input: { module_or_path: Uint8Array }) => Promise<unknown> };
    await module.default({ module_or_path: await _wasmBytes() });
    module.setup('error');
    return module;
  })();
  return loading;
}

/** The wasm binary: a SEA asset in the single binary (installers/build.ts), else the npm package's file. */
async function _wasmBytes(): Promise<Uint8Array> {
  if (sea.isSea()) return new Uint8Array(sea.getRawAsset(IRONRDP_WASM_ASSET));
  // import.meta.dirname, not .url: the bundle is CommonJS and defines only dirname/filename.
  const entry = createRequire(path.join(import.meta.dirname, 'ironrdp-engine.ts')).resolve('ironrdp-wasm');
  return readFile(path.join(path.dirname(entry), 'rdp_client_bg.wasm'));
}

/** Connects with ironrdp-wasm through an in-process RDCleanPath gateway. */
export class IronRdpEngine implements RdpEngine {
  async connect(options: RdpConnectOptions): Promise<RdpSession> {
    const wasm = await _wasm();
    const canvas = new FrameCanvas(options.width, options.height);
    let gatewayError: Error | undefined;
    let certSha256 = '';
    let selectedProtocol = -1;
    let onGatewayEnd: ((error?: Error) => void) | undefined;
    const gateway = registerGateway((link) => acceptRDCleanPath(link, {
      host: options.host,
      port: options.port,
      serverCertSha256: options.serverCertSha256,
      timeoutMs: options.timeoutMs,
      remoteFx: options.remoteFx,
      onConnected: (info) => {
        certSha256 = info.certSha256;
        selectedProtocol = info.selectedProtocol;
      },
      onEnd: (error) => {
        gatewayError ??= error;
        onGatewayEnd?.(error);
      },
    }));
    const builder = new wasm.SessionBuilder()
      .username(options.credentials.username)
      .password(options.credentials.password)
      .destination(`${options.host}:${options.port}`)
      .proxyAddress(gateway.url)
      .authToken('in-process')
      .desktopSize(new wasm.DesktopSize(options.width, options.height))
      .renderCanvas(canvas as unknown as Parameters<Wasm.SessionBuilder['renderCanvas']>[0])
      .setCursorStyleCallback(() => {})
      .setCursorStyleCallbackContext({})
      .canvasResizedCallback(() => {});
    if (options.credentials.domain) builder.serverDomain(options.credentials.domain);
    const session = new IronRdpSession(wasm, canvas);
    builder.remoteClipboardChangedCallback((data: Wasm.ClipboardData) => session.remoteClipboard(data));
    // No forceClipboardUpdateCallback: without one the wasm answers the host's Monitor Ready with
    // an empty format list itself, which completes the clipboard channel's start. A no-op callback
    // here left the channel half-started and no text crossed either way.
    let connected: Wasm.Session;
    const timeoutMs = options.timeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      connected = await Promise.race([
        builder.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new RdpConnectError(`the RDP connection to ${options.host}:${options.port} did not complete within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      throw gatewayError ?? _connectError(error, options, selectedProtocol);
    } finally {
      clearTimeout(timer);
      gateway.remove();
    }
    onGatewayEnd = (error) => session.gatewayEnded(error);
    session.start(connected, certSha256);
    return session;
  }
}

/** Turns what the wasm threw (an IronError or anything) into an RdpConnectError with a reason a person can act on. */
function _connectError(error: unknown, options: RdpConnectOptions, selectedProtocol: number): RdpConnectError {
  const where = `${options.host}:${options.port}`;
  // PROTOCOL_HYBRID(_EX): the host ran CredSSP; a host that drops the connection there refused the credentials.
  const nla = selectedProtocol > 0 && (selectedProtocol & 0xa) !== 0;
  if (nla && !(error instanceof RdpConnectError)) {
    return new RdpConnectError(`cannot connect to the RDP host ${where}: NLA (CredSSP) authentication failed; check the user name, domain and password configured for this login (${_describe(error)})`);
  }
  const iron = error as { kind?: () => number; backtrace?: () => string };
  if (typeof iron?.kind === 'function') {
    const kind = iron.kind();
    const detail = (iron.backtrace?.() ?? '').split('\n')[0]?.slice(0, 300) ?? '';
    const what = ['the connection failed', 'the password was refused', 'the logon failed', 'the host denied access', 'the gateway exchange failed', 'the gateway could not be reached', 'the protocol negotiation failed'][kind] ?? 'the connection failed';
    return new RdpConnectError(`cannot connect to the RDP host ${where}: ${what}${detail ? ` (${detail})` : ''}`);
  }
  return new RdpConnectError(`cannot connect to the RDP host ${where}: ${error instanceof Error ? error.message : String(error)}`);
}

/** One ironrdp-wasm Session behind the RdpSession interface. */
class IronRdpSession extends EventEmitter<RdpSessionEvents> implements RdpSession {
  readonly #wasm: WasmModule;
  readonly #canvas: FrameCanvas;
  #session: Wasm.Session | undefined;
  #certSha256 = '';
  #closed = false;

  constructor(wasm: WasmModule, canvas: FrameCanvas) {
    super();
    this.#wasm = wasm;
    this.#canvas = canvas;
    canvas.onRects = () => {
      const rects = canvas.takeRects();
      if (rects.length && !this.#closed) this.emit('rects', rects);
    };
    canvas.onResize = (width, height) => {
      if (!this.#closed) this.emit('resize', width, height);
    };
  }

  get width(): number {
    return this.#canvas.width;
  }

  get height(): number {
    return this.#canvas.height;
  }

  get serverCertSha256(): string {
    return this.#certSha256;
  }

  start(session: Wasm.Session, certSha256: string): void {
    this.#session = session;
    this.#certSha256 = certSha256;
    session.run().then(
      (info) => this.#end(undefined, info.reason()),
      (error: unknown) => this.#end(new RdpSessionError(`the RDP session ended with an error: ${_describe(error)}`)),
    );
  }

  gatewayEnded(error?: Error): void {
    if (error) this.#end(error);
  }

  snapshot(): FrameRect {
    return this.#canvas.snapshot();
  }

  mouseMove(x: number, y: number): void {
    this.#apply([this.#wasm.DeviceEvent.mouseMove(_clamp(x, this.width), _clamp(y, this.height))]);
  }

  mouseButton(button: MouseButton, down: boolean): void {
    this.#apply([down ? this.#wasm.DeviceEvent.mouseButtonPressed(button) : this.#wasm.DeviceEvent.mouseButtonReleased(button)]);
  }

  wheel(amount: number, horizontal = false): void {
    this.#apply([this.#wasm.DeviceEvent.wheelRotations(!horizontal, Math.trunc(amount), this.#wasm.RotationUnit.Pixel)]);
  }

  key(scancode: number, down: boolean): void {
    this.#apply([down ? this.#wasm.DeviceEvent.keyPressed(scancode) : this.#wasm.DeviceEvent.keyReleased(scancode)]);
  }

  async clipboardText(text: string): Promise<void> {
    if (!this.#session || this.#closed) return;
    const data = new this.#wasm.ClipboardData();
    data.addText('text/plain', text);
    await this.#session.onClipboardPaste(data);
  }

  resize(width: number, height: number): void {
    if (!this.#session || this.#closed) return;
    this.#session.resize(width, height);
  }

  close(): void {
    if (this.#closed) return;
    try {
      this.#session?.shutdown();
    } catch {
      // Already ending: run() settles and #end runs.
    }
    this.#end();
  }

  remoteClipboard(data: Wasm.ClipboardData): void {
    for (const item of data.items()) {
      if (item.mimeType() === 'text/plain') {
        const value = item.value() as unknown;
        if (typeof value === 'string') this.emit('clipboard', value);
      }
    }
  }

  #apply(events: Wasm.DeviceEvent[]): void {
    if (!this.#session || this.#closed) return;
    const transaction = new this.#wasm.InputTransaction();
    for (const event of events) transaction.addEvent(event);
    this.#session.applyInputs(transaction);
  }

  #end(error?: Error, reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close', error, reason);
  }
}

function _clamp(value: number, max: number): number {
  return Math.max(0, Math.min(max - 1, Math.trunc(value)));
}

function _describe(error: unknown): string {
  const iron = error as { backtrace?: () => string };
  if (typeof iron?.backtrace === 'function') return iron.backtrace().split('\n')[0]?.slice(0, 300) ?? 'unknown';
  return error instanceof Error ? error.message : String(error);
}
