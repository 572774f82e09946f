/**
 * How a Postern Identity (identity.ts) travels inside an X.509 certificate. This is the
 * one place that defines it; the SSH side is in protocols/ssh.
 *
 * OID arc
 * -------
 *   1.3.6.1.4.1.7678376          Postern's private arc (7678376 = "POSTERN" on a phone keypad)
 *   1.3.6.1.4.1.7678376.1        X.509 certificate extensions
 *   1.3.6.1.4.1.7678376.1.1        user identity  (UserIdentity, issued by the `user` CA)
 *   1.3.6.1.4.1.7678376.1.2        host identity  (HostIdentity, issued by the `host` CA)
 *
 * The enterprise number 7678376 is NOT registered with IANA. It lies far beyond the
 * numbers IANA has handed out (sequentially, ~65,000 so far), so it collides with no
 * one today, and every arc fits in 32 bits so strict parsers (Go's, Java's) accept it.
 * A UUID arc (2.25.<uuid>) needs no registration but its 128-bit arc breaks such
 * parsers (and prints as hex in asn1js). Before a public release, request a free
 * number at https://pen.iana.org and change `posternOidArc` below; certificates from
 * the old arc then stop verifying, so roll the user and host CAs (or let every
 * short-lived certificate expire) at the same time.
 *
 * One extension per identity kind, one JSON value each
 * ----------------------------------------------------
 *   Extension ::= SEQUENCE { extnID <oid above>, critical FALSE,
 *                            extnValue OCTET STRING (DER of: UTF8String <JSON text>) }
 *
 * The JSON is the identity.ts object without `kind` (the OID says it) and `expires`
 * (the certificate's notAfter says it, so the two cannot disagree), plus `"v": 1`:
 *
 *   user: {"v":1,"username":"alice","roles":["dev"],"traits":{"team":["web"]},
 *          "logins":["alice"],"cluster":"root","routeToCluster":"leaf",
 *          "routeToDatabase":{"service":"pg","user":"alice","database":"app"},
 *          "routeToKubeCluster":"k1","routeToApp":{"name":"grafana","sessionId":"…"},
 *          "mfaVerified":false,"bot":false}                (the three routes are optional)
 *   host: {"v":1,"hostId":"6f1c…","nodeName":"node1","cluster":"leaf",
 *          "systemRoles":["node"]}
 *
 * Why one JSON value rather than one DER extension per field: the identity holds maps
 * and nested routes (traits, database route) that would need JSON or a bespoke ASN.1
 * module anyway; one value decodes and validates in one step with one schema; the
 * kind check is "which OID is present"; and a field added later is one schema change
 * here, not a new OID in every verifier. The fields other software reads stay in the
 * subject as usual: CN = username (user) or host id (host), one O per role (user
 * roles or system roles), which is what Kubernetes (user and groups), PostgreSQL
 * `cert` auth and MySQL `REQUIRE SUBJECT` look at.
 *
 * The extension is non-critical: OpenSSL, browsers and databases that verify our
 * certificates must not refuse them for an extension they do not know. Decoding is
 * strict: an unknown field, a wrong type or an unknown version is refused (a newer
 * issuer's field means "upgrade the verifier first"), and the value is bounded in size.
 */
import { z } from 'zod';
import { DerFormatError, IdentityExtensionError } from './errors.ts';
import { readWhole, TAG, utf8String, contentOf } from './der.ts';
import { systemRoles, type HostIdentity, type Identity, type UserIdentity } from './identity.ts';
import { formatIssues } from '../../common/validation.ts';

/** Postern's private OID arc (unregistered; see the file comment before changing it). */
export const posternOidArc = '1.3.6.1.4.1.7678376';
/** Extension carrying a UserIdentity as JSON. */
export const userIdentityOid = `${posternOidArc}.1.1`;
/** Extension carrying a HostIdentity as JSON. */
export const hostIdentityOid = `${posternOidArc}.1.2`;

/** Largest identity JSON accepted or produced, in bytes (a certificate travels in every handshake). */
export const maxIdentityJsonBytes = 32 * 1024;
const maxNameLength = 256;
const maxListLength = 256;

/** An extension ready for the certificate builder. */
export interface EncodedExtension {
  oid: string;
  critical: boolean;
  /** The DER that goes inside extnValue's OCTET STRING. */
  value: Buffer;
}

// Printable text without control characters: these names reach logs, audit events and terminals.
const name = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(maxNameLength, { error: `must be at most ${maxNameLength} characters` })
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\x00-\x1f\x7f]*$/, { error: 'must not contain control characters' });
const names = z.array(name).max(maxListLength, { error: `at most ${maxListLength} entries` });
const text = z.string().max(4096).regex(/^[^\x00-\x1f\x7f]*$/, { error: 'must not contain control characters' });

const userJsonSchema = z.strictObject({
  v: z.literal(1, { error: 'unknown identity version (this Postern reads version 1)' }),
  username: name,
  roles: names,
  traits: z
    // zod drops a `__proto__` key from records, so JSON.parse output cannot reach a prototype.
    .record(name, z.array(text).max(maxListLength))
    .refine((t) => Object.keys(t).length <= maxListLength, { error: `at most ${maxListLength} traits` }),
  logins: names,
  cluster: name,
  routeToCluster: name,
  routeToDatabase: z.strictObject({ service: name, user: name.optional(), database: name.optional() }).optional(),
  routeToKubeCluster: name.optional(),
  routeToApp: z.strictObject({ name, sessionId: name, publicAddr: name.optional() }).optional(),
  mfaVerified: z.boolean(),
  bot: z.boolean(),
});

const hostJsonSchema = z.strictObject({
  v: z.literal(1, { error: 'unknown identity version (this Postern reads version 1)' }),
  hostId: name,
  nodeName: name,
  cluster: name,
  systemRoles: z.array(z.enum(systemRoles)).min(1, { error: 'a host needs at least one system role' }).max(systemRoles.length),
});

type UserJson = z.output<typeof userJsonSchema>;
type HostJson = z.output<typeof hostJsonSchema>;

/** The subject names a certificate for `identity` carries: CN = username or host id, one O per role. */
export function subjectFor(identity: Identity): { commonName: string; organizations: string[] } {
  return identity.kind === 'user'
    ? { commonName: identity.username, organizations: identity.roles }
    : { commonName: identity.hostId, organizations: identity.systemRoles };
}

/** Encodes `identity` as its Postern extension; throws IdentityExtensionError when a field is invalid. */
export function encodeIdentityExtension(identity: Identity): EncodedExtension {
  const json = identity.kind === 'user' ? _userJson(identity) : _hostJson(identity);
  const schema = identity.kind === 'user' ? userJsonSchema : hostJsonSchema;
  const oid = identity.kind === 'user' ? userIdentityOid : hostIdentityOid;
  const checked = schema.safeParse(json);
  if (!checked.success) {
    throw new IdentityExtensionError(
      `Cannot issue a certificate for this ${identity.kind} identity:\n${formatIssues('identity', checked.error.issues)}`,
    );
  }
  const text = JSON.stringify(checked.data); // what was validated is what is signed
  if (Buffer.byteLength(text) > maxIdentityJsonBytes) {
    throw new IdentityExtensionError(
      `Cannot issue a certificate for ${identity.kind} identity: it is larger than ${maxIdentityJsonBytes} bytes as JSON; ` +
        'reduce the number of roles, traits or logins',
    );
  }
  return { oid, critical: false, value: utf8String(text) };
}

/** Whether `oid` is one of the identity extensions, and of which kind. */
export function identityKindOfOid(oid: string): Identity['kind'] | undefined {
  return oid === userIdentityOid ? 'user' : oid === hostIdentityOid ? 'host' : undefined;
}

/**
 * Decodes the extnValue bytes of an identity extension found under `oid`; `notAfter`
 * (the certificate's) becomes `expires`. Throws IdentityExtensionError for anything
 * that is not exactly a version-1 identity of the OID's kind.
 */
export function decodeIdentityExtension(oid: string, value: Uint8Array, options: { notAfter: Date }): Identity {
  const kind = identityKindOfOid(oid);
  if (kind === undefined) throw new IdentityExtensionError(`Cannot decode extension ${oid}: not a Postern identity extension`);
  const json = _parseJson(kind, oid, value);
  const schema = kind === 'user' ? userJsonSchema : hostJsonSchema;
  const checked = schema.safeParse(json);
  if (!checked.success) {
    throw new IdentityExtensionError(
      `Cannot read the ${kind} identity in certificate extension ${oid}:\n` +
        `${formatIssues('certificate', checked.error.issues)}\n` +
        'The certificate comes from an incompatible Postern version or was built by hand; get a new one (psh login, or restart the agent).',
    );
  }
  return kind === 'user'
    ? _userFromJson(checked.data as UserJson, options.notAfter)
    : _hostFromJson(checked.data as HostJson, options.notAfter);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function _parseJson(kind: string, oid: string, value: Uint8Array): unknown {
  const where = `the ${kind} identity in certificate extension ${oid}`;
  try {
    const element = readWhole(value, TAG.utf8String, `${kind} identity`);
    const bytes = contentOf(value, element);
    if (bytes.length > maxIdentityJsonBytes) throw new DerFormatError(`larger than ${maxIdentityJsonBytes} bytes`);
    return JSON.parse(strictUtf8.decode(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new IdentityExtensionError(`Cannot read ${where}: ${reason}; expected a DER UTF8String holding JSON`, { cause: error });
  }
}

function _userJson(identity: UserIdentity): UserJson {
  const json: UserJson = {
    v: 1,
    username: identity.username,
    roles: identity.roles,
    traits: identity.traits,
    logins: identity.logins,
    cluster: identity.cluster,
    routeToCluster: identity.routeToCluster,
    mfaVerified: identity.mfaVerified,
    bot: identity.bot,
  };
  if (identity.routeToDatabase !== undefined) json.routeToDatabase = identity.routeToDatabase;
  if (identity.routeToKubeCluster !== undefined) json.routeToKubeCluster = identity.routeToKubeCluster;
  if (identity.routeToApp !== undefined) json.routeToApp = identity.routeToApp;
  return json;
}

function _hostJson(identity: HostIdentity): HostJson {
  return { v: 1, hostId: identity.hostId, nodeName: identity.nodeName, cluster: identity.cluster, systemRoles: identity.systemRoles };
}

function _userFromJson(json: UserJson, expires: Date): UserIdentity {
  const { v: _v, ...fields } = json;
  return { kind: 'user', ...fields, expires };
}

function _hostFromJson(json: HostJson, expires: Date): HostIdentity {
  const { v: _v, ...fields } = json;
  return { kind: 'host', ...fields, expires };
}
