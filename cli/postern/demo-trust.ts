/**
 * The trusted-cluster half of `postern demo`: a leaf cluster "demo-leaf" (auth and
 * proxy in one process, ports 3125/3180) that trusts the demo root, and an agent in
 * it. On the first run the root makes a trusted_cluster token (labels env=demo) and a
 * role `leaves` that reaches leaves with that label; the leaf writes its
 * trusted_cluster with the role map access -> access, exactly as `pctl create -f`
 * would, so alice (root roles access, editor, leaves) reaches the leaf's node with her
 * logins.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { loadConfig } from '../../cluster/common/config.ts';
import type { Logger } from '../../cluster/common/logger.ts';
import { caPin } from '../../cluster/auth/pki/ca-pin.ts';
import type { AuthServer } from '../../cluster/auth/auth-server.ts';
import { newRole } from '../../cluster/access/roles/role.ts';
import type { Resource } from '../../cluster/access/resources/resource.ts';
import { AlreadyExistsError } from '../../protocols/errors.ts';
import { startDaemon, type RunningDaemon } from './start.ts';

export const demoLeafName = 'demo-leaf';
/** The root role that reaches leaves labelled env=demo. */
export const leavesRole = 'leaves';

const leafConfig = (dataDir: string) => `# The demo leaf cluster: auth and proxy (written by postern demo).
version: v1
data_dir: ${JSON.stringify(dataDir)}
log:
  level: warn
diag_addr: 127.0.0.1:3002
auth:
  cluster_name: ${demoLeafName}
  listen_addr: 127.0.0.1:3125
proxy:
  listen_addr: 127.0.0.1:3180
  public_addr: localhost:3180
`;

const leafAgentConfig = (dataDir: string, token: string, pin: string) => `# The demo leaf's agent (written by postern demo).
version: v1
data_dir: ${JSON.stringify(dataDir)}
log:
  level: warn
diag_addr: 127.0.0.1:3003
agent:
  node_name: ${JSON.stringify(leafNodeName())}
  proxy_addr: 127.0.0.1:3180
  token: ${JSON.stringify(token)}
  ca_pin: ${JSON.stringify(pin)}
  labels:
    env: demo-leaf
`;

/** The leaf agent's node name. */
export function leafNodeName(): string {
  return `${os.hostname()}-leaf`;
}

/** Makes sure the root has the `leaves` role (first run). */
export async function ensureLeavesRole(root: AuthServer): Promise<void> {
  try {
    await root.deps.resources.put(newRole(leavesRole, { allow: { cluster_labels: { env: 'demo' } } }, { description: 'Reaches the demo leaf clusters (labels env=demo)' }));
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
}

/** Starts the leaf and its agent; on the first run joins the leaf to `root` (at localhost:3080). */
export async function startDemoLeaf(dir: string, root: AuthServer, logger: Logger): Promise<{ daemons: RunningDaemon[]; pin: string }> {
  const clusterPath = path.join(dir, 'leaf.yaml');
  const agentPath = path.join(dir, 'leaf-agent.yaml');
  if (!existsSync(clusterPath)) await writeFile(clusterPath, leafConfig(path.join(dir, 'leaf')), { mode: 0o600 });
  const daemons: RunningDaemon[] = [await startDaemon(await loadConfig(clusterPath), logger)];
  const leaf = daemons[0]!.auth!;
  const pin = caPin(leaf.deps.authorities.trustedTlsCerts('host')[0] ?? '');
  const trusted = (await leaf.deps.resources.list('trusted_cluster')).length > 0;
  if (!trusted) await joinRoot(root, leaf);
  if (!existsSync(agentPath)) {
    const { secret } = await leaf.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
    await writeFile(agentPath, leafAgentConfig(path.join(dir, 'leaf-agent'), secret, pin), { mode: 0o600 });
  }
  daemons.push(await startDaemon(await loadConfig(agentPath), logger));
  return { daemons, pin };
}

/** What `pctl tokens add --type=trusted_cluster` on the root and `pctl create -f trusted_cluster.yaml` on the leaf do. */
async function joinRoot(root: AuthServer, leaf: AuthServer): Promise<void> {
  const { secret } = await root.deps.tokens.add({ roles: ['trusted_cluster'], ttlMs: 600_000, labels: { env: 'demo' }, singleUse: true });
  const resource: Resource = {
    kind: 'trusted_cluster',
    version: 'v1',
    metadata: { name: root.deps.clusterName },
    spec: {
      enabled: true,
      proxy_addr: 'localhost:3080',
      ca_pin: caPin(root.deps.authorities.trustedTlsCerts('host')[0] ?? ''),
      token: secret,
      role_map: [{ remote: 'access', local: ['access'] }],
    },
  };
  const hook = leaf.deps.resourceHooks.trusted_cluster?.beforeWrite;
  if (!hook) throw new Error('the leaf auth runs without the trusted cluster extension');
  const stored = await hook(resource, { upsert: true, ctx: { peerAddr: 'postern demo' } });
  await leaf.deps.resources.put(stored, { upsert: true });
}
