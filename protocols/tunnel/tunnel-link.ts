/**
 * One proxy address, kept connected: dial, and when the tunnel closes or the dial
 * fails, dial again after a jittered exponential back-off (backoff.ts). A tunnel that
 * came up resets the back-off, so a proxy restart costs one short delay, not the cap.
 */
import { EventEmitter } from 'node:events';
import type { AgentTunnel } from './agent-tunnel.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';

/** The logging a link does (a pino logger fits). */
export interface LinkLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
  child(bindings: object): LinkLogger;
}

/** A tunnel that is up, and whatever the dialler learnt of its peer. */
export interface LinkTunnel<P> {
  tunnel: AgentTunnel;
  proxy: P;
}

export type LinkState = 'connecting' | 'up' | 'backoff' | 'stopped';

/** One row of `TunnelPool.status()`. */
export interface LinkStatus {
  address: string;
  state: LinkState;
  /** The proxy reached, once up (its host id when the peer has one). */
  proxyHostId?: string;
  /** When the link entered its state, RFC 3339. */
  since: string;
  /** Failed dials since the last tunnel was up. */
  failures: number;
  lastError?: string;
}

/** Options for {@link TunnelLink}. */
export interface TunnelLinkOptions<P> {
  address: string;
  dial: (address: string, signal: AbortSignal) => Promise<LinkTunnel<P>>;
  logger: LinkLogger;
  backoff?: BackoffOptions;
  random?: () => number;
  now?: () => Date;
  /** How long `stop()` lets open streams finish before it resets them. Default 2 s. */
  closeTimeoutMs?: number;
}

export interface TunnelLinkEvents<P> {
  up: [LinkTunnel<P>];
  down: [reason: Error];
}

/** Keeps one tunnel to one proxy address up; `P` is what the dialler knows of the peer. */
export class TunnelLink<P extends { hostId?: string } = { hostId?: string }> extends EventEmitter<TunnelLinkEvents<P>> {
  readonly address: string;
  readonly #options: TunnelLinkOptions<P>;
  readonly #log: LinkLogger;
  readonly #clock: { now(): Date };
  #state: LinkState = 'stopped';
  #since: Date;
  #failures = 0;
  #lastError: string | undefined;
  #open: LinkTunnel<P> | undefined;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: TunnelLinkOptions<P>) {
    super();
    this.address = options.address;
    this.#options = options;
    this.#log = options.logger.child({ proxy: options.address });
    this.#clock = { now: options.now ?? (() => new Date()) };
    this.#since = this.#clock.now();
  }

  get state(): LinkState {
    return this.#state;
  }

  /** The proxy at the other end while up. */
  get proxy(): P | undefined {
    return this.#open?.proxy;
  }

  /** The tunnel while up. */
  get tunnel(): AgentTunnel | undefined {
    return this.#open?.tunnel;
  }

  status(): LinkStatus {
    const row: LinkStatus = { address: this.address, state: this.#state, since: this.#since.toISOString(), failures: this.#failures };
    if (this.#open?.proxy.hostId !== undefined) row.proxyHostId = this.#open.proxy.hostId;
    if (this.#lastError !== undefined) row.lastError = this.#lastError;
    return row;
  }

  /** Starts dialling; does nothing when already started. */
  start(): void {
    if (this.#state !== 'stopped') return;
    this.#connect();
  }

  /**
   * Replaces a tunnel that is up with a fresh one (after the identity was renewed):
   * the new one comes up first, then the old one closes gracefully.
   */
  async refresh(): Promise<void> {
    const old = this.#open;
    if (this.#state !== 'up' || !old) return;
    const controller = new AbortController();
    this.#abort = controller;
    const fresh = await this.#options.dial(this.address, controller.signal).catch((error: unknown) => {
      this.#log.warn({ err: error }, 'could not replace the tunnel after renewal; keeping the current one');
      return undefined;
    });
    if (!fresh) return;
    if (this.#state !== 'up' || this.#open !== old) {
      fresh.tunnel.destroy();
      return;
    }
    this.#adopt(fresh); // the old tunnel's close is ignored from here on: it is no longer #open
    void old.tunnel.close();
  }

  /** Stops dialling and closes the tunnel, letting open streams finish for a moment. */
  async stop(): Promise<void> {
    this.#setState('stopped');
    clearTimeout(this.#timer);
    this.#abort?.abort();
    const open = this.#open;
    this.#open = undefined;
    if (!open) return;
    const timer = setTimeout(() => open.tunnel.destroy(), this.#options.closeTimeoutMs ?? 2000);
    await open.tunnel.close();
    clearTimeout(timer);
  }

  #connect(): void {
    this.#setState('connecting');
    const controller = new AbortController();
    this.#abort = controller;
    this.#options.dial(this.address, controller.signal).then(
      (open) => {
        if (this.#state === 'stopped') return open.tunnel.destroy();
        this.#failures = 0;
        this.#lastError = undefined;
        this.#adopt(open);
        this.#log.info({ proxyHostId: open.proxy.hostId }, 'tunnel up');
        this.emit('up', open);
      },
      (error: unknown) => {
        if (this.#state === 'stopped') return;
        this.#retry(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  #adopt(open: LinkTunnel<P>): void {
    this.#open = open;
    this.#setState('up');
    open.tunnel.once('close', (reason) => {
      if (this.#open !== open) return;
      this.#open = undefined;
      if (this.#state === 'stopped') return;
      this.#log.warn({ reason: reason.reason, err: reason }, 'tunnel closed; reconnecting');
      this.emit('down', reason);
      this.#retry(reason);
    });
  }

  #retry(error: Error): void {
    const delayMs = backoffDelay(this.#failures, (this.#options.random ?? Math.random)(), this.#options.backoff);
    const level = this.#failures === 0 ? 'warn' : 'debug';
    this.#failures++;
    this.#lastError = error.message;
    this.#log[level]({ err: error, retryInMs: delayMs, failures: this.#failures }, 'cannot reach the proxy; retrying');
    this.#setState('backoff');
    this.#timer = setTimeout(() => this.#connect(), delayMs);
  }

  #setState(state: LinkState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#since = this.#clock.now();
  }
}
