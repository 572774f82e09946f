import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { TunnelClosedError, TunnelDialTimeoutError, TunnelRejectedError, type DialOptions, type ProxyTunnel } from '../../protocols/tunnel/index.ts';
import { TunnelNotFoundError } from './errors.ts';
import type { DialOutcome } from './proxy-metrics.ts';

/** What is known of one connected tunnel. */
export interface TunnelInfo {
  hostId: string;
  nodeName: string;
  systemRoles: string[];
  remoteAddr: string;
  connectedAt: Date;
}

/** A tunnel and what is known of it. */
export interface TunnelEntry extends TunnelInfo {
  tunnel: ProxyTunnel;
}

/** What one dial did, for metrics and logs. */
export interface DialRecord {
  hostId: string;
  service: string;
  outcome: DialOutcome;
  seconds: number;
  error?: Error;
}

/** Events of {@link TunnelRegistry}. */
export interface TunnelRegistryEvents {
  add: [entry: TunnelInfo];
  remove: [entry: TunnelInfo, reason: TunnelClosedError];
  dial: [record: DialRecord];
}

/** Options for {@link TunnelRegistry}. */
export interface TunnelRegistryOptions {
  /** Tunnels kept per host; a newer one beyond this closes the oldest. Default 4. */
  maxPerHost?: number;
}

function _outcome(error: unknown): DialOutcome {
  if (error instanceof TunnelRejectedError) return 'rejected';
  if (error instanceof TunnelDialTimeoutError) return 'timeout';
  if (error instanceof TunnelNotFoundError) return 'no-tunnel';
  return 'error';
}

/**
 * The reverse tunnels connected to this proxy, by host id. A host may briefly hold two
 * (a reconnect racing the old tunnel's keepalive): dials use the newest open one, and a
 * tunnel leaves the registry when it closes.
 *
 * @example
 * registry.add({ hostId, nodeName, systemRoles, remoteAddr, connectedAt: new Date(), tunnel });
 * const stream = await registry.dial(hostId, 'ssh', identityHeader);
 * await pipeBidirectional(clientSocket, stream);
 */
export class TunnelRegistry extends EventEmitter<TunnelRegistryEvents> {
  readonly #byHost = new Map<string, TunnelEntry[]>();
  /** Kept as a running count: metrics read it on every add and remove, across thousands of hosts. */
  #count = 0;
  readonly #maxPerHost: number;

  constructor(options: TunnelRegistryOptions = {}) {
    super();
    this.#maxPerHost = options.maxPerHost ?? 4;
  }

  /** Registers a tunnel until it closes. */
  add(entry: TunnelEntry): void {
    const entries = this.#byHost.get(entry.hostId) ?? [];
    entries.push(entry);
    this.#count++;
    this.#byHost.set(entry.hostId, entries);
    entry.tunnel.once('close', (reason) => this.#remove(entry, reason));
    this.emit('add', _info(entry));
    // A host reconnecting in a loop must not pile up tunnels: the oldest goes.
    const excess = entries.filter((e) => !e.tunnel.closed).slice(0, -this.#maxPerHost);
    for (const old of excess) old.tunnel.destroy(new Error(`host ${entry.hostId} opened more than ${this.#maxPerHost} tunnels`));
  }

  /** Every connected tunnel, oldest first. */
  list(): TunnelInfo[] {
    return [...this.#byHost.values()].flat().map(_info);
  }

  /** Connected tunnels in all. */
  get size(): number {
    return this.#count;
  }

  /** True when `hostId` has an open tunnel. */
  has(hostId: string): boolean {
    return this.#open(hostId).length > 0;
  }

  /**
   * Opens one stream to `service` on host `hostId` through its newest open tunnel
   * (an older one if the newest closed meanwhile); rejects with TunnelNotFoundError
   * when the host has none, or with the tunnel's error (TunnelRejectedError, ...).
   */
  async dial(hostId: string, service: string, identity: string, options?: DialOptions): Promise<Duplex> {
    const started = performance.now();
    const record = (outcome: DialOutcome, error?: Error): void => {
      this.emit('dial', { hostId, service, outcome, seconds: (performance.now() - started) / 1000, error });
    };
    let lastError: unknown = new TunnelNotFoundError(hostId);
    for (const entry of this.#open(hostId).reverse()) {
      try {
        const stream = await entry.tunnel.dial(service, identity, options);
        record('ok');
        return stream;
      } catch (error) {
        lastError = error;
        if (!(error instanceof TunnelClosedError)) break; // only a tunnel that went away is worth another try
      }
    }
    record(_outcome(lastError), lastError as Error);
    throw lastError;
  }

  /** Closes every tunnel at once. */
  closeAll(): void {
    for (const entry of [...this.#byHost.values()].flat()) entry.tunnel.destroy();
  }

  #open(hostId: string): TunnelEntry[] {
    return (this.#byHost.get(hostId) ?? []).filter((entry) => !entry.tunnel.closed);
  }

  #remove(entry: TunnelEntry, reason: TunnelClosedError): void {
    const entries = this.#byHost.get(entry.hostId);
    const index = entries?.indexOf(entry) ?? -1;
    if (entries === undefined || index < 0) return;
    entries.splice(index, 1);
    this.#count--;
    if (entries.length === 0) this.#byHost.delete(entry.hostId);
    this.emit('remove', _info(entry), reason);
  }
}

function _info(entry: TunnelEntry): TunnelInfo {
  return { hostId: entry.hostId, nodeName: entry.nodeName, systemRoles: entry.systemRoles, remoteAddr: entry.remoteAddr, connectedAt: entry.connectedAt };
}
