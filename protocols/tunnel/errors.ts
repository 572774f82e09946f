import { PosternError } from '../errors.ts';

/** Why a tunnel ended. */
export type TunnelCloseReason =
  | 'closed-locally'
  | 'closed-by-peer'
  | 'keepalive-timeout'
  | 'socket-error'
  | 'protocol-error';

/** The tunnel is gone; `reason` says why. Dials on a closed tunnel reject with it. */
export class TunnelClosedError extends PosternError {
  readonly reason: TunnelCloseReason;

  constructor(reason: TunnelCloseReason, message: string, options?: { cause?: unknown }) {
    super('PST_TUNNEL_CLOSED', message, options);
    this.reason = reason;
  }
}

/**
 * The agent refused a stream. Thrown by an agent's stream handler to refuse with a
 * status (403 denied, 404 no such service, ...); the proxy's `dial` rejects with one
 * carrying the same status and reason.
 */
export class TunnelRejectedError extends PosternError {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, options?: { service?: string }) {
    const what = options?.service === undefined ? 'tunnel stream' : `tunnel stream to service ${options.service}`;
    super('PST_TUNNEL_REJECTED', `${what} refused by the agent (${status}): ${reason}`);
    this.status = status;
    this.reason = reason;
  }
}

/** The agent did not accept or refuse a stream in time. */
export class TunnelDialTimeoutError extends PosternError {
  constructor(service: string, timeoutMs: number) {
    super('PST_TUNNEL_DIAL_TIMEOUT', `tunnel stream to service ${service} got no answer from the agent within ${timeoutMs} ms; check the agent's load and its log`);
  }
}

/** The stream failed before the agent answered (reset, refused, or aborted by the caller). */
export class TunnelDialError extends PosternError {
  constructor(service: string, why: string, options?: { cause?: unknown }) {
    super('PST_TUNNEL_DIAL_FAILED', `tunnel stream to service ${service} failed before the agent answered: ${why}`, options);
  }
}

/** A manual ping could not be sent: too many pings are already unanswered. */
export class TunnelPingError extends PosternError {
  constructor(message: string) {
    super('PST_TUNNEL_PING', message);
  }
}
