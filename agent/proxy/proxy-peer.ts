/**
 * How the agent knows it talks to a proxy of its own cluster. Proxies are reached at
 * addresses that vary (load balancers, IPs, discovered public addresses), so the check
 * is not the host name: the proxy's certificate must be issued by the cluster's host CA
 * (the chain Node verified against exactly that CA, and the leaf's signature checked
 * again here) and carry the `proxy` system role, which the cluster's issuer writes as
 * one subject O per role. Another agent of the cluster holds a host certificate too,
 * but without `proxy`, so it cannot pose as one.
 */
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { splitHostPort } from '../../cluster/common/diag-server.ts';
import { certificateInfo } from '../identity/certificate-info.ts';
import { ProxyIdentityError } from './errors.ts';

/** The proxy at the other end of a connection, as its certificate names it. */
export interface ProxyPeer {
  /** The proxy's host id (its certificate's CN). */
  hostId: string;
  /** Its system roles; always include `proxy`. */
  roles: string[];
}

/** The certificates the agent trusts a proxy with, and the client certificate it presents once joined. */
export interface ProxyTrust {
  /** Host CA certificates (PEM). */
  caPems: readonly string[];
  certPem?: string;
  keyPem?: string;
}

/** Checks that `certificate` is a proxy certificate issued by one of `caPems`; throws ProxyIdentityError naming `address`. */
export function verifyProxyCertificate(certificate: Buffer | string, caPems: readonly string[], address: string): ProxyPeer {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certificate);
  } catch (error) {
    throw new ProxyIdentityError(`the server at ${address} presented a certificate that does not parse: ${(error as Error).message}`);
  }
  const issuer = caPems.map((pem) => new X509Certificate(pem)).find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  if (!issuer) throw new ProxyIdentityError(`the server at ${address} presented a certificate not issued by this cluster's host CA; it is not a proxy of this cluster`);
  const info = certificateInfo(leaf);
  if (!info.organizations.includes('proxy')) {
    throw new ProxyIdentityError(
      `the server at ${address} holds a host certificate of this cluster for roles ${info.organizations.join(', ') || '(none)'}, not a proxy's; check the proxy address`,
    );
  }
  return { hostId: info.commonName, roles: info.organizations };
}

/** TLS options to reach the proxy at `address` ("host:port") trusting only `trust.caPems`, offering `alpn`. */
export function proxyTlsOptions(address: string, trust: ProxyTrust, alpn: string[]): tls.ConnectionOptions {
  const [host, port] = splitHostPort(address);
  return {
    host,
    port,
    // SNI for names only: Node refuses an IP as server name.
    servername: /^[\d.]+$|:/.test(host) ? undefined : host,
    ca: [...trust.caPems],
    cert: trust.certPem,
    key: trust.keyPem,
    ALPNProtocols: alpn,
    rejectUnauthorized: true,
    // Node verified the chain against the host CA alone; the name check is the proxy role (see above).
    checkServerIdentity: (_host, peer) => {
      try {
        verifyProxyCertificate(peer.raw, trust.caPems, address);
        return undefined;
      } catch (error) {
        return error as Error;
      }
    },
  };
}

/** The proxy behind a connected TLS socket; call after `secureConnect`. */
export function proxyPeerOf(socket: tls.TLSSocket, caPems: readonly string[], address: string): ProxyPeer {
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) throw new ProxyIdentityError(`the server at ${address} presented no certificate`);
  return verifyProxyCertificate(peer.raw, caPems, address);
}
