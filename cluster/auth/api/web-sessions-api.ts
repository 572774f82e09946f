/**
 * Web sessions for the proxies (docs/web-ui.md): a proxy logs a person in with Login,
 * then stores the session here so every proxy of the cluster can serve its cookie.
 * Only proxies call these; each call: authorize -> validate -> act -> audit.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import type { AuthService, WebSession } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { verifyCertificateChain } from '../pki/verify-certificate.ts';
import type { UserIdentity } from '../pki/identity.ts';
import { WebSessionStore, type WebSessionRecord } from '../websessions/web-session-store.ts';
import { WebSessionIdleError } from '../websessions/errors.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

const defaultIdleSeconds = 30 * 60;
const idleBounds = { min: 10, max: 24 * 3600 };

/** The web-session handlers. */
export function webSessionsApi(deps: AuthDeps): Pick<Handlers, 'createWebSession' | 'getWebSession' | 'deleteWebSession'> {
  const store = new WebSessionStore(deps.backend, deps.clock);
  const proxyOnly = (ctx: CallContext, action: string) => deps.authorizer.requireSystemRole(ctx, action, ['proxy']);
  return {
    async createWebSession(request, ctx) {
      await proxyOnly(ctx, 'create web sessions');
      const input = request.session;
      if (!input) throw new BadInputError('create web session: the request carries no session');
      const identity = _checkCertificate(deps, input);
      const idle = Number(input.idleTimeoutSeconds) || defaultIdleSeconds;
      if (idle < idleBounds.min || idle > idleBounds.max) throw new BadInputError(`web session idle timeout: ${idle} s is outside ${idleBounds.min} s .. 24 h`);
      const { id, record } = await store.create({
        user: identity.username,
        roles: identity.roles,
        logins: identity.logins,
        cluster: deps.clusterName,
        tlsKeyPem: input.tlsKeyPem,
        tlsCertificatePem: input.tlsCertificatePem,
        sshPrivateKey: input.sshPrivateKey,
        sshCertificate: input.sshCertificate,
        sshHostCaKeys: input.sshHostCaKeys,
        expires: identity.expires.toISOString(),
        idleTimeoutSeconds: idle,
      });
      await deps.audit.emit({
        type: 'web.session.start',
        identity: { user: identity.username, roles: identity.roles, addr: ctx.peerAddr },
        outcome: 'success',
        fields: { expires: record.expires, idle_timeout_seconds: idle, via: _via(ctx) },
      });
      return _message(id, record);
    },

    async getWebSession(request, ctx) {
      await proxyOnly(ctx, 'read web sessions');
      try {
        return _message(request.id, await store.get(request.id, { touch: request.touch }));
      } catch (error) {
        if (error instanceof WebSessionIdleError) {
          await deps.audit.emit({ type: 'web.session.end', identity: { addr: ctx.peerAddr }, outcome: 'success', reason: 'idle timeout', fields: { via: _via(ctx) } });
        }
        throw error;
      }
    },

    async deleteWebSession(request, ctx) {
      await proxyOnly(ctx, 'end web sessions');
      const record = await store.delete(request.id);
      if (record) {
        await deps.audit.emit({
          type: 'web.session.end',
          identity: { user: record.user, roles: record.roles, addr: ctx.peerAddr },
          outcome: 'success',
          reason: (request.reason || 'logout').slice(0, 256),
          fields: { via: _via(ctx) },
        });
      }
      return {};
    },
  };
}

/** The certificate must be a current user certificate of this cluster for the key given with it. */
function _checkCertificate(deps: AuthDeps, input: WebSession): UserIdentity {
  let identity;
  try {
    identity = verifyCertificateChain(input.tlsCertificatePem, { trustedCaCerts: deps.authorities.trustedTlsCerts('user'), usage: 'client', now: deps.clock.now() });
  } catch (error) {
    throw new BadInputError(`web session: the TLS certificate is not a current user certificate of this cluster: ${(error as Error).message}`);
  }
  if (identity.kind !== 'user') throw new BadInputError('web session: the TLS certificate is a host certificate; a web session needs a user certificate');
  let samekey = false;
  try {
    const fromKey = createPublicKey(input.tlsKeyPem).export({ type: 'spki', format: 'der' });
    samekey = new X509Certificate(input.tlsCertificatePem).publicKey.export({ type: 'spki', format: 'der' }).equals(fromKey);
  } catch {
    samekey = false;
  }
  if (!samekey) throw new BadInputError('web session: the TLS private key does not belong to the certificate');
  if (!input.sshPrivateKey || !input.sshCertificate) throw new BadInputError('web session: the SSH key and certificate are required');
  return identity;
}

function _message(id: string, record: WebSessionRecord) {
  return {
    id,
    user: record.user,
    roles: record.roles,
    logins: record.logins,
    cluster: record.cluster,
    tlsKeyPem: record.tlsKeyPem,
    tlsCertificatePem: record.tlsCertificatePem,
    sshPrivateKey: record.sshPrivateKey,
    sshCertificate: record.sshCertificate,
    sshHostCaKeys: record.sshHostCaKeys,
    csrfToken: record.csrfToken,
    expires: record.expires,
    idleTimeoutSeconds: BigInt(record.idleTimeoutSeconds),
    created: record.created,
    lastActive: record.lastActive,
  };
}

function _via(ctx: CallContext): string {
  return ctx.identity?.kind === 'host' ? ctx.identity.hostId : 'unknown';
}
