/**
 * The stored form of one certificate authority and its in-memory, parsed form.
 *
 * Stored as JSON at `/authorities/<cluster>/<kind>`:
 *
 *   { "version": 1, "cluster": "root", "kind": "user", "remote": false,
 *     "created": "2026-01-01T00:00:00.000Z",
 *     "active": { "tls": { "cert_pem": "…", "key_pem": "…PKCS#8…" },
 *                 "ssh": { "public_key": "ssh-ed25519 AAAA… root-user-ca", "private_key_pem": "…PKCS#8…" } },
 *     "additional_trusted": [] }
 *
 * Halves by kind: host and user have `tls` + `ssh`, db-client `tls`, jwt `jwt`
 * (`{ "public_jwk": {kty,crv,x,y,use,alg,kid}, "private_key_pem": "…" }`).
 * `active` signs; `additional_trusted` lists keys that are trusted but do not sign
 * (the old or next key during a rotation), so verifiers take active + additional.
 * A remote CA (`remote: true`, a trusted root's host or user CA) holds public
 * material only; a private key in it is refused.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { formatAuthorizedKey, parseAuthorizedKey, sshFingerprint } from '../../../protocols/ssh/public-key.ts';
import { formatIssues } from '../../common/validation.ts';
import { caPin } from './ca-pin.ts';
import { caKindOf, caKinds, type CaKind, type X509CaKind } from './ca-kinds.ts';
import { AuthorityError } from './errors.ts';
import { es256PublicJwk, keyFromEs256Jwk, type Es256PublicJwk } from './jwk.ts';
import { createCaCertificate, loadCa, type X509Ca } from './x509.ts';

const pem = z.string().min(1).max(16_384);
const keySetSchema = z.strictObject({
  tls: z.strictObject({ cert_pem: pem, key_pem: pem.optional() }).optional(),
  ssh: z.strictObject({ public_key: z.string().min(1).max(8192), private_key_pem: pem.optional() }).optional(),
  jwt: z
    .strictObject({
      public_jwk: z.strictObject({
        kty: z.literal('EC'),
        crv: z.literal('P-256'),
        x: z.string().max(64),
        y: z.string().max(64),
        use: z.literal('sig'),
        alg: z.literal('ES256'),
        kid: z.string().max(64),
      }),
      private_key_pem: pem.optional(),
    })
    .optional(),
});

export const storedAuthoritySchema = z.strictObject({
  version: z.literal(1),
  cluster: z.string().min(1).max(253),
  kind: z.enum(caKinds),
  remote: z.boolean(),
  created: z.iso.datetime(),
  active: keySetSchema,
  additional_trusted: z.array(keySetSchema).max(16),
});

export type StoredAuthority = z.output<typeof storedAuthoritySchema>;
export type StoredKeySet = z.output<typeof keySetSchema>;

/** One set of CA keys, parsed: what signs (when the private half is here) and what verifies. */
export interface AuthorityKeys {
  tls?: { certPem: string; pin: string; certificate: X509Certificate; signer?: X509Ca };
  ssh?: { publicKey: KeyObject; authorizedKey: string; fingerprint: string; privateKey?: KeyObject };
  jwt?: { jwk: Es256PublicJwk; publicKey: KeyObject; privateKey?: KeyObject };
}

/** A certificate authority as the auth server uses it. */
export interface CertAuthority {
  cluster: string;
  kind: CaKind;
  remote: boolean;
  created: Date;
  /** Backend revision it was read at (for compare-and-swap by rotation). */
  revision: number;
  active: AuthorityKeys;
  additionalTrusted: AuthorityKeys[];
}

const halvesByKind: Record<CaKind, ReadonlyArray<keyof StoredKeySet>> = {
  host: ['tls', 'ssh'],
  user: ['tls', 'ssh'],
  'db-client': ['tls'],
  jwt: ['jwt'],
};

/** The backend key of a CA. */
export function authorityKey(cluster: string, kind: CaKind): string {
  return `/authorities/${cluster}/${kind}`;
}

/** New keys (and a self-signed X.509 certificate where the kind has one) for a local CA. */
export function generateAuthority(cluster: string, kind: CaKind, options: { now: Date; validityDays?: number }): StoredAuthority {
  const active: StoredKeySet = {};
  if (kind !== 'jwt') {
    const ca = createCaCertificate({ clusterName: cluster, kind, now: options.now, validityDays: options.validityDays });
    active.tls = { cert_pem: ca.certPem, key_pem: ca.keyPem };
  }
  if (kind === 'host' || kind === 'user') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    active.ssh = { public_key: formatAuthorizedKey(publicKey, `${cluster}-${kind}-ca`), private_key_pem: _pkcs8(privateKey) };
  }
  if (kind === 'jwt') {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    active.jwt = { public_jwk: es256PublicJwk(privateKey), private_key_pem: _pkcs8(privateKey) };
  }
  return { version: 1, cluster, kind, remote: false, created: options.now.toISOString(), active, additional_trusted: [] };
}

/** Parses and checks a stored CA (schema, halves for its kind, keys that match); AuthorityError naming the key otherwise. */
export function parseStoredAuthority(value: string, where: { key: string; revision: number }): CertAuthority {
  let stored: StoredAuthority;
  try {
    const checked = storedAuthoritySchema.safeParse(JSON.parse(value));
    if (!checked.success) throw new Error(`\n${formatIssues(where.key, checked.error.issues)}`);
    stored = checked.data;
    checkStoredAuthority(stored);
    return {
      cluster: stored.cluster,
      kind: stored.kind,
      remote: stored.remote,
      created: new Date(stored.created),
      revision: where.revision,
      active: _parseKeySet(stored.active, stored.kind),
      additionalTrusted: stored.additional_trusted.map((set) => _parseKeySet(set, stored.kind)),
    };
  } catch (error) {
    throw new AuthorityError(
      `The certificate authority stored at ${where.key} is unreadable: ${(error as Error).message}. ` +
        'Restore the backend from a backup; do not delete it (every certificate it issued would stop working).',
      { cause: error },
    );
  }
}

/** Throws unless the record's halves fit its kind and private keys appear exactly where they may. */
export function checkStoredAuthority(stored: StoredAuthority): void {
  const expected = halvesByKind[stored.kind];
  for (const [index, set] of [stored.active, ...stored.additional_trusted].entries()) {
    const where = index === 0 ? 'active' : `additional_trusted.${index - 1}`;
    const present = (Object.keys(set) as Array<keyof StoredKeySet>).filter((half) => set[half] !== undefined);
    if (present.length !== expected.length || !expected.every((half) => present.includes(half))) {
      throw new Error(`${where}: a ${stored.kind} CA has ${expected.join(' and ')} keys, this one has ${present.join(', ') || 'none'}`);
    }
    const privates = [set.tls?.key_pem, set.ssh?.private_key_pem, set.jwt?.private_key_pem].filter((k) => k !== undefined);
    if (stored.remote && privates.length > 0) throw new Error(`${where}: a remote CA must not hold private keys`);
    if (!stored.remote && index === 0 && privates.length !== expected.length) throw new Error('active: a local CA needs its private keys');
  }
}

function _parseKeySet(set: StoredKeySet, kind: CaKind): AuthorityKeys {
  const keys: AuthorityKeys = {};
  if (set.tls) {
    const certificate = new X509Certificate(set.tls.cert_pem);
    if (!certificate.ca) throw new Error(`the ${kind} CA certificate is not a CA certificate`);
    const signer = set.tls.key_pem === undefined ? undefined : loadCa({ certPem: set.tls.cert_pem, keyPem: set.tls.key_pem });
    keys.tls = { certPem: set.tls.cert_pem, pin: caPin(set.tls.cert_pem), certificate, ...(signer && { signer }) };
  }
  if (set.ssh) {
    const { publicKey } = parseAuthorizedKey(set.ssh.public_key);
    const privateKey = set.ssh.private_key_pem === undefined ? undefined : createPrivateKey(set.ssh.private_key_pem);
    if (privateKey && !_samePublicKey(privateKey, publicKey.key)) throw new Error(`the ${kind} CA's SSH private key does not match its public key`);
    keys.ssh = { publicKey: publicKey.key, authorizedKey: set.ssh.public_key, fingerprint: sshFingerprint(publicKey.blob), ...(privateKey && { privateKey }) };
  }
  if (set.jwt) {
    const publicKey = keyFromEs256Jwk(set.jwt.public_jwk);
    const privateKey = set.jwt.private_key_pem === undefined ? undefined : createPrivateKey(set.jwt.private_key_pem);
    if (privateKey && !_samePublicKey(privateKey, publicKey)) throw new Error('the jwt CA private key does not match its JWK');
    keys.jwt = { jwk: set.jwt.public_jwk, publicKey, ...(privateKey && { privateKey }) };
  }
  return keys;
}

/** Public material of a trusted cluster's host or user CA, as the root sends it at join. */
export interface RemoteAuthorityInput {
  cluster: string;
  kind: Extract<X509CaKind, 'host' | 'user'>;
  /** The active X.509 CA certificate, then any additionally trusted ones. */
  tlsCertPems: string[];
  /** The active SSH CA key as an authorized_keys line, then any additionally trusted ones. */
  sshPublicKeys: string[];
}

/** The stored record of a remote CA; checks that every item parses and that no private key slipped in. */
export function remoteAuthorityRecord(input: RemoteAuthorityInput, now: Date): StoredAuthority {
  const { tlsCertPems, sshPublicKeys } = input;
  if (tlsCertPems.length === 0 || tlsCertPems.length !== sshPublicKeys.length) {
    throw new AuthorityError(
      `Cannot store the ${input.kind} CA of cluster ${input.cluster}: expected as many X.509 certificates as SSH keys, at least one (got ${tlsCertPems.length} and ${sshPublicKeys.length})`,
    );
  }
  for (const certPem of tlsCertPems) {
    const trimmed = certPem.trim();
    const single = trimmed.startsWith('-----BEGIN CERTIFICATE-----') && trimmed.endsWith('-----END CERTIFICATE-----') && trimmed.split('-----BEGIN').length === 2;
    const kind = single ? _kindOfPem(trimmed) : undefined;
    if (kind !== input.kind) {
      throw new AuthorityError(
        `Cannot store the ${input.kind} CA of cluster ${input.cluster}: each certificate must be one PEM CERTIFICATE block of a Postern ${input.kind} CA`,
      );
    }
  }
  const sets = tlsCertPems.map((certPem, i) => ({ tls: { cert_pem: certPem }, ssh: { public_key: sshPublicKeys[i]! } }));
  const stored: StoredAuthority = {
    version: 1,
    cluster: input.cluster,
    kind: input.kind,
    remote: true,
    created: now.toISOString(),
    active: sets[0]!,
    additional_trusted: sets.slice(1),
  };
  // Parse everything now, so a bad remote CA is refused at the call, not at the next read.
  parseStoredAuthority(JSON.stringify(stored), { key: authorityKey(input.cluster, input.kind), revision: 0 });
  return stored;
}

function _kindOfPem(certPem: string): X509CaKind | undefined {
  try {
    return caKindOf(new X509Certificate(certPem));
  } catch {
    return undefined;
  }
}

function _samePublicKey(privateKey: KeyObject, publicKey: KeyObject): boolean {
  return createPublicKey(privateKey).equals(publicKey);
}

function _pkcs8(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}
