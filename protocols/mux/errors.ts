import { PosternError } from '../errors.ts';

/** Why the port router dropped a connection before handing it to a handler. */
export type DropReason =
  | 'garbage'
  | 'sniff-timeout'
  | 'closed-early'
  | 'too-many-pending'
  | 'tls-handshake'
  | 'no-route'
  | 'client-cert-required'
  | 'postgres-unsupported'
  | 'handler-error'
  | 'router-closed';

/** A connection on the shared port was dropped; `reason` says at which step. */
export class ConnectionDroppedError extends PosternError {
  readonly reason: DropReason;

  constructor(reason: DropReason, message: string, options?: { cause?: unknown }) {
    super('PST_MUX_DROPPED', message, options);
    this.reason = reason;
  }
}

/** A handler for this route is registered already, or the route name is not a valid ALPN id. */
export class RouteConfigError extends PosternError {
  constructor(message: string) {
    super('PST_MUX_ROUTE_CONFIG', message);
  }
}
