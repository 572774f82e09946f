/**
 * Fixed TLS material for grpc-js's certificate-provider credentials. We use that API
 * because it is the only one that asks for a client certificate without requiring
 * it: a caller without one may still join with a token, and a bad certificate reaches
 * our own verifier, which explains the refusal instead of failing the handshake.
 */
import type * as grpc from '@grpc/grpc-js';

type Provider = grpc.experimental.CertificateProvider;
type CaListener = Parameters<Provider['addCaCertificateListener']>[0];
type IdentityListener = Parameters<Provider['addIdentityCertificateListener']>[0];

export class StaticCertificates implements Provider {
  readonly #ca: Buffer;
  readonly #certificate: Buffer;
  readonly #privateKey: Buffer;

  constructor(options: { caPems: string[]; certPem: string; keyPem: string }) {
    this.#ca = Buffer.from(options.caPems.join(''));
    this.#certificate = Buffer.from(options.certPem);
    this.#privateKey = Buffer.from(options.keyPem);
  }

  // grpc-js registers its own watcher only after adding these listeners, so an update
  // delivered synchronously would be lost and the server would drop every connection.
  addCaCertificateListener(listener: CaListener): void {
    queueMicrotask(() => listener({ caCertificate: this.#ca }));
  }

  removeCaCertificateListener(): void {}

  addIdentityCertificateListener(listener: IdentityListener): void {
    queueMicrotask(() => listener({ certificate: this.#certificate, privateKey: this.#privateKey }));
  }

  removeIdentityCertificateListener(): void {}
}
