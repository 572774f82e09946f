/**
 * A WebSocket that never leaves the process: ironrdp-wasm talks RDCleanPath to its
 * gateway over a browser WebSocket; in Node the engine registers a gateway under a
 * `ws://postern-rdp.invalid/<id>` URL and the wasm's `new WebSocket(url)` gets this
 * object instead of a network socket. Any other URL goes to Node's own WebSocket.
 *
 * Messages towards the wasm are queued and dispatched one per macrotask (never
 * re-entering the wasm while it runs); `queuedBytes` lets the gateway stop reading the
 * RDP host while the wasm is behind.
 */

export const IN_PROCESS_PREFIX = 'ws://postern-rdp.invalid/';

/** The gateway's end of one in-process socket. */
export interface GatewayEnd {
  /** Bytes the wasm sent. */
  onMessage(bytes: Buffer): void;
  /** The wasm closed its end. */
  onClose(): void;
}

/** What a gateway is handed when the wasm connects. */
export interface ClientLink {
  send(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
  /** Bytes queued towards the wasm and not yet dispatched. */
  readonly queuedBytes: number;
  /** Called whenever the queue towards the wasm empties. */
  onDrain?: () => void;
}

type Accept = (link: ClientLink) => GatewayEnd;
const gateways = new Map<string, Accept>();
let nextId = 0;

/** Registers a gateway for one connection; returns its URL and the removal. */
export function registerGateway(accept: Accept): { url: string; remove: () => void } {
  const id = `g${++nextId}-${process.pid}`;
  gateways.set(id, accept);
  return { url: `${IN_PROCESS_PREFIX}${id}`, remove: () => void gateways.delete(id) };
}

/** The browser-shaped socket the wasm holds. */
export class InProcessWebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly url: string;
  readyState = 0;
  binaryType: 'arraybuffer' | 'blob' = 'blob';
  protocol = '';
  extensions = '';
  bufferedAmount = 0;
  #end: GatewayEnd | undefined;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #scheduled = false;
  #closing = false;
  #sending: Promise<void> | undefined;
  #link: ClientLink;

  constructor(url: string) {
    super();
    this.url = url;
    const accept = gateways.get(url.slice(IN_PROCESS_PREFIX.length));
    gateways.delete(url.slice(IN_PROCESS_PREFIX.length));
    const socket = this;
    this.#link = {
      send: (bytes) => socket.#enqueue(Buffer.from(bytes)),
      close: (code, reason) => socket.#closeFromGateway(code, reason),
      get queuedBytes() {
        return socket.#queuedBytes;
      },
    };
    setImmediate(() => {
      if (!accept) {
        this.dispatchEvent(new Event('error'));
        this.#finish(1006, 'no in-process RDCleanPath gateway is registered for this URL', false);
        return;
      }
      this.readyState = 1;
      this.#end = accept(this.#link);
      this.dispatchEvent(new Event('open'));
    });
  }

  send(data: ArrayBufferView | ArrayBuffer | Blob | string): void {
    if (this.readyState !== 1) return;
    // The wasm sends Blobs, whose bytes come asynchronously: keep the order through one chain.
    if (data instanceof Blob || this.#sending) {
      const previous = this.#sending ?? Promise.resolve();
      const bytes = data instanceof Blob ? data.arrayBuffer().then((b) => Buffer.from(b)) : Promise.resolve(_bytes(data));
      const next = previous.then(() => bytes).then((b) => {
        if (this.readyState === 1) this.#end?.onMessage(b);
      });
      this.#sending = next.finally(() => {
        if (this.#sending === chained) this.#sending = undefined;
      });
      const chained = this.#sending;
      return;
    }
    this.#end?.onMessage(_bytes(data));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this.#end?.onClose();
    setImmediate(() => this.#finish(code, reason, true));
  }

  #enqueue(bytes: Buffer): void {
    if (this.readyState !== 1 || this.#closing) return;
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const next = this.#queue.shift();
      if (!next || this.readyState !== 1) return;
      this.#queuedBytes -= next.length;
      const data = next.buffer.slice(next.byteOffset, next.byteOffset + next.length);
      this.dispatchEvent(new MessageEvent('message', { data }));
      if (this.#queue.length) this.#schedule();
      else this.#link.onDrain?.();
    });
  }

  #closeFromGateway(code: number, reason: string): void {
    if (this.#closing || this.readyState >= 2) return;
    this.#closing = true;
    // Let what is queued reach the wasm first: the close often follows the last bytes.
    const finish = (): void => {
      if (this.#queue.length || this.#scheduled) setImmediate(finish);
      else this.#finish(code, reason, code === 1000);
    };
    setImmediate(finish);
  }

  #finish(code: number, reason: string, wasClean: boolean): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.dispatchEvent(new CloseEvent('close', { code, reason, wasClean }));
  }
}

let installed = false;

/** Makes `new WebSocket(url)` hand out in-process sockets for gateway URLs (once per process). */
export function installInProcessWebSocket(): void {
  if (installed) return;
  installed = true;
  const Original = globalThis.WebSocket;
  const Dispatching = function WebSocket(this: unknown, url: string | URL, protocols?: string | string[]) {
    const text = String(url);
    if (text.startsWith(IN_PROCESS_PREFIX)) return new InProcessWebSocket(text);
    return new Original(text, protocols);
  } as unknown as typeof globalThis.WebSocket;
  Object.assign(Dispatching, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  // `x instanceof WebSocket` keeps working for Node's own sockets.
  Dispatching.prototype = Original.prototype;
  globalThis.WebSocket = Dispatching;
}

function _bytes(data: ArrayBufferView | ArrayBuffer | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data));
  return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}
