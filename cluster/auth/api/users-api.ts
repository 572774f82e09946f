/** Users: create with an invite, reset, and complete sign-up. Each call: authorize -> validate -> act -> audit. */
import { z } from 'zod';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { parseWith } from '../../common/validation.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';
import { auditIdentity } from './authorizer.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

const inviteTtlMs = 24 * 3_600_000;
const traitsSchema = z.record(z.string(), z.array(z.string()));

/** The user-management handlers. */
export function usersApi(deps: AuthDeps): Pick<Handlers, 'createUser' | 'resetUser' | 'completeSignup' | 'enrollTotp' | 'confirmTotp'> {
  return {
    async createUser(request, ctx) {
      await deps.authorizer.requireResource(ctx, 'user', 'create');
      const traits = request.traitsJson ? parseTraits(request.traitsJson) : {};
      if (request.logins.length > 0) traits.logins = request.logins;
      const user = await deps.users.create(request.name, { roles: request.roles, traits });
      const invite = await deps.users.createResetToken(user.name, { ttlMs: inviteTtlMs, purpose: 'invite' });
      await deps.audit.emit({
        type: 'user.create',
        identity: auditIdentity(ctx),
        resource: { kind: 'user', name: user.name },
        outcome: 'success',
        fields: { roles: user.roles },
      });
      return { signupToken: invite.token, expires: invite.expires.toISOString() };
    },

    async resetUser(request, ctx) {
      await deps.authorizer.requireResource(ctx, 'user', 'update');
      const reset = await deps.users.createResetToken(request.name, { ttlMs: inviteTtlMs, purpose: 'reset', resetTotp: true });
      await deps.audit.emit({
        type: 'user.password.reset',
        identity: auditIdentity(ctx),
        resource: { kind: 'user', name: request.name },
        outcome: 'success',
      });
      return { resetToken: reset.token, expires: reset.expires.toISOString() };
    },

    async completeSignup(request, ctx) {
      // The proxy's web API calls this for a person holding an invite; the token is the proof.
      await deps.authorizer.requireSystemRole(ctx, 'complete a sign-up', ['proxy']);
      const user = await deps.users.useResetToken(request.token, request.password);
      let totpUri = '';
      if (request.enrollTotp) totpUri = (await deps.users.enrollTotp(user.name)).uri;
      await deps.audit.emit({
        type: 'user.password.change',
        identity: { user: user.name, addr: ctx.peerAddr },
        resource: { kind: 'user', name: user.name },
        outcome: 'success',
        fields: { via: 'signup' },
      });
      return { username: user.name, totpUri };
    },

    async enrollTotp(request, ctx) {
      // Relayed by the proxy for a person who proves their password (before a second factor exists).
      await deps.authorizer.requireSystemRole(ctx, 'enrol second factors', ['proxy']);
      const user = await deps.users.authenticate(request.user, request.password);
      const { uri } = await deps.users.enrollTotp(user.name);
      return { totpUri: uri };
    },

    async confirmTotp(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'enrol second factors', ['proxy']);
      const user = await deps.users.authenticate(request.user, request.password);
      await deps.users.confirmTotp(user.name, request.code);
      await deps.audit.emit({
        type: 'user.mfa.add',
        identity: { user: user.name, addr: ctx.peerAddr },
        resource: { kind: 'user', name: user.name },
        outcome: 'success',
        fields: { method: 'totp' },
      });
      return {};
    },
  };
}

function parseTraits(json: string): Record<string, string[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new BadInputError('traits: expected a JSON object of string lists, e.g. {"logins":["ubuntu"]}');
  }
  return parseWith(traitsSchema, raw, 'traits');
}
