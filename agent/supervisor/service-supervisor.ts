/**
 * Keeps the agent's services (SSH, databases, apps, the tunnel) running.
 *
 *   run(service) --> starting --start() resolves--> running
 *                      ^     |                            |
 *                      |     | start() rejects            | handle.fail(error)
 *                      |     v                            |
 *                      +-- backoff <----------------------+
 *        (delay elapsed and stop() done)
 *   after maxConsecutiveFailures in a row: failed instead of backoff (no more restarts)
 *   stopAll(deadline): every state -> stopped
 *
 * The contract a service keeps is in service.ts.
 *
 * Restarts wait a jittered exponential delay (backoff.ts) that runs alongside `stop()`.
 * A run that stayed up for `stableAfterMs` resets the delay to its base.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../cluster/common/logger.ts';
import { systemClock, type Clock } from '../../cluster/common/clock.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { ServiceStopTimeoutError, SupervisorStateError } from './errors.ts';
import type { ServiceHandle, ServiceHealth, ServiceState, SupervisedService } from './service.ts';

export type { ServiceHandle, ServiceHealth, ServiceState, SupervisedService } from './service.ts';

export interface ServiceStatus {
  name: string;
  state: ServiceState;
  restarts: number;
  lastError?: string;
  /** When the service entered its state, RFC 3339. */
  since: string;
  /** Present while running, for services that report health. */
  health?: ServiceHealth;
}

export interface ServiceTransition {
  name: string;
  from: ServiceState;
  to: ServiceState;
  restarts: number;
  error?: string;
  /** For `backoff`: the delay before the next start. */
  delayMs?: number;
}

export interface SupervisorEvents {
  transition: [ServiceTransition];
}

export interface SupervisorOptions {
  logger: Logger;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** Source of jitter in [0, 1); tests fix it. */
  random?: () => number;
  /** A run that stays up this long resets the back-off. Default 60 s. */
  stableAfterMs?: number;
  /** Give up (state `failed`) after this many failures in a row. Default: never. */
  maxConsecutiveFailures?: number;
  /** How long `stop()` may take after a failure before the restart goes ahead anyway. Default 10 s. */
  stopTimeoutMs?: number;
}

/** What `stopAll` managed within its deadline. */
export interface StopReport {
  stopped: string[];
  timedOut: string[];
}

interface _Run {
  readonly controller: AbortController;
  ended: boolean;
  runningSince?: number;
}

interface _Entry {
  readonly service: SupervisedService;
  state: ServiceState;
  since: Date;
  restarts: number;
  /** Failures in a row; the back-off exponent. */
  failures: number;
  lastError?: string;
  run?: _Run;
  timer?: NodeJS.Timeout;
  /** The `stop()` after a failure, while it runs. */
  cleanup?: Promise<void>;
}

/** Starts services, restarts them with back-off when they fail, and stops them all within a deadline. */
export class ServiceSupervisor extends EventEmitter<SupervisorEvents> {
  readonly #entries = new Map<string, _Entry>();
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #stableAfterMs: number;
  readonly #maxFailures: number;
  readonly #stopTimeoutMs: number;
  #closed = false;

  constructor(options: SupervisorOptions) {
    super();
    this.#log = options.logger.child({ component: 'supervisor' });
    this.#clock = options.clock ?? systemClock;
    this.#backoff = options.backoff ?? {};
    this.#random = options.random ?? Math.random;
    this.#stableAfterMs = options.stableAfterMs ?? 60_000;
    this.#maxFailures = options.maxConsecutiveFailures ?? Infinity;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  }

  /** Starts supervising `service` now; throws SupervisorStateError for a duplicate name or after stopAll. */
  run(service: SupervisedService): void {
    if (this.#closed) throw new SupervisorStateError(`cannot start service ${service.name}: the supervisor is stopping`);
    if (this.#entries.has(service.name)) {
      throw new SupervisorStateError(`service ${service.name} is supervised already; give each service its own name`);
    }
    const entry: _Entry = { service, state: 'stopped', since: this.#clock.now(), restarts: 0, failures: 0 };
    this.#entries.set(service.name, entry);
    this.#launch(entry);
  }

  /** One row per service, in the order they were added. */
  status(): ServiceStatus[] {
    return [...this.#entries.values()].map((entry) => {
      const row: ServiceStatus = { name: entry.service.name, state: entry.state, restarts: entry.restarts, since: entry.since.toISOString() };
      if (entry.lastError !== undefined) row.lastError = entry.lastError;
      if (entry.state === 'running' && entry.service.health) row.health = _health(entry.service);
      return row;
    });
  }

  /** True when every service is running and none reports itself unhealthy. */
  ready(): boolean {
    return this.status().every((row) => row.state === 'running' && row.health?.ok !== false);
  }

  /** Stops every service in parallel; resolves by `deadlineMs` with the ones that had not finished. */
  async stopAll(deadlineMs: number): Promise<StopReport> {
    this.#closed = true;
    const deadline = _delay(deadlineMs);
    try {
      const outcomes = await Promise.all(
        [...this.#entries.values()].map(async (entry) => {
          const done = await Promise.race([this.#stopEntry(entry).then(() => true), deadline.promise.then(() => false)]);
          if (!done) this.#noteStopTimeout(entry, deadlineMs);
          return { name: entry.service.name, done };
        }),
      );
      return { stopped: outcomes.filter((o) => o.done).map((o) => o.name), timedOut: outcomes.filter((o) => !o.done).map((o) => o.name) };
    } finally {
      deadline.cancel();
    }
  }

  #launch(entry: _Entry): void {
    const run: _Run = { controller: new AbortController(), ended: false };
    entry.run = run;
    this.#transition(entry, 'starting');
    const handle: ServiceHandle = { restarts: entry.restarts, fail: (error) => this.#onFailure(entry, run, error) };
    let started: Promise<void>;
    try {
      started = Promise.resolve(entry.service.start(run.controller.signal, handle));
    } catch (error) {
      started = Promise.reject(error);
    }
    started.then(
      () => this.#onStarted(entry, run),
      (error: unknown) => this.#onFailure(entry, run, error),
    );
  }

  #onStarted(entry: _Entry, run: _Run): void {
    if (run.ended) return;
    run.runningSince = this.#clock.now().getTime();
    this.#transition(entry, 'running');
  }

  #onFailure(entry: _Entry, run: _Run, error: unknown): void {
    if (run.ended || this.#closed) return;
    run.ended = true;
    run.controller.abort(error);
    const upFor = run.runningSince === undefined ? 0 : this.#clock.now().getTime() - run.runningSince;
    if (upFor >= this.#stableAfterMs) entry.failures = 0;
    entry.failures += 1;
    entry.lastError = _describe(error);
    entry.cleanup = this.#stopService(entry).finally(() => (entry.cleanup = undefined));
    if (entry.failures >= this.#maxFailures) {
      entry.run = undefined;
      this.#transition(entry, 'failed', { error: entry.lastError });
      return;
    }
    const delayMs = backoffDelay(entry.failures - 1, this.#random(), this.#backoff);
    this.#transition(entry, 'backoff', { error: entry.lastError, delayMs });
    const waited = new Promise<void>((resolve) => (entry.timer = setTimeout(resolve, delayMs)));
    void Promise.all([entry.cleanup, waited]).then(() => {
      entry.timer = undefined;
      if (this.#closed || entry.run !== run) return;
      entry.restarts += 1;
      this.#launch(entry);
    });
  }

  /** Calls the service's stop() after a failure, bounded by stopTimeoutMs; never rejects. */
  async #stopService(entry: _Entry): Promise<void> {
    const limit = _delay(this.#stopTimeoutMs);
    try {
      const stopped = Promise.resolve().then(() => entry.service.stop());
      const inTime = await Promise.race([stopped.then(() => true), limit.promise.then(() => false)]);
      if (!inTime) this.#log.warn({ service: entry.service.name, err: new ServiceStopTimeoutError(entry.service.name, this.#stopTimeoutMs) }, 'service stop timed out; restarting anyway');
    } catch (error) {
      this.#log.warn({ service: entry.service.name, err: error }, 'service stop failed');
    } finally {
      limit.cancel();
    }
  }

  async #stopEntry(entry: _Entry): Promise<void> {
    clearTimeout(entry.timer);
    const run = entry.run;
    entry.run = undefined;
    if (run && !run.ended) {
      run.ended = true;
      run.controller.abort(new SupervisorStateError('the supervisor is stopping'));
      try {
        await entry.service.stop();
      } catch (error) {
        entry.lastError = _describe(error);
        this.#log.warn({ service: entry.service.name, err: error }, 'service stop failed');
      }
    } else if (entry.cleanup) {
      await entry.cleanup;
    }
    this.#transition(entry, 'stopped');
  }

  #noteStopTimeout(entry: _Entry, deadlineMs: number): void {
    const error = new ServiceStopTimeoutError(entry.service.name, deadlineMs);
    entry.lastError = error.message;
    this.#log.warn({ service: entry.service.name, err: error }, 'service did not stop by the deadline');
  }

  #transition(entry: _Entry, to: ServiceState, extra: { error?: string; delayMs?: number } = {}): void {
    const from = entry.state;
    if (from === to) return;
    entry.state = to;
    entry.since = this.#clock.now();
    const event: ServiceTransition = { name: entry.service.name, from, to, restarts: entry.restarts, ...extra };
    const level = to === 'backoff' || to === 'failed' ? 'warn' : 'info';
    this.#log[level]({ service: event.name, from, to, restarts: event.restarts, error: extra.error, delayMs: extra.delayMs }, `service ${to}`);
    this.emit('transition', event);
  }
}

function _health(service: SupervisedService): ServiceHealth {
  try {
    return service.health?.() ?? { ok: true };
  } catch (error) {
    return { ok: false, detail: `health check threw: ${_describe(error)}` };
  }
}

function _describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function _delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}
