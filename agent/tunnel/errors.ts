import { PosternError } from '../../protocols/errors.ts';

/** Errors of the agent's side of reverse tunnels. */

/** A tunnel to a proxy could not be established; the link retries with back-off. */
export class TunnelConnectError extends PosternError {
  constructor(address: string, why: string, options?: { cause?: unknown }) {
    super('PST_TUNNEL_CONNECT', `cannot open a tunnel to the proxy at ${address}: ${why}`, options);
  }
}

/** A service name registered twice, or one the tunnel headers cannot carry. */
export class ServiceRegistrationError extends PosternError {
  constructor(message: string) {
    super('PST_SERVICE_REGISTRATION', message);
  }
}
