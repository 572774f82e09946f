import type { Identity } from '../pki/identity.ts';

/**
 * The caller of one API call. `identity` comes from a verified client certificate; it
 * is absent for a caller without one, which may only join with a token and read the
 * CAs' public keys.
 */
export interface CallContext {
  identity?: Identity;
  peerAddr: string;
}
