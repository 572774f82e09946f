import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { IdentityFile } from '../api/identity-file.ts';
import { pinOf } from '../api/pinned-ca.ts';
import type { RouterTlsOptions } from '../../protocols/mux/port-router.ts';

/** A certificate for the public name (e.g. from a public CA), served instead of the host-CA one. */
export interface PublicCertificate {
  certPem: string;
  keyPem: string;
}

/** The cluster's CA certificates the proxy trusts, by kind. */
export interface TrustedAuthorities {
  host: string[];
  user: string[];
  /** The user CA's SSH public keys (authorized_keys lines), for the SSH jump server. */
  userSsh?: string[];
}

/**
 * The proxy's identity and what it trusts: its host certificate (also its TLS server
 * certificate, sent with the host CA so agents can check their CA pin), the host CA
 * for agents' tunnels and the user CA for users' certificates. Emits `change` when the
 * identity is renewed or the CAs change, so TLS settings are rebuilt.
 */
export class ProxyCredentials extends EventEmitter<{ change: [] }> {
  #identity: IdentityFile;
  #authorities: TrustedAuthorities;
  readonly #publicCertificate: PublicCertificate | undefined;
  #pins: { of: string[]; pins: string[] } | undefined;

  constructor(identity: IdentityFile, options: { userCaPems?: string[]; publicCertificate?: PublicCertificate } = {}) {
    super();
    this.#identity = identity;
    this.#authorities = { host: identity.ca_pems, user: options.userCaPems ?? [] };
    this.#publicCertificate = options.publicCertificate;
  }

  get identity(): IdentityFile {
    return this.#identity;
  }

  /** Host CA certificates an agent's certificate must chain to. */
  hostCaPems(): string[] {
    return this.#authorities.host;
  }

  /** User CA certificates a user's certificate must chain to (empty until the first sync with auth). */
  userCaPems(): string[] {
    return this.#authorities.user;
  }

  /** User CA SSH public keys (authorized_keys lines); empty until the first sync with auth. */
  userSshCaKeys(): string[] {
    return this.#authorities.userSsh ?? [];
  }

  /** `sha256:` pins of the host CAs, as agents are told to pin them. */
  caPins(): string[] {
    const host = this.#authorities.host;
    if (this.#pins?.of !== host) this.#pins = { of: host, pins: host.map((pem) => pinOf(new X509Certificate(pem))) };
    return this.#pins.pins;
  }

  /** When the current certificate expires. */
  expires(): Date {
    return new X509Certificate(this.#identity.cert_pem).validToDate;
  }

  /** Replaces the identity after a renewal. */
  setIdentity(identity: IdentityFile): void {
    this.#identity = identity;
    this.#authorities = { ...this.#authorities, host: identity.ca_pems };
    this.emit('change');
  }

  /** Replaces the trusted CAs when the cluster's change (rotation); no event when nothing changed. */
  setAuthorities(authorities: TrustedAuthorities): void {
    if (authorities.host.length === 0) return; // never trust nothing because of a bad answer
    const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((pem, i) => pem === b[i]);
    if (same(authorities.host, this.#authorities.host) && same(authorities.user, this.#authorities.user)) {
      // SSH keys alone need no TLS rebuild.
      this.#authorities = { ...this.#authorities, userSsh: authorities.userSsh ?? this.#authorities.userSsh };
      return;
    }
    this.#authorities = authorities;
    this.emit('change');
  }

  /** TLS settings for the public port: the server certificate chain and the CAs for client certificates. */
  routerTls(): RouterTlsOptions {
    const own = { cert: this.#identity.cert_pem + this.#authorities.host.join(''), key: this.#identity.key_pem };
    const served = this.#publicCertificate ? { cert: this.#publicCertificate.certPem, key: this.#publicCertificate.keyPem } : own;
    return { ...served, ca: [...this.#authorities.host, ...this.#authorities.user], minVersion: 'TLSv1.2' };
  }
}
