/**
 * Heartbeats: the agent tells auth it is alive, what it runs and its labels.
 *
 * The first one goes out as soon as a tunnel is up (the node is reachable from then
 * on), again whenever the tunnels come back after all were down, then every
 * `interval_seconds` the server answers with, and early (debounced) when a label or
 * the set of services changes. A failed heartbeat is retried with back-off, never
 * later than the regular interval.
 */
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import type { Logger } from '../../cluster/common/logger.ts';
import type { InventorySnapshot } from '../inventory/inventory.ts';
import type { ServedResource } from '../../cluster/access/resources/served-resource.ts';
import { backoffDelay } from '../supervisor/backoff.ts';
import type { ServiceHealth, SupervisedService } from '../supervisor/service.ts';

/** The tunnel pool as the heartbeat sees it. */
export interface TunnelState {
  readonly connected: number;
  on(event: 'up', listener: () => void): unknown;
  off(event: 'up', listener: () => void): unknown;
}

/** Options for {@link HeartbeatLoop}. */
export interface HeartbeatOptions {
  /** The auth client to use now (it changes after a renewal). */
  auth: () => AuthClient;
  inventory: { snapshot(): InventorySnapshot; onChange(listener: () => void): () => void };
  /** Services the agent serves through its tunnels. */
  services: () => string[];
  /** Databases, apps, Kubernetes clusters and desktops it serves (registry.served()). */
  served?: () => readonly ServedResource[];
  /** Subscribes to changes of the service list; returns the unsubscribe. */
  onServicesChange?: (listener: () => void) => () => void;
  tunnels: TunnelState;
  logger: Logger;
  random?: () => number;
  /** Until the server names one. Default 10 s. */
  defaultIntervalMs?: number;
  /** Label changes within this window go out as one heartbeat. Default 200 ms. */
  debounceMs?: number;
  /** Deadline of one heartbeat call. Default 10 s. */
  timeoutMs?: number;
}

/** What the last heartbeat did. */
export interface HeartbeatStatus {
  sent: number;
  failures: number;
  lastOk?: string;
  lastError?: string;
  intervalMs: number;
}

const minIntervalMs = 1_000;
const maxIntervalMs = 5 * 60_000;

/** Sends heartbeats to auth; runs under the ServiceSupervisor as `heartbeat`. */
export class HeartbeatLoop implements SupervisedService {
  readonly name = 'heartbeat';
  readonly #options: HeartbeatOptions;
  readonly #log: Logger;
  #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #pending = false;
  #running = false;
  #begun = false;
  #sent = 0;
  #failures = 0;
  #lastOk: Date | undefined;
  #lastError: string | undefined;
  #unsubscribe: Array<() => void> = [];

  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: 'heartbeat' });
    this.#intervalMs = options.defaultIntervalMs ?? 10_000;
  }

  /** Subscribes to the tunnels and labels; the first heartbeat waits for a tunnel. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const onUp = (): void => {
      // The first tunnel after none: announce at once.
      if (this.#options.tunnels.connected === 1) this.#schedule(0);
    };
    const onChange = (): void => {
      if (!this.#begun) return; // the first heartbeat will carry it
      // A heartbeat under way took its snapshot already: send another when it is done.
      if (this.#inFlight) this.#pending = true;
      else this.#schedule(this.#options.debounceMs ?? 200);
    };
    this.#options.tunnels.on('up', onUp);
    this.#unsubscribe = [
      () => void this.#options.tunnels.off('up', onUp),
      this.#options.inventory.onChange(onChange),
      this.#options.onServicesChange?.(onChange) ?? (() => {}),
    ];
    if (this.#options.tunnels.connected > 0) this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#unsubscribe = [];
    await this.#inFlight;
  }

  /** Ready once a heartbeat went through and the latest one did not fail. */
  health(): ServiceHealth {
    if (this.#lastOk === undefined) return { ok: false, detail: this.#lastError ?? 'waiting for the first tunnel to announce the node' };
    if (this.#failures > 0) return { ok: false, detail: `the last ${this.#failures} heartbeats failed: ${this.#lastError}` };
    return { ok: true, detail: `last heartbeat ${this.#lastOk.toISOString()}` };
  }

  status(): HeartbeatStatus {
    const row: HeartbeatStatus = { sent: this.#sent, failures: this.#failures, intervalMs: this.#intervalMs };
    if (this.#lastOk) row.lastOk = this.#lastOk.toISOString();
    if (this.#lastError !== undefined) row.lastError = this.#lastError;
    return row;
  }

  /** Sends a heartbeat now (joining one under way) and resolves when it is done. */
  beat(): Promise<void> {
    if (this.#inFlight) {
      this.#pending = true;
      return this.#inFlight;
    }
    clearTimeout(this.#timer);
    this.#begun = true;
    this.#inFlight = this.#send().finally(() => {
      this.#inFlight = undefined;
      if (this.#pending && this.#running) {
        this.#pending = false;
        void this.beat();
      }
    });
    return this.#inFlight;
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.beat(), delayMs);
  }

  async #send(): Promise<void> {
    try {
      const snapshot = this.#options.inventory.snapshot();
      const response = await this.#options.auth().heartbeat(
        { inventoryJson: JSON.stringify(snapshot), services: this.#options.services(), publicAddr: '', servedJson: JSON.stringify(this.#options.served?.() ?? []) },
        { deadlineMs: this.#options.timeoutMs ?? 10_000 },
      );
      const fromServer = Number(response.intervalSeconds) * 1000;
      this.#intervalMs = Math.min(maxIntervalMs, Math.max(minIntervalMs, fromServer || this.#intervalMs));
      if (this.#failures > 0) this.#log.info({ after: this.#failures }, 'heartbeats go through again');
      this.#sent++;
      this.#failures = 0;
      this.#lastError = undefined;
      this.#lastOk = new Date();
      this.#schedule(this.#intervalMs);
    } catch (error) {
      this.#failures++;
      this.#lastError = (error as Error).message;
      const retryMs = Math.max(500, Math.min(this.#intervalMs, backoffDelay(this.#failures, (this.#options.random ?? Math.random)(), { baseMs: 1000, maxMs: this.#intervalMs })));
      this.#log[this.#failures === 1 ? 'warn' : 'debug']({ err: error, retryInMs: retryMs }, 'heartbeat failed');
      this.#schedule(retryMs);
    }
  }
}
