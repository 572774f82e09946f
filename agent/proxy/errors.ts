import { PosternError } from '../../protocols/errors.ts';

/** Errors of the agent's conversations with a proxy: its web API and its identity. */

/** The proxy could not be reached: refused, unresolvable, timed out, or the connection broke. */
export class ProxyUnreachableError extends PosternError {
  constructor(address: string, why: string, options?: { cause?: unknown }) {
    super('PST_PROXY_UNREACHABLE', `cannot reach the proxy at ${address}: ${why}; check the address and that the proxy is running`, options);
  }
}

/** The peer is not a proxy of this cluster: its certificate is not from the host CA, or not a proxy's. */
export class ProxyIdentityError extends PosternError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PST_PROXY_IDENTITY', message, options);
  }
}

/** The proxy answered something that is not its web API (not JSON, wrong shape, too large). */
export class ProxyResponseError extends PosternError {
  constructor(message: string) {
    super('PST_PROXY_BAD_RESPONSE', message);
  }
}

/**
 * The proxy refused the request with a Postern error (`{ "error": { "code", "message" } }`);
 * `code` is the server's (`PST_TOKEN_EXPIRED`, `PST_TOKEN_USED`, ...).
 */
export class ProxyApiError extends PosternError {
  readonly status: number;

  constructor(code: string, message: string, status: number) {
    super(code, message);
    this.status = status;
  }
}
