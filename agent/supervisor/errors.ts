import { PosternError } from '../../protocols/errors.ts';

/** Errors of the agent's service supervisor. */

/** `run()` after `stopAll()`, or a second service with a name already in use. */
export class SupervisorStateError extends PosternError {
  constructor(message: string) {
    super('PST_SUPERVISOR_STATE', message);
  }
}

/** A service's `stop()` did not finish within the time it was given. */
export class ServiceStopTimeoutError extends PosternError {
  readonly service: string;

  constructor(service: string, ms: number) {
    super('PST_SERVICE_STOP_TIMEOUT', `service ${service} did not stop within ${ms} ms; it may still hold its ports or files`);
    this.service = service;
  }
}
