import type { Identity } from '../pki/identity.ts';

/** The caller of one API call, from its verified client certificate. */
export interface CallContext {
  identity: Identity;
  peerAddr: string;
}
