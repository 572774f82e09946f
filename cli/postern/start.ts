/**
 * `postern start`: runs what postern.yaml enables in one process and stops it cleanly
 * on SIGTERM/SIGINT (draining agent sessions first) and reloads it on SIGHUP
 * (cli/postern/lifecycle.ts). Diagnostics (/healthz, /readyz, /metrics) come up first
 * so an orchestrator can watch start-up.
 */
import { stringOption, type Invocation } from '../command.ts';
import { loadConfig, type PosternConfig } from '../../cluster/common/config.ts';
import { createLogger, type Logger } from '../../cluster/common/logger.ts';
import { DiagServer } from '../../cluster/common/diag-server.ts';
import type { AuthServer } from '../../cluster/auth/auth-server.ts';
import type { RunningProxy } from '../../cluster/proxy/index.ts';
import { drainTimeoutMs, levelControl, reloadConfig } from './lifecycle.ts';

/** Default config location, overridable by POSTERN_CONFIG. */
export function defaultConfigPath(): string {
  return process.env.POSTERN_CONFIG ?? '/etc/postern.yaml';
}

export interface RunningDaemon {
  auth?: AuthServer;
  proxy?: RunningProxy;
  diag?: DiagServer;
  diagPort?: number;
  /** Refuses new agent sessions and waits up to `deadlineMs` for open ones; resolves with how many are left. */
  drain(deadlineMs: number): Promise<number>;
  /** Applies reloadable agent settings (labels) from `config`. */
  reloadAgent?(config: PosternConfig): void;
  stop(): Promise<void>;
}

/**
 * Starts every enabled service of `config`; the caller decides when to stop. Each
 * service's code is imported only when the config enables it: an agent host never
 * loads the auth server or the proxy (their modules are a third of an agent's heap).
 */
export async function startDaemon(config: PosternConfig, logger: Logger): Promise<RunningDaemon> {
  const diag = new DiagServer();
  const stops: Array<() => Promise<void>> = [];
  const daemon: RunningDaemon = {
    diag,
    drain: async () => 0,
    stop: async () => {
      for (const stop of stops.reverse()) await stop().catch((error: unknown) => logger.error({ err: error }, 'stopping a service failed'));
    },
  };
  try {
    if (config.diag_addr) {
      daemon.diagPort = await diag.listen(config.diag_addr);
      stops.push(() => diag.close());
      logger.info({ addr: config.diag_addr, port: daemon.diagPort }, 'diagnostics listening (/healthz, /readyz, /metrics)');
    }
    if (config.auth?.enabled) {
      let ready = false;
      diag.addReadinessCheck('auth', () => (ready ? { ready } : { ready, reason: 'starting' }));
      const [{ AuthServer }, { rootAuthExtension }, { leafAuthExtension }] = await Promise.all([
        import('../../cluster/auth/auth-server.ts'),
        import('../../root/trust/root-auth-extension.ts'),
        import('../../leaf/trust/leaf-auth-extension.ts'),
      ]);
      daemon.auth = await AuthServer.start({
        clusterName: config.auth.cluster_name,
        dataDir: config.data_dir,
        listenAddr: config.auth.listen_addr,
        maxSessionTtl: config.auth.max_session_ttl,
        registry: diag.registry,
        logger: logger.child({ component: 'auth' }),
        // Every cluster can be a root and a leaf of trust.
        extensions: [rootAuthExtension(), leafAuthExtension()],
      });
      ready = true;
      const auth = daemon.auth;
      stops.push(() => auth.close());
    }
    if (config.proxy?.enabled) {
      const [{ startProxyService }, { LeafTunnels }, { RootTunnels }] = await Promise.all([
        import('../../cluster/proxy/index.ts'),
        import('../../root/tunnel/leaf-tunnels.ts'),
        import('../../leaf/tunnel/root-tunnels.ts'),
      ]);
      const proxy = (daemon.proxy = await startProxyService(config, { logger, diag, localAuth: daemon.auth, extensions: [new LeafTunnels(), new RootTunnels()] }));
      stops.push(() => proxy.close());
    }
    if (config.agent?.enabled) {
      const { startAgent } = await import('../../agent/agent.ts');
      const agent = await startAgent(config, { logger: logger.child({ component: 'agent' }), diag });
      stops.push(() => agent.stop());
      daemon.drain = (deadlineMs) => agent.drain(deadlineMs);
      daemon.reloadAgent = (next) => agent.reload(next);
    }
    return daemon;
  } catch (error) {
    await daemon.stop();
    throw error;
  }
}

/** `postern start`. */
export async function start(invocation: Invocation): Promise<number> {
  const file = stringOption(invocation, 'config') ?? defaultConfigPath();
  const config = await loadConfig(file);
  const drainMs = drainTimeoutMs();
  const logger = createLogger({ level: config.log.level, name: 'postern' });
  const setLevel = levelControl(logger);
  // Listen before starting: a SIGTERM during start-up must stop cleanly, not kill the process.
  const stopRequested = waitForSignal();
  // Ignored until start-up is done: SIGHUP's default action would kill the process.
  let onHangUp = () => logger.warn('SIGHUP during start-up ignored; send it again once "postern started" is logged');
  process.on('SIGHUP', () => onHangUp());
  const daemon = await startDaemon(config, logger);
  let running = config;
  let reloading = Promise.resolve();
  onHangUp = () => {
    reloading = reloading.then(async () => {
      running = await reloadConfig(file, running, daemon, setLevel, logger);
    });
  };
  logger.info({ config: file }, 'postern started');
  await stopRequested;
  logger.info({ deadline_ms: drainMs }, 'stopping: new sessions are refused; draining open ones');
  const left = await Promise.race([daemon.drain(drainMs), waitForSignal().then(() => -1)]);
  if (left === -1) logger.warn('second stop signal: stopping without waiting for sessions');
  else if (left > 0) logger.warn({ open: left }, `drain deadline passed; closing ${left} open session(s)`);
  else logger.info('drained: no open sessions');
  await daemon.stop();
  logger.info('stopped');
  return 0;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
}
