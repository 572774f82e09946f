/**
 * First contact with a cluster: before a host has any certificate it cannot verify
 * the server the usual way, so it checks the server's chain against a CA pin
 * (`sha256:` of the CA's SubjectPublicKeyInfo, shown by `pctl status`) and from then
 * on trusts that CA certificate.
 */
import tls from 'node:tls';
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { PosternError } from '../../protocols/errors.ts';

export class CaPinMismatchError extends PosternError {
  constructor(message: string) {
    super('PST_CA_PIN_MISMATCH', message);
  }
}

/** `sha256:<hex>` of a certificate's public key, as pins are written. */
export function pinOf(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/**
 * Connects to `address`, finds the CA certificate in the server's chain whose pin is
 * `pin`, checks that it signed the server's certificate and that both are in date,
 * and returns that CA certificate as PEM.
 */
export async function fetchPinnedCa(address: { host: string; port: number }, pin: string, options: { servername?: string; timeoutMs?: number; alpn?: string[] } = {}): Promise<string> {
  if (!/^sha256:[0-9a-f]{64}$/.test(pin)) throw new CaPinMismatchError(`CA pin "${pin}" is malformed; expected sha256:<64 hex digits> as printed by pctl status`);
  const chain = await peerChain(address, options);
  const leaf = chain[0];
  if (!leaf) throw new CaPinMismatchError(`${address.host}:${address.port} presented no certificate`);
  const ca = chain.find((certificate) => samePin(pinOf(certificate), pin));
  if (!ca) {
    throw new CaPinMismatchError(
      `the cluster CA of ${address.host}:${address.port} does not match --ca-pin ${pin}; ` +
        `check the pin with the cluster admin (pctl status) — if it is right, something is intercepting this connection`,
    );
  }
  const now = Date.now();
  if (!leaf.verify(ca.publicKey) || !leaf.checkIssued(ca)) {
    throw new CaPinMismatchError(`the certificate of ${address.host}:${address.port} is not signed by the pinned CA`);
  }
  for (const certificate of [leaf, ca]) {
    if (now < Date.parse(certificate.validFrom) || now > Date.parse(certificate.validTo)) {
      throw new CaPinMismatchError(`the certificate "${certificate.subject.replace(/\n/g, ', ')}" of ${address.host}:${address.port} is not valid now (${certificate.validFrom} to ${certificate.validTo})`);
    }
  }
  return ca.toString();
}

function samePin(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function peerChain(address: { host: string; port: number }, options: { servername?: string; timeoutMs?: number; alpn?: string[] }): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    // Verification is done against the pin below, not against system roots.
    const socket = tls.connect({
      host: address.host,
      port: address.port,
      servername: options.servername ?? (/^[\d.:]+$/.test(address.host) ? undefined : address.host),
      rejectUnauthorized: false,
      ALPNProtocols: options.alpn ?? ['h2', 'http/1.1'],
    });
    const timer = setTimeout(() => socket.destroy(new PosternError('PST_CONNECT_TIMEOUT', `no TLS answer from ${address.host}:${address.port} within ${options.timeoutMs ?? 10_000} ms`)), options.timeoutMs ?? 10_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain: X509Certificate[] = [];
      const seen = new Set<string>();
      // Node links the chain the server sent through issuerCertificate on the detailed form.
      let detailed = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
      while (detailed?.raw && !seen.has(detailed.fingerprint256)) {
        seen.add(detailed.fingerprint256);
        chain.push(new X509Certificate(detailed.raw));
        detailed = detailed.issuerCertificate;
      }
      socket.end();
      resolve(chain);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error instanceof PosternError ? error : new PosternError('PST_CONNECT', `cannot connect to ${address.host}:${address.port}: ${error.message}`));
    });
  });
}
