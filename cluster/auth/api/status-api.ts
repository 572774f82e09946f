/** Cluster status and the public side of its CAs; any authenticated caller may read them. */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { caKinds, type CaKind } from '../pki/ca-kinds.ts';
import { publicAuthorityOf } from '../pki/authorities.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

/** The status handlers. */
export function statusApi(deps: AuthDeps): Pick<Handlers, 'status' | 'exportAuthorities'> {
  return {
    async status(_request, ctx) {
      const identity = deps.authorizer.requireIdentity(ctx);
      return {
        clusterName: deps.clusterName,
        version: deps.version,
        backend: deps.backendName,
        caller: identity.kind === 'user' ? `user ${identity.username} (roles ${identity.roles.join(',')})` : `host ${identity.hostId} (${identity.systemRoles.join(',')})`,
        authorities: caKinds.map((kind) => {
          const ca = deps.authorities.publicAuthority(kind);
          return { kind, cluster: ca.cluster, tlsPin: ca.tlsPins[0] ?? '', sshFingerprint: ca.sshFingerprints[0] ?? '' };
        }),
      };
    },

    async exportAuthorities(request) {
      const remote = request.includeRemote
        ? (await deps.authorities.listRemote())
            .filter((ca) => !request.kind || ca.kind === request.kind)
            .map((ca) => {
              const pub = publicAuthorityOf(ca);
              return { kind: ca.kind, cluster: ca.cluster, tlsCertPem: pub.tlsCertPems.join(''), sshPublicKey: pub.sshPublicKeys.join('\n'), jwksJson: '' };
            })
        : [];
      if (request.kind && !(caKinds as readonly string[]).includes(request.kind)) {
        throw new BadInputError(`unknown CA kind "${request.kind}"; expected one of ${caKinds.join(', ')}`);
      }
      const kinds = request.kind ? [request.kind as CaKind] : [...caKinds];
      return {
        authorities: kinds.map((kind) => {
          const ca = deps.authorities.publicAuthority(kind);
          return {
            kind,
            cluster: ca.cluster,
            tlsCertPem: ca.tlsCertPems.join(''),
            sshPublicKey: ca.sshPublicKeys.join('\n'),
            jwksJson: ca.jwks ? JSON.stringify(ca.jwks) : '',
          };
        }).concat(remote),
      };
    },
  };
}
