/**
 * Postern's SSH key and certificate codec: bytes in, typed values out; no sockets,
 * policy or logging.
 *
 * Specs: OpenSSH PROTOCOL.certkeys (certificates) and PROTOCOL.key (private key files);
 * RFC 4251 section 5 (data types), RFC 4253 section 6.6 (key and signature blobs),
 * RFC 8709 (Ed25519), RFC 5656 (ECDSA), RFC 8332 (rsa-sha2-256/512).
 *
 *   wire.ts                bounded reader / writer for uint32, uint64, string, mpint, name-list
 *   public-key.ts          KeyObject <-> key blob, authorized_keys lines, SHA256 fingerprints
 *   private-key.ts         OpenSSH private key files (unencrypted), for `ssh -i`
 *   signature.ts           `string algorithm, string signature` blobs: sign and verify
 *   certificate.ts         certificate blob layout; sign, format, parse
 *   verify-certificate.ts  CA trust, validity, principals, critical options; user signatures
 *   source-address.ts      the `source-address` CIDR list
 *
 * Where certificates travel: the user CA signs a certificate at login -> `psh` / real
 * `ssh` offers it -> root proxy -> leaf proxy -> agent, whose ssh2 server hands the
 * certificate and the user's signature over untouched -> `parseCertificate`,
 * `verifyCertificate`, `verifyCertificateUserSignature`. Host certificates go the other
 * way: the agent presents one and clients check it against `@cert-authority`.
 */
export * from './errors.ts';
export * from './wire.ts';
export * from './public-key.ts';
export * from './private-key.ts';
export * from './signature.ts';
export * from './certificate.ts';
export * from './verify-certificate.ts';
export * from './source-address.ts';
