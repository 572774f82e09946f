/**
 * What a service run by the ServiceSupervisor implements.
 *
 * The contract a service keeps:
 * - `start(signal, handle)` resolves when the service is ready (listening), rejects when
 *   it cannot start. It should give up when `signal` aborts.
 * - Once running, it reports a failure it cannot recover from with `handle.fail(error)`
 *   (a listener closed, a child process exited). Calls from an earlier run are ignored.
 * - `stop()` is called after every run, whatever ended it (a failed start, a failure,
 *   `stopAll`), possibly while `start()` is still pending; it must release what the run
 *   holds and be safe to call when little or nothing was started.
 * - `health()`, if present, is read for `status()` and `ready()`; it does not cause restarts.
 */

export type ServiceState = 'starting' | 'running' | 'backoff' | 'stopped' | 'failed';

export interface ServiceHealth {
  ok: boolean;
  detail?: string;
}

/** What the supervisor hands each run of a service. */
export interface ServiceHandle {
  /** Reports that this run has failed; the supervisor stops it and schedules a restart. */
  fail(error: unknown): void;
  /** How many times the service was restarted before this run (0 for the first). */
  readonly restarts: number;
}

export interface SupervisedService {
  readonly name: string;
  start(signal: AbortSignal, handle: ServiceHandle): Promise<void>;
  stop(): Promise<void>;
  health?(): ServiceHealth;
}
