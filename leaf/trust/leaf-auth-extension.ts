/**
 * The leaf side of trust in the Auth Service: writing a `trusted_cluster` joins the root.
 *
 * ```
 * pctl create -f trusted_cluster.yaml
 *   -> leaf auth: TLS to spec.proxy_addr, the root's host CA checked against spec.ca_pin
 *   -> POST /v1/trusted-clusters/validate {token, leaf name, leaf host CA}
 *   <- root name (must equal metadata.name), root user CA, root host CA
 *   -> the root CAs are kept at /trust/root_cas/<root>; while enabled they are also
 *      remote CAs (authorities.ts), which agents and the proxy trust
 * ```
 *
 * The token is used once and never stored. Later writes without a token change the
 * role map or `enabled`: false takes the root's CAs out of the trust (the proxy then
 * drops its tunnel to the root), true puts the kept copy back. Deleting the resource
 * forgets the root entirely.
 */
import { BadInputError } from '../../protocols/errors.ts';
import { fetchPinnedCa, pinOf } from '../../cluster/api/pinned-ca.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import type { AuthDeps } from '../../cluster/auth/api/auth-deps.ts';
import type { AuthExtension } from '../../cluster/auth/api/auth-extension.ts';
import { auditIdentity } from '../../cluster/auth/api/authorizer.ts';
import type { Resource } from '../../cluster/access/resources/resource.ts';
import { withoutToken, type TrustedCluster } from '../../cluster/access/resources/trusted-cluster.ts';
import { X509Certificate } from 'node:crypto';

const rootCasPrefix = '/trust/root_cas/';

/** The root's CAs as the root returned them at join. */
interface RootCas {
  root_cluster: string;
  user_ca: { tls_cert_pems: string[]; ssh_public_keys: string[] };
  host_ca: { tls_cert_pems: string[]; ssh_public_keys: string[] };
}

/** Adds the trusted_cluster hooks (join, enable/disable, forget) to a cluster's auth. */
export function leafAuthExtension(options: { timeoutMs?: number } = {}): AuthExtension {
  return {
    resourceHooks: (deps) => ({
      trusted_cluster: {
        beforeWrite: async (resource, { ctx }) => {
          const trusted = resource as TrustedCluster;
          const name = trusted.metadata.name;
          let cas = await readRootCas(deps, name);
          if (trusted.spec.token) {
            cas = await join(deps, trusted, options.timeoutMs ?? 10_000);
            await deps.backend.put({ key: rootCasPrefix + name, value: JSON.stringify(cas) });
            await deps.audit.emit({ type: 'trusted_cluster.join', identity: auditIdentity(ctx), resource: { kind: 'trusted_cluster', name }, outcome: 'success', fields: { proxy: trusted.spec.proxy_addr } });
          } else if (!cas) {
            throw new BadInputError(`trusted_cluster "${name}": spec.token is required to join the root the first time; ask the root admin for one: pctl tokens add --type=trusted_cluster`);
          }
          await applyEnabled(deps, name, trusted.spec.enabled, cas);
          return withoutToken(trusted) as Resource;
        },
        afterDelete: async (name) => {
          await deps.authorities.removeRemote(name).catch(() => 0);
          await deps.backend.delete(rootCasPrefix + name).catch(() => undefined);
        },
        view: async (resources) => resources.map((r) => withoutToken(r as TrustedCluster)),
      },
    }),
  };
}

async function readRootCas(deps: AuthDeps, name: string): Promise<RootCas | undefined> {
  const item = await deps.backend.get(rootCasPrefix + name);
  return item ? (JSON.parse(item.value) as RootCas) : undefined;
}

async function applyEnabled(deps: AuthDeps, name: string, enabled: boolean, cas: RootCas): Promise<void> {
  if (!enabled) {
    await deps.authorities.removeRemote(name);
    deps.logger.info({ root: name }, 'trusted cluster disabled: the root CAs left this cluster\'s trust');
    return;
  }
  await deps.authorities.putRemote({ cluster: name, kind: 'user', tlsCertPems: cas.user_ca.tls_cert_pems, sshPublicKeys: cas.user_ca.ssh_public_keys });
  await deps.authorities.putRemote({ cluster: name, kind: 'host', tlsCertPems: cas.host_ca.tls_cert_pems, sshPublicKeys: cas.host_ca.ssh_public_keys });
}

async function join(deps: AuthDeps, trusted: TrustedCluster, timeoutMs: number): Promise<RootCas> {
  const name = trusted.metadata.name;
  const where = `trusted_cluster "${name}"`;
  const address = parseProxyAddress(trusted.spec.proxy_addr);
  let rootHostCa: string;
  try {
    rootHostCa = await fetchPinnedCa(address, trusted.spec.ca_pin, { timeoutMs, alpn: ['http/1.1'] });
  } catch (error) {
    throw new BadInputError(`${where}: cannot verify the root proxy ${trusted.spec.proxy_addr}: ${(error as Error).message}`);
  }
  // The name first, so a misnamed resource does not spend the token.
  const discovery = await callWebApi<{ cluster_name: string }>(address, 'GET', '/v1/discovery', { caPems: [rootHostCa], timeoutMs }).catch((error: unknown) => {
    throw new BadInputError(`${where}: cannot read the root proxy's discovery at ${trusted.spec.proxy_addr}: ${(error as Error).message}`);
  });
  if (discovery.cluster_name !== name) {
    throw new BadInputError(`${where}: the root at ${trusted.spec.proxy_addr} is named "${discovery.cluster_name}"; name the resource after it (metadata.name: ${discovery.cluster_name})`);
  }
  const host = deps.authorities.publicAuthority('host');
  let answer: RootCas;
  try {
    answer = await callWebApi<RootCas>(address, 'POST', '/v1/trusted-clusters/validate', {
      caPems: [rootHostCa],
      timeoutMs,
      body: { token: trusted.spec.token, leaf_cluster: deps.clusterName, host_ca_tls_pems: host.tlsCertPems, host_ca_ssh_keys: host.sshPublicKeys },
    });
  } catch (error) {
    throw new BadInputError(`${where}: the root at ${trusted.spec.proxy_addr} refused the join: ${(error as Error).message}`);
  }
  if (answer.root_cluster !== name) {
    throw new BadInputError(`${where}: the root at ${trusted.spec.proxy_addr} is named "${answer.root_cluster}"; name the resource after it (metadata.name: ${answer.root_cluster})`);
  }
  const pinned = pinOf(new X509Certificate(rootHostCa));
  if (!answer.host_ca.tls_cert_pems.some((pem) => pinOf(new X509Certificate(pem)) === pinned)) {
    throw new BadInputError(`${where}: the root returned a host CA that does not match ca_pin ${trusted.spec.ca_pin}`);
  }
  return answer;
}
