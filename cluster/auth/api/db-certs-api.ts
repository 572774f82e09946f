/**
 * Certificates for database access (docs/databases.md):
 *
 * - `signDatabaseCertificate` purpose `client`: a db agent's login towards an upstream
 *   database, from the db-client CA with CN = the database user. Only hosts with the
 *   `db` or `node` system role (and admins) may ask; every issue is audited.
 * - `signDatabaseCertificate` purpose `server`: a database's own TLS certificate from
 *   the host CA, with the db-client CA to trust for clients (`pctl auth sign --format=db`,
 *   admins only).
 * - `reissueUserCertificate`: a logged-in user's X.509 certificate again (same identity,
 *   same expiry) with `routeToDatabase` set, for `psh db login`. Whether the user may
 *   reach that database as that user is decided by the agent at each connection.
 */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { issueCertificate } from '../pki/x509.ts';
import type { UserIdentity } from '../pki/identity.ts';
import { auditIdentity } from './authorizer.ts';
import { issueRoutedCertificate } from './routed-certs-api.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** Longest db-client certificate; agents re-ask well before it ends. */
export const maxDbClientTtlMs = 12 * 3_600_000;
/** Longest database server certificate (operators re-run pctl auth sign). */
export const maxDbServerTtlMs = 2 * 365 * 86_400_000;

/** A database user, database name or host name: printable, no separators that would confuse a subject or a route. */
const dbNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,62}$/;

export function dbCertsApi(deps: AuthDeps): Pick<Handlers, 'signDatabaseCertificate' | 'reissueUserCertificate'> {
  return {
    async signDatabaseCertificate(request, ctx) {
      const purpose = request.purpose;
      if (purpose !== 'client' && purpose !== 'server') throw new BadInputError(`sign database certificate: purpose must be client or server, not ${JSON.stringify(purpose)}`);
      _checkName(purpose === 'client' ? 'database user' : 'host name', request.name);
      if (purpose === 'client') await deps.authorizer.requireSystemRole(ctx, 'sign database client certificates', ['db', 'node']);
      else await deps.authorizer.requireSystemRole(ctx, 'sign database server certificates', []);
      const now = deps.clock.now();
      const maxMs = purpose === 'client' ? maxDbClientTtlMs : maxDbServerTtlMs;
      const ttlMs = request.ttlSeconds > 0n ? Math.min(Number(request.ttlSeconds) * 1000, maxMs) : maxMs;
      const expires = new Date(now.getTime() + ttlMs);
      const altNames = request.altNames.map((n) => n.trim()).filter(Boolean);
      if (altNames.length > 32) throw new BadInputError('sign database certificate: at most 32 alternative names');
      const ips = altNames.filter((a) => /^[\d.]+$|:/.test(a));
      const tlsCertificatePem = issueCertificate({
        ca: deps.authorities.x509Signer(purpose === 'client' ? 'db-client' : 'host'),
        publicKey: _publicKey(request.tlsPublicKey),
        subject: { commonName: request.name },
        notAfter: expires,
        now,
        usage: purpose === 'client' ? 'client' : 'server',
        ...(purpose === 'server' ? { dnsNames: [request.name, ...altNames.filter((a) => !ips.includes(a))].filter((n) => !/^[\d.]+$/.test(n)), ipAddresses: ips } : {}),
      });
      await deps.audit.emit({
        type: 'cert.issue',
        identity: auditIdentity(ctx),
        resource: { kind: purpose === 'client' ? 'db' : 'host', name: (request.database || request.name).slice(0, 1024) },
        outcome: 'success',
        fields: { certificate: `db-${purpose}`, common_name: request.name, expires: expires.toISOString() },
      });
      return {
        tlsCertificatePem,
        signerCaPems: deps.authorities.trustedTlsCerts(purpose === 'client' ? 'db-client' : 'host'),
        dbClientCaPems: deps.authorities.trustedTlsCerts('db-client'),
        expires: expires.toISOString(),
      };
    },

    /** Kept for older clients: IssueRoutedCertificate with a database route (routed-certs-api.ts). */
    async reissueUserCertificate(request, ctx) {
      if (!request.dbService) throw new BadInputError('reissue user certificate: name the database (db_service)');
      const caller = deps.authorizer.requireIdentity(ctx);
      if (caller.kind !== 'user') throw new BadInputError('reissue user certificate: only users may ask; this caller is a host');
      return issueRoutedCertificate(deps, { tlsPublicKey: request.tlsPublicKey, routeToCluster: '', dbService: request.dbService, dbUser: request.dbUser, dbName: request.dbName, appName: '', appPublicAddr: '', kubeCluster: '' }, ctx);
    },
  };
}

function _checkName(what: string, value: string): void {
  if (!dbNamePattern.test(value)) throw new BadInputError(`${what} ${JSON.stringify(value.slice(0, 80))} is not valid: use 1-63 letters, digits and _ . @ + - (starting with a letter, digit or _)`);
}

function _publicKey(pem: string): string {
  if (!pem.includes('-----BEGIN PUBLIC KEY-----')) throw new BadInputError('tls_public_key must be a PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)');
  return pem;
}
