/**
 * Tunnel streams kept open between requests, by key (one caller's dial: service,
 * cluster, identity, headers), for the proxy's HTTP/2 app path (app-http2-forwarder.ts).
 *
 * ```
 * take(key) ─ an idle stream of that key, younger than maxAgeMs ─> used at once
 *           └ none: dial ─> a new stream
 * one exchange (request out, answer in) ─ release: clean, back to the idle list
 *                                       └ discard: destroyed (half-sent, half-read, broken)
 * idle longer than idleMs, or older than maxAgeMs: ended
 * ```
 *
 * A stream carries one exchange at a time; its listeners are attached once, when it is
 * dialed, and hand events to whoever holds it (`user`). Bytes on an idle stream, or its
 * end, retire it. A stream older than `maxAgeMs` is not reused, so the agent decides
 * again (roles change) at the next dial, as the HTTP/1.1 fast path does.
 */
import type { Duplex } from 'node:stream';
import type { ServiceDialRequest } from './service-dialer.ts';

/** Who holds a stream for one exchange: its events go there. */
export interface TunnelStreamUser {
  onData(chunk: Buffer): void;
  /** The agent ended its side. */
  onEnd(): void;
  /** The stream is gone (after onEnd, or without it when it broke). */
  onClose(): void;
  onDrain(): void;
}

export interface TunnelStreamPoolOptions {
  dial: (request: ServiceDialRequest) => Promise<Duplex>;
  /** Idle streams are ended after this long unused. Default 60 s. */
  idleMs?: number;
  /** A stream dialed longer ago than this is not reused. Default 60 s. */
  maxAgeMs?: number;
  /** Idle streams kept per key; more are ended when released. Default 64. */
  maxIdlePerKey?: number;
}

/** One tunnel stream of a {@link TunnelStreamPool}. */
export class PooledTunnelStream {
  readonly stream: Duplex;
  readonly key: string;
  /** When it was dialed (performance.now()). */
  readonly since: number;
  /** Who gets its events now; undefined while idle. */
  user: TunnelStreamUser | undefined;
  /** When it went idle last. */
  idleSince = 0;
  /** The agent ended its side: nothing more comes, it cannot carry another exchange. */
  ended = false;
  closed = false;

  constructor(stream: Duplex, key: string, onIdleGone: (s: PooledTunnelStream) => void) {
    this.stream = stream;
    this.key = key;
    this.since = performance.now();
    stream.on('data', (chunk: Buffer) => {
      if (this.user) this.user.onData(chunk);
      // Bytes nobody asked for: the stream is out of step with its answers.
      else stream.destroy();
    });
    stream.once('end', () => {
      this.ended = true;
      if (this.user) this.user.onEnd();
      else stream.destroy();
    });
    stream.once('close', () => {
      this.closed = true;
      if (this.user) this.user.onClose();
      else onIdleGone(this);
    });
    stream.on('drain', () => this.user?.onDrain());
    stream.on('error', _noop);
  }
}

/** Idle tunnel streams by key; see the file comment. */
export class TunnelStreamPool {
  readonly #dial: TunnelStreamPoolOptions['dial'];
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #maxIdlePerKey: number;
  readonly #idle = new Map<string, PooledTunnelStream[]>();
  /** Every stream dialed and not yet closed (idle or in use), for close(). */
  readonly #live = new Set<PooledTunnelStream>();
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;

  constructor(options: TunnelStreamPoolOptions) {
    this.#dial = options.dial;
    this.#idleMs = options.idleMs ?? 60_000;
    this.#maxAgeMs = options.maxAgeMs ?? 60_000;
    this.#maxIdlePerKey = options.maxIdlePerKey ?? 64;
    // A sweep every quarter of the idle time: idle streams end between idleMs and 1.25 idleMs.
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.min(this.#idleMs, this.#maxAgeMs) / 4));
    this.#sweeper.unref();
  }

  /** Streams open now, and of those the idle ones. */
  get size(): { live: number; idle: number } {
    let idle = 0;
    for (const list of this.#idle.values()) idle += list.length;
    return { live: this.#live.size, idle };
  }

  /** An idle stream for `key` at once, else a newly dialed one (rejects as the dial does). */
  take(key: string, request: ServiceDialRequest): PooledTunnelStream | Promise<PooledTunnelStream> {
    const list = this.#idle.get(key);
    if (list) {
      const oldest = performance.now() - this.#maxAgeMs;
      // The most recently used first: the others are the first to go idle for good.
      for (let s = list.pop(); s; s = list.pop()) {
        if (!s.closed && !s.ended && s.since >= oldest) {
          if (list.length === 0) this.#idle.delete(key);
          return s;
        }
        this.#retire(s);
      }
      this.#idle.delete(key);
    }
    return this.#open(key, request);
  }

  /** Gives back a stream whose exchange is complete (request sent, answer read): reused or, if too old, ended. */
  release(s: PooledTunnelStream): void {
    s.user = undefined;
    if (s.closed) return;
    if (this.#closed || s.ended || performance.now() - s.since > this.#maxAgeMs) return this.#retire(s);
    let list = this.#idle.get(s.key);
    if (!list) {
      list = [];
      this.#idle.set(s.key, list);
    }
    if (list.length >= this.#maxIdlePerKey) return this.#retire(s);
    s.idleSince = performance.now();
    list.push(s);
  }

  /** Destroys a stream that must not carry anything more (a request half-sent, an answer half-read, a failure). */
  discard(s: PooledTunnelStream): void {
    s.user = undefined;
    s.stream.destroy();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const s of this.#live) s.stream.destroy();
    this.#live.clear();
    this.#idle.clear();
  }

  async #open(key: string, request: ServiceDialRequest): Promise<PooledTunnelStream> {
    const stream = await this.#dial(request);
    if (this.#closed) {
      stream.destroy();
      throw new Error('the app proxy is shutting down');
    }
    const s = new PooledTunnelStream(stream, key, (gone) => this.#forgetIdle(gone));
    this.#live.add(s);
    stream.once('close', () => this.#live.delete(s));
    return s;
  }

  /** Ends a clean stream (the agent ends its side and lets its upstream connection go). */
  #retire(s: PooledTunnelStream): void {
    if (s.closed) return;
    s.user = undefined;
    s.stream.end();
    // An agent that never ends its side does not keep the stream open.
    const timer = setTimeout(() => s.stream.destroy(), 5_000).unref();
    s.stream.once('close', () => clearTimeout(timer));
  }

  #forgetIdle(s: PooledTunnelStream): void {
    const list = this.#idle.get(s.key);
    if (!list) return;
    const at = list.indexOf(s);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#idle.delete(s.key);
  }

  #sweep(): void {
    const now = performance.now();
    for (const [key, list] of this.#idle) {
      const kept = list.filter((s) => {
        const keep = !s.closed && !s.ended && now - s.idleSince <= this.#idleMs && now - s.since <= this.#maxAgeMs;
        if (!keep) this.#retire(s);
        return keep;
      });
      if (kept.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, kept);
    }
  }
}

function _noop(): void {}
