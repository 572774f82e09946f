/**
 * The one way programs outside the auth server reach it: a typed gRPC client over
 * mutual TLS with an identity (an agent's host identity, an admin's, a bot's).
 */
import * as grpc from '@grpc/grpc-js';
import { AuthService } from './gen/postern/auth/v1/auth_pb.ts';
import { createClient, type ServiceClient } from './grpc-glue.ts';
import type { IdentityFile } from './identity-file.ts';

export type AuthClient = ServiceClient<(typeof AuthService)['method']>;

export interface AuthConnection {
  client: AuthClient;
  close(): void;
}

/** Connects to the auth server at `address` (host:port) presenting `identity`. */
export function connectAuth(address: string, identity: Pick<IdentityFile, 'key_pem' | 'cert_pem' | 'ca_pems'>): AuthConnection {
  // Without a certificate the caller is anonymous: it may only join with a token and read CAs.
  const credentials = grpc.credentials.createSsl(
    Buffer.from(identity.ca_pems.join('\n')),
    identity.key_pem ? Buffer.from(identity.key_pem) : null,
    identity.cert_pem ? Buffer.from(identity.cert_pem) : null,
  );
  return createClient(AuthService, address, credentials, {
    // The auth server's certificate names the cluster's auth service; addresses vary.
    'grpc.ssl_target_name_override': 'auth.postern',
    'grpc.default_authority': 'auth.postern',
    'grpc.keepalive_time_ms': 30_000,
  });
}

/** The DNS name every auth server certificate carries, whatever address it is reached at. */
export const authServerName = 'auth.postern';
