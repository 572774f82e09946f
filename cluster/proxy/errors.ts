import { PosternError } from '../../protocols/errors.ts';

/** A client sent too many login or join requests; `retryAfterSeconds` says when to try again. */
export class RateLimitedError extends PosternError {
  readonly retryAfterSeconds: number;

  constructor(what: string, retryAfterSeconds: number) {
    super('PST_RATE_LIMITED', `too many ${what} requests from this address; wait ${retryAfterSeconds} s and try again`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A request body is larger than the web API accepts. */
export class RequestTooLargeError extends PosternError {
  constructor(limit: number) {
    super('PST_REQUEST_TOO_LARGE', `request body exceeds ${limit} bytes; the web API takes small JSON documents only`);
  }
}

/** No tunnel from the host asked for is connected to this proxy. */
export class TunnelNotFoundError extends PosternError {
  constructor(hostId: string) {
    super('PST_TUNNEL_NOT_FOUND', `host ${hostId} has no reverse tunnel to this proxy; check that its agent runs and can reach the proxy (pctl nodes ls)`);
  }
}

/** The proxy cannot get or use its own identity (join refused, identity file unusable, bad settings). */
export class ProxyIdentityError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_PROXY_IDENTITY', message, options);
  }
}

/** Why a ServiceDialer could not connect (also a metrics label suffix). */
export type ServiceDialFailure = 'unknown-host' | 'ambiguous-host' | 'host-offline' | 'dial-failed' | 'unknown-cluster' | 'cluster-offline' | 'cluster-denied';

/** A dial through the ServiceDialer failed; `reason` says at which step, the message says what to do. */
export class ServiceDialError extends PosternError {
  readonly reason: ServiceDialFailure;

  constructor(reason: ServiceDialFailure, message: string, options?: { cause?: unknown }) {
    super('PST_SERVICE_DIAL', message, options);
    this.reason = reason;
  }
}
