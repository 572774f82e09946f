/**
 * `IssueRoutedCertificate`: a logged-in user's X.509 certificate again — same identity,
 * no longer-lived — routed to a cluster and optionally to one database, app or
 * Kubernetes cluster there. The one re-issue path behind `psh db login`, `psh apps
 * login` and `psh kube login` (with `--cluster LEAF`, or after `psh login LEAF`).
 *
 * ```
 * caller (user of this cluster) ─ route_to_cluster (default: the caller's route)
 *   ├ a leaf: it must trust this cluster and the caller's roles' cluster_labels must
 *   │         reach it (refusal audited); the leaf's agents decide on the resource
 *   └ here:   an app or Kubernetes cluster must be served here and visible to the roles
 *             (refusal audited); a database is decided by its agent
 * ```
 * `ReissueUserCertificate` (db) and `GenerateRouteCerts` (app, kube) are thin wrappers
 * kept for older clients.
 */
import { randomUUID } from 'node:crypto';
import { AccessDeniedError, BadInputError } from '../../../protocols/errors.ts';
import type { Certificates, RoutedCertificateRequest } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { UserIdentity } from '../pki/identity.ts';
import { auditIdentity } from './authorizer.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';
import { checkClusterRoute } from './certs-api.ts';

const resourceName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const dbNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,62}$/;

type _Request = Pick<RoutedCertificateRequest, 'tlsPublicKey' | 'routeToCluster' | 'dbService' | 'dbUser' | 'dbName' | 'appName' | 'appPublicAddr' | 'kubeCluster'>;

/** The handler; see the file comment. */
export async function issueRoutedCertificate(deps: AuthDeps, request: _Request, ctx: CallContext): Promise<Omit<Certificates, '$typeName' | '$unknown'>> {
  const caller = deps.authorizer.requireIdentity(ctx);
  if (caller.kind !== 'user') throw new AccessDeniedError('routed certificates are for users; hosts have their own identity');
  if (caller.cluster !== deps.clusterName) throw new AccessDeniedError(`this certificate was issued by cluster "${caller.cluster}"; ask its own cluster (psh login --proxy) for routed certificates`);
  if (!request.tlsPublicKey.includes('-----BEGIN PUBLIC KEY-----')) throw new BadInputError('tls_public_key must be a PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)');
  const routes = [request.dbService, request.appName, request.kubeCluster].filter(Boolean);
  if (routes.length > 1) throw new BadInputError('name at most one of db_service, app_name and kube_cluster');
  if (request.dbService) _check('database service', request.dbService, dbNamePattern);
  if (request.dbUser) _check('database user', request.dbUser, dbNamePattern);
  if (request.dbName) _check('database name', request.dbName, dbNamePattern);
  if (request.appName) _check('app name', request.appName, resourceName);
  if (request.appPublicAddr) _check('public address', request.appPublicAddr, resourceName);
  if (request.kubeCluster) _check('Kubernetes cluster name', request.kubeCluster, resourceName);
  const route = request.routeToCluster || caller.routeToCluster || deps.clusterName;
  _check('cluster name', route, resourceName);
  const checker = await deps.authorizer.checkerFor(caller);
  if (route !== deps.clusterName) await checkClusterRoute(deps, ctx, checker, caller.username, route);
  else if (request.appName || request.kubeCluster) await _checkServedHere(deps, ctx, checker, request.appName ? 'app' : 'kube_cluster', (request.appName || request.kubeCluster)!);
  const identity: UserIdentity = {
    ...caller,
    routeToCluster: route,
    routeToDatabase: undefined,
    routeToApp: undefined,
    routeToKubeCluster: undefined,
    ...(request.dbService ? { routeToDatabase: { service: request.dbService, ...(request.dbUser ? { user: request.dbUser } : {}), ...(request.dbName ? { database: request.dbName } : {}) } } : {}),
    ...(request.appName ? { routeToApp: { name: request.appName, sessionId: randomUUID(), ...(request.appPublicAddr ? { publicAddr: request.appPublicAddr } : {}) } } : {}),
    ...(request.kubeCluster ? { routeToKubeCluster: request.kubeCluster } : {}),
  };
  for (const key of ['routeToDatabase', 'routeToApp', 'routeToKubeCluster'] as const) if (identity[key] === undefined) delete identity[key];
  const pem = deps.issuer.issueUserTls(identity, request.tlsPublicKey);
  const kind = request.dbService ? 'db' : request.appName ? 'app' : request.kubeCluster ? 'kube_cluster' : 'cluster';
  await deps.audit.emit({
    type: 'cert.issue',
    identity: auditIdentity(ctx),
    resource: { kind, name: (request.dbService || request.appName || request.kubeCluster || route) },
    outcome: 'success',
    fields: { certificate: 'user-routed', route_to_cluster: route, ...(request.dbUser ? { db_user: request.dbUser } : {}), ...(request.dbName ? { db_name: request.dbName } : {}), expires: caller.expires.toISOString() },
  });
  return {
    sshCertificate: '',
    tlsCertificatePem: pem,
    tlsCaPems: deps.authorities.trustedTlsCerts('host'),
    sshHostCaKeys: [],
    expires: caller.expires.toISOString(),
    username: caller.username,
    roles: caller.roles,
    logins: caller.logins,
  };
}

/** An app or Kubernetes cluster of this cluster must be served and visible to the caller's roles. */
async function _checkServedHere(deps: AuthDeps, ctx: CallContext, checker: Awaited<ReturnType<AuthDeps['authorizer']['checkerFor']>>, kind: 'app' | 'kube_cluster', target: string): Promise<void> {
  const matches = (await deps.presence.listServed(kind)).filter((row) => row.metadata.name === target);
  if (matches.length === 0) throw new BadInputError(`no ${kind === 'app' ? 'app' : 'Kubernetes cluster'} is named "${target}"; list them with psh ${kind === 'app' ? 'apps' : 'kube'} ls`);
  const decision = checker.checkVisible(kind, { name: target, labels: matches[0]!.metadata.labels });
  if (decision.allowed) return;
  await deps.audit.emit({ type: 'access.denied', identity: auditIdentity(ctx), resource: { kind, name: target }, outcome: 'deny', reason: decision.reason });
  throw new AccessDeniedError(`access denied: ${decision.reason}`);
}

function _check(what: string, value: string, pattern: RegExp): void {
  if (!pattern.test(value)) throw new BadInputError(`${what} ${JSON.stringify(value.slice(0, 80))} is not valid: use letters, digits and . _ - (and @ + for database names), starting with a letter or digit`);
}
