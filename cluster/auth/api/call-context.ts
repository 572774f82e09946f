import type { Identity } from '../pki/identity.ts';

/**
 * The caller of one API call. `identity` comes from a verified client certificate; it
 * is absent for a caller without one, which may only join with a token and read the
 * CAs' public keys.
 */
export interface CallContext {
  identity?: Identity;
  /** Who audit events name as the caller's address: the end user's, for calls a proxy relays. */
  peerAddr: string;
  /** The proxy that relayed the call, when it named the end user's address. */
  relayedBy?: string;
}
