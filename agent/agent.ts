/**
 * The agent: what `postern start` runs for an `agent:` section.
 *
 * ```
 * data_dir/agent-identity.json ──(none? join with agent.token + agent.ca_pin)
 *    │
 *    ├─ tunnels   TunnelPool: a reverse tunnel to every proxy, streams -> ServiceRegistry
 *    ├─ heartbeat HeartbeatLoop: inventory + labels + services -> auth (through the proxy)
 *    ├─ identity  IdentityRenewer: new certificates at half life -> tunnels refresh
 *    ├─ ssh       AgentSsh (agent.ssh.enabled): the `ssh` tunnel service, RBAC and audit from auth
 *    ├─ desktop   AgentDesktops (agent.desktops[]): `desktop:NAME` services over RDP (docs/desktops.md)
 *    ├─ apps      AgentApps (agent.apps[]): `app:NAME` services, RBAC, JWT assertions and audit from auth
 *    ├─ kube      AgentKube (agent.kube.clusters[]): `kube_cluster:NAME` forwarders with impersonation
 *    └─ db        DbService (agent.db.databases): `db:NAME` tunnel services (docs/databases.md)
 * ```
 *
 * The three run under a ServiceSupervisor; `/readyz` is ready when a tunnel is up and
 * the last heartbeat went through. A protocol service's code is imported only when the
 * config enables it, so an SSH-only agent does not hold the desktop, app or kube code.
 */
import os from 'node:os';
import path from 'node:path';
import type { PosternConfig } from '../cluster/common/config.ts';
import type { Logger } from '../cluster/common/logger.ts';
import { versionInfo } from '../cluster/common/version.ts';
import { parseDuration } from '../cluster/common/duration.ts';
import { BadInputError } from '../protocols/errors.ts';
import type { TunnelOptions } from '../protocols/tunnel/index.ts';
import { AgentIdentity, agentIdentityPath, loadAgentIdentity } from './identity/agent-identity.ts';
import { AuthConnector } from './identity/auth-connector.ts';
import { IdentityRenewer } from './identity/identity-renewer.ts';
import { readJoinRecord, type JoinRecord } from './identity/join-record.ts';
import { CommandLabels } from './inventory/command-labels.ts';
import { collectHostFacts, hostAddresses, type HostFacts } from './inventory/host-facts.ts';
import { Inventory } from './inventory/inventory.ts';
import { joinCluster } from './join/join-cluster.ts';
import { HeartbeatLoop } from './heartbeat/heartbeat-loop.ts';
import { ServiceSupervisor } from './supervisor/service-supervisor.ts';
import type { BackoffOptions } from './supervisor/backoff.ts';
import { ServiceRegistry, type ServiceHandler } from './tunnel/service-registry.ts';
import { TunnelPool } from './tunnel/tunnel-pool.ts';
import type { AgentSsh } from './services/ssh/ssh-wiring.ts';
import type { AgentDesktops } from './services/desktop/desktop-service.ts';
import type { AgentApps } from './services/app/app-service.ts';
import type { AgentKube } from './services/kube/kube-service.ts';
import { ClusterAccess } from './services/access/cluster-access.ts';
import type { DbService } from './services/db/db-service.ts';

type AgentConfig = NonNullable<PosternConfig['agent']>;

/** Options for {@link startAgent}. */
export interface StartAgentOptions {
  logger: Logger;
  /** Where `/readyz` checks are registered. */
  diag?: { addReadinessCheck(name: string, check: () => { ready: boolean; reason?: string }): void };
  /** Services to serve through the tunnels, by name. */
  services?: Record<string, ServiceHandler>;
  /** Host facts to report; collected with systeminformation when absent. */
  facts?: HostFacts;
  tunnel?: TunnelOptions;
  backoff?: BackoffOptions;
  discoveryIntervalMs?: number;
}

/** A running agent and its parts. */
export interface RunningAgent {
  identity: AgentIdentity;
  services: ServiceRegistry;
  tunnels: TunnelPool;
  heartbeat: HeartbeatLoop;
  renewer: IdentityRenewer;
  supervisor: ServiceSupervisor;
  /** The SSH service, when agent.ssh is enabled. */
  ssh?: AgentSsh;
  /** The desktop service, when agent.desktops lists any. */
  desktops?: AgentDesktops;
  /** The app service, when agent.apps lists apps. */
  apps?: AgentApps;
  /** The Kubernetes service, when agent.kube lists clusters. */
  kube?: AgentKube;
  /** The database service, when agent.db lists databases. */
  db?: DbService;
  /** Ready when every part runs and reports healthy; the reason names the first that does not. */
  readiness(): { ready: boolean; reason?: string };
  /** Refuses new sessions and waits up to `deadlineMs` for open ones; resolves with how many were still open. */
  drain(deadlineMs: number): Promise<number>;
  /** Applies what a config reload can change without a restart (labels); throws, changing nothing, when it cannot. */
  reload(config: PosternConfig): void;
  stop(): Promise<void>;
}

/** Joins if needed, then starts the agent's tunnels, heartbeat and identity renewal. */
export async function startAgent(config: PosternConfig, options: StartAgentOptions): Promise<RunningAgent> {
  const agent = config.agent;
  if (!agent) throw new BadInputError('cannot start the agent: the config has no agent section');
  const log = options.logger;
  const identity = new AgentIdentity(agentIdentityPath(config.data_dir), await _identity(config.data_dir, agent, log));
  const record = await readJoinRecord(config.data_dir);
  const proxyAddr = agent.proxy_addr ?? identity.current.proxy_addr;
  if (!proxyAddr) throw new BadInputError(`cannot start the agent: no proxy address; set agent.proxy_addr (host:port of a proxy)`);
  const nodeName = agent.node_name ?? record?.node_name ?? os.hostname();
  const services = new ServiceRegistry();
  for (const [name, handler] of Object.entries(options.services ?? {})) services.register(name, handler);
  const { inventory, commandLabels } = await _inventory(agent, record, { nodeName, services, options });
  const auth = new AuthConnector(proxyAddr, identity);
  // One access module for every protocol service (identities, trust, roles, audit); SSH checks its own SSH certificates.
  const access = new ClusterAccess({ auth: () => auth.client(), cluster: () => identity.current.cluster, logger: log });
  let ssh: AgentSsh | undefined;
  if (agent.ssh.enabled && !services.names().includes('ssh')) {
    const { AgentSsh } = await import('./services/ssh/ssh-wiring.ts');
    ssh = new AgentSsh({ identity, auth: () => auth.client(), nodeName, labels: () => inventory.snapshot().labels, logger: log, access, recordingsDir: path.join(config.data_dir, 'recordings') });
    services.register('ssh', ssh.serviceHandler);
  }
  let desktops: AgentDesktops | undefined;
  if (agent.desktops.length > 0) {
    const { AgentDesktops } = await import('./services/desktop/desktop-service.ts');
    desktops = new AgentDesktops({ identity, auth: () => auth.client(), access, desktops: agent.desktops, dataDir: config.data_dir, logger: log });
    desktops.register(services);
  }
  let apps: AgentApps | undefined;
  if (agent.apps.length > 0) {
    const { AgentApps } = await import('./services/app/app-service.ts');
    apps = new AgentApps({ apps: agent.apps, access, services, nodeName, logger: log.child({ part: 'apps' }) });
  }
  let kube: AgentKube | undefined;
  if (agent.kube.clusters.length > 0) {
    const { AgentKube } = await import('./services/kube/kube-service.ts');
    kube = new AgentKube({ clusters: agent.kube.clusters, access, services, nodeName, logger: log.child({ part: 'kube' }), auth: () => auth.client(), recordingsDir: path.join(config.data_dir, 'recordings', 'kube') });
  }
  let db: DbService | undefined;
  if (agent.db.databases.length > 0 || agent.db.resources.length > 0) {
    const { DbService } = await import('./services/db/db-service.ts');
    db = new DbService({ databases: agent.db.databases, resourceSelectors: agent.db.resources.map((r) => r.labels), resourcePollMs: parseDuration(agent.db.poll_interval), auth: () => auth.client(), cluster: () => identity.current.cluster ?? '', logger: log, access });
    db.register(services);
  }
  const tunnels = new TunnelPool({
    proxyAddr,
    identity: () => identity.current,
    onStream: services.onStream,
    logger: log,
    tunnel: options.tunnel,
    backoff: options.backoff,
    discoveryIntervalMs: options.discoveryIntervalMs,
  });
  // Back from a total outage: a fresh auth channel, not one still backing off from the failures.
  // Not on the very first tunnel: the services' first calls (user CAs, roles) are under way on it.
  let everUp = false;
  tunnels.on('up', () => {
    if (tunnels.connected === 1 && everUp) auth.close();
    everUp = true;
  });
  const heartbeat = new HeartbeatLoop({
    auth: () => auth.client(),
    inventory,
    services: () => services.names(),
    served: () => services.served(),
    onServicesChange: (listener) => services.onChange(listener),
    tunnels,
    logger: log,
  });
  const renewer = new IdentityRenewer({
    identity, auth: () => auth.client(), nodeName, addresses: () => hostAddresses(), logger: log, onRenewed: () => tunnels.refresh(),
  });
  const supervisor = new ServiceSupervisor({ logger: log });
  void commandLabels.start();
  for (const service of [tunnels, heartbeat, renewer, ...(ssh ? [ssh] : []), ...(db ? [db] : []), ...(desktops ? [desktops] : []), ...(apps ? [apps] : []), ...(kube ? [kube] : [])]) supervisor.run(service);
  const readiness = (): { ready: boolean; reason?: string } => _readiness(supervisor);
  options.diag?.addReadinessCheck('agent', readiness);
  log.info({ hostId: identity.current.host_id, cluster: identity.current.cluster, proxy: proxyAddr, node: nodeName }, 'agent started');
  return {
    identity, services, tunnels, heartbeat, renewer, supervisor, ssh, db, desktops, apps, kube, readiness,
    drain: (deadlineMs) => services.drain(deadlineMs),
    reload: (next) => {
      if (!next.agent) throw new BadInputError('the new config has no agent section; removing the agent needs a restart');
      inventory.setStaticLabels(_staticLabels(next.agent, record));
    },
    stop: async () => {
      commandLabels.stop();
      await supervisor.stopAll(5_000);
      apps?.close();
      kube?.close();
      access.stop();
      auth.dispose();
    },
  };
}

/** Host facts, labels (join record, config, token, commands) and services as one inventory. */
async function _inventory(
  agent: AgentConfig,
  record: JoinRecord | undefined,
  context: { nodeName: string; services: ServiceRegistry; options: StartAgentOptions },
): Promise<{ inventory: Inventory; commandLabels: CommandLabels }> {
  const log = context.options.logger;
  const tokenLabels = record?.token_labels ?? {};
  const commandLabels = new CommandLabels(_withoutKeys(agent.command_labels, tokenLabels, log), { logger: log });
  const inventory = new Inventory({
    facts: context.options.facts ?? (await collectHostFacts({ logger: log })),
    version: versionInfo().version,
    startedAt: new Date(),
    nodeName: context.nodeName,
    staticLabels: _staticLabels(agent, record),
    commandLabels,
    services: () => context.services.names(),
  });
  return { inventory, commandLabels };
}

/** Labels from the config, the join and the token. */
function _staticLabels(agent: AgentConfig, record: JoinRecord | undefined): Record<string, string> {
  // The admin's token labels win over the host's own: they are what the admin vouched for.
  return { ...(agent.ssh.enabled ? agent.ssh.labels : {}), ...record?.labels, ...agent.labels, ...record?.token_labels };
}

/** Ready when every supervised part runs healthy; otherwise the first that does not, and why. */
function _readiness(supervisor: ServiceSupervisor): { ready: boolean; reason?: string } {
  const bad = supervisor.status().find((row) => row.state !== 'running' || row.health?.ok === false);
  return bad ? { ready: false, reason: `${bad.name}: ${bad.health?.detail ?? bad.lastError ?? bad.state}` } : { ready: true };
}

/** The identity on disk, or a fresh one from joining with the configured token. */
async function _identity(dataDir: string, agent: AgentConfig, log: Logger) {
  const existing = await loadAgentIdentity(dataDir);
  if (existing) return existing;
  if (!agent.token || !agent.ca_pin || !agent.proxy_addr) {
    throw new BadInputError(
      `cannot start the agent: ${agentIdentityPath(dataDir)} does not exist and agent.token, agent.ca_pin and agent.proxy_addr are not all set; ` +
        `join first: postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:... --data-dir ${dataDir}`,
    );
  }
  log.info({ proxy: agent.proxy_addr }, 'no identity yet; joining the cluster with the configured token');
  const joined = await joinCluster({
    proxyAddr: agent.proxy_addr,
    token: agent.token,
    caPin: agent.ca_pin,
    dataDir,
    nodeName: agent.node_name ?? os.hostname(),
    addresses: hostAddresses(),
  });
  log.info({ hostId: joined.identity.host_id, cluster: joined.cluster, expires: joined.expires.toISOString() }, 'joined the cluster');
  return joined.identity;
}

/** Command label specs without the keys a token label sets (the token's value wins). */
function _withoutKeys<T>(specs: Record<string, T>, drop: Record<string, string>, log: Logger): Record<string, T> {
  const kept = Object.entries(specs).filter(([key]) => {
    if (!Object.hasOwn(drop, key)) return true;
    log.warn({ label: key }, 'command label ignored: the join token sets this label');
    return false;
  });
  return Object.fromEntries(kept);
}
