/**
 * The agent's connection to the auth API, through the proxy: the proxy passes TLS with
 * SNI `auth.postern` straight to the auth server, so the agent's mutual TLS ends at
 * auth. One connection, made lazily with the current identity and remade after a
 * renewal.
 */
import { connectAuth, type AuthClient, type AuthConnection } from '../../cluster/api/auth-client.ts';
import type { IdentityFile } from '../../cluster/api/identity-file.ts';
import type { AgentIdentity } from './agent-identity.ts';

/** Hands out an auth client for the identity currently in use. */
export class AuthConnector {
  readonly #address: string;
  readonly #identity: AgentIdentity;
  readonly #connect: (address: string, identity: IdentityFile) => AuthConnection;
  readonly #onChange = (): void => this.#drop();
  #connection: AuthConnection | undefined;

  /** `address` is the proxy's host:port (or an auth server's). */
  constructor(address: string, identity: AgentIdentity, connect: (address: string, identity: IdentityFile) => AuthConnection = connectAuth) {
    this.#address = address;
    this.#identity = identity;
    this.#connect = connect;
    identity.on('change', this.#onChange);
  }

  /** The client for the current identity. */
  client(): AuthClient {
    this.#connection ??= this.#connect(this.#address, this.#identity.current);
    return this.#connection.client;
  }

  /** Closes the connection; a later `client()` opens a new one. */
  close(): void {
    this.#drop();
  }

  /** Closes the connection and stops following renewals. */
  dispose(): void {
    this.#identity.off('change', this.#onChange);
    this.#drop();
  }

  #drop(): void {
    this.#connection?.close();
    this.#connection = undefined;
  }
}
