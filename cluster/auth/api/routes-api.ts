/**
 * Routes to apps and Kubernetes clusters:
 *
 * - `GenerateRouteCerts`: a logged-in user trades their current certificate for one with
 *   the same identity and expiry plus `routeToApp` or `routeToKubeCluster` (what curl and
 *   kubectl present to the proxy). The target must be visible to the user's roles; the
 *   agent still decides every request.
 * - `SignAppToken`: an agent serving apps gets the JWT assertion for one user, signed by
 *   the jwt CA (the private key never leaves auth), at most 1 h and never past the
 *   user's certificate as the agent states it.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { AccessDeniedError, BadInputError } from '../../../protocols/errors.ts';
import { signEs256Jwt, type AppClaims } from '../../../protocols/jwt/es256-jwt.ts';
import { auditIdentity } from './authorizer.ts';
import { issueRoutedCertificate } from './routed-certs-api.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** Longest JWT assertion auth signs. */
export const maxAppTokenSeconds = 3_600;
const name = z.string().min(1).max(253).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected letters, digits, dot, dash and underscore');
const traitsSchema = z.record(z.string().max(253), z.array(z.string().max(1_024)).max(256));

export function routesApi(deps: AuthDeps): Pick<Handlers, 'generateRouteCerts' | 'signAppToken'> {
  return {
    /** Kept for older clients: IssueRoutedCertificate with an app or Kubernetes route (routed-certs-api.ts). */
    async generateRouteCerts(request, ctx) {
      if (Boolean(request.appName) === Boolean(request.kubeCluster)) throw new BadInputError('name exactly one of app_name and kube_cluster');
      return issueRoutedCertificate(deps, { tlsPublicKey: request.tlsPublicKey, routeToCluster: '', dbService: '', dbUser: '', dbName: '', appName: request.appName, appPublicAddr: request.appPublicAddr, kubeCluster: request.kubeCluster }, ctx);
    },

    async signAppToken(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'sign app tokens', ['node', 'app']);
      const username = z.string().min(1).max(253).parse(request.username);
      let traits: Record<string, string[]>;
      try {
        traits = traitsSchema.parse(request.traitsJson ? JSON.parse(request.traitsJson) : {});
      } catch (error) {
        throw new BadInputError(`traits_json must be a JSON object of string lists: ${(error as Error).message}`);
      }
      const now = Math.floor(deps.clock.now().getTime() / 1000);
      const exp = Math.min(Number(request.expiresUnix) || now + maxAppTokenSeconds, now + maxAppTokenSeconds);
      if (exp <= now) throw new BadInputError('the token would already be expired: the user certificate has expired');
      const claims: AppClaims = {
        iss: deps.clusterName,
        sub: username,
        aud: request.audience.slice(0, 1_024),
        username,
        roles: request.roles.slice(0, 256),
        traits,
        iat: now,
        nbf: now - 1,
        exp,
      };
      const signer = deps.authorities.jwtSigner();
      return { jwt: signEs256Jwt(claims, signer.key, signer.kid) };
    },
  };
}

function _name(value: string, what: string): string {
  const parsed = name.safeParse(value);
  if (!parsed.success) throw new BadInputError(`bad ${what} ${JSON.stringify(value.slice(0, 64))}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
