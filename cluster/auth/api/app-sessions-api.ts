/**
 * App sessions (browser access to HTTP apps), for proxies only. A session is the user
 * certificate the proxy obtained by logging the user in, stored under a random id that
 * becomes the `__Host-postern_app` cookie; it expires with the certificate. Stored under
 * the SHA-256 of the id, so a copy of the backend does not hold usable cookies. A
 * session's certificate may route to a leaf (login with route_to_cluster); its audit
 * event names that cluster.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import type { UserIdentity } from '../pki/identity.ts';
import { verifyCertificateChain } from '../pki/verify-certificate.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

interface StoredSession {
  app: string;
  username: string;
  cert_pem: string;
  expires: string;
}

const sessionIdPattern = /^[A-Za-z0-9_-]{43}$/;

function _key(sessionId: string): string {
  if (!sessionIdPattern.test(sessionId)) throw new NotFoundError('no such app session');
  return `/app_sessions/${createHash('sha256').update(sessionId).digest('hex')}`;
}

export function appSessionsApi(deps: AuthDeps): Pick<Handlers, 'createAppSession' | 'getAppSession' | 'deleteAppSession'> {
  return {
    async createAppSession(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'create app sessions', ['proxy']);
      let identity: UserIdentity;
      try {
        identity = verifyCertificateChain(request.tlsCertificatePem, { trustedCaCerts: deps.authorities.trustedTlsCerts('user'), expectedKind: 'user', usage: 'client', now: deps.clock.now() }) as UserIdentity;
      } catch (error) {
        throw new BadInputError(`an app session needs a current user certificate of this cluster: ${(error as Error).message}`);
      }
      if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(request.appName)) throw new BadInputError(`bad app name ${JSON.stringify(request.appName.slice(0, 64))}`);
      const sessionId = randomBytes(32).toString('base64url');
      const stored: StoredSession = { app: request.appName, username: identity.username, cert_pem: request.tlsCertificatePem, expires: identity.expires.toISOString() };
      await deps.backend.put({ key: _key(sessionId), value: JSON.stringify(stored), expires: identity.expires });
      await deps.audit.emit({ type: 'app.session.create', identity: { user: identity.username, roles: identity.roles, addr: ctx.peerAddr }, resource: { kind: 'app', name: request.appName }, outcome: 'success', fields: { expires: stored.expires, route_to_cluster: identity.routeToCluster } });
      return { sessionId, tlsCertificatePem: '', appName: request.appName, expires: stored.expires, username: identity.username };
    },

    async getAppSession(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'read app sessions', ['proxy']);
      const item = await deps.backend.get(_key(request.sessionId));
      if (!item) throw new NotFoundError('no such app session (expired, logged out, or never created)');
      const stored = JSON.parse(item.value) as StoredSession;
      if (new Date(stored.expires) <= deps.clock.now()) throw new NotFoundError('the app session has expired');
      return { sessionId: request.sessionId, tlsCertificatePem: stored.cert_pem, appName: stored.app, expires: stored.expires, username: stored.username };
    },

    async deleteAppSession(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'delete app sessions', ['proxy']);
      const key = _key(request.sessionId);
      const item = await deps.backend.get(key);
      await deps.backend.delete(key);
      if (item) {
        const stored = JSON.parse(item.value) as StoredSession;
        await deps.audit.emit({ type: 'app.session.delete', identity: { user: stored.username, addr: ctx.peerAddr }, resource: { kind: 'app', name: stored.app }, outcome: 'success', fields: {} });
      }
      return {};
    },
  };
}
