/**
 * What `postern start` does on signals after start-up.
 *
 * - SIGTERM/SIGINT: drain. The agent refuses new sessions (503 through the tunnel)
 *   and lets open ones finish for up to the drain timeout (`POSTERN_DRAIN_TIMEOUT`,
 *   default 30s; the systemd unit sets it), then everything stops and what is left
 *   is closed. A second signal stops at once. Auth and proxy stop without draining.
 * - SIGHUP: reload postern.yaml. Applied in place: `log.level`, `agent.labels`,
 *   `agent.ssh.labels` (the next heartbeat carries them). Every other change is
 *   logged as needing a restart and not applied. A config that does not load or
 *   validate is refused with a log line and the running one is kept.
 */
import type { Logger, LogLevel } from '../../cluster/common/logger.ts';
import { loadConfig, type PosternConfig } from '../../cluster/common/config.ts';
import { parseDuration } from '../../cluster/common/duration.ts';
import { BadInputError } from '../../protocols/errors.ts';

/** The drain deadline from `POSTERN_DRAIN_TIMEOUT` (a duration such as 30s); 30 s when unset. */
export function drainTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.POSTERN_DRAIN_TIMEOUT;
  if (text === undefined || text === '') return 30_000;
  try {
    return parseDuration(text);
  } catch (error) {
    throw new BadInputError(`POSTERN_DRAIN_TIMEOUT=${text}: ${(error as Error).message}`);
  }
}

/** Makes `setLevel` reach `root` and every child logger made from it, now or later. */
export function levelControl(root: Logger): (level: LogLevel) => void {
  const loggers = new Set<WeakRef<Logger>>([new WeakRef(root)]);
  root.onChild = (child) => void loggers.add(new WeakRef(child));
  return (level) => {
    for (const ref of loggers) {
      const logger = ref.deref();
      if (logger) logger.level = level;
      else loggers.delete(ref);
    }
  };
}

/** What a running daemon can change in place. */
export interface Reloadable {
  /** Applies the agent's labels; throws, changing nothing, when it cannot. */
  reloadAgent?(config: PosternConfig): void;
}

/** The fields a reload applies; everything else needs a restart. */
function withoutReloadable(config: PosternConfig): unknown {
  return {
    ...config,
    log: { ...config.log, level: undefined },
    agent: config.agent ? { ...config.agent, labels: undefined, ssh: { ...config.agent.ssh, labels: undefined } } : undefined,
  };
}

/** Dotted paths (two levels deep) whose values differ between `a` and `b`. */
export function changedPaths(a: unknown, b: unknown, prefix = '', depth = 2): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (depth === 0 || !isObject(a) || !isObject(b)) return [prefix || '(all)'];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.flatMap((key) => changedPaths(a[key], b[key], prefix ? `${prefix}.${key}` : key, depth - 1));
}

/**
 * Reloads `file` over `running`; resolves with the config now in effect (the running
 * one with the reloadable fields replaced, or unchanged when the reload was refused).
 */
export async function reloadConfig(file: string, running: PosternConfig, target: Reloadable, setLevel: (level: LogLevel) => void, logger: Logger): Promise<PosternConfig> {
  let next: PosternConfig;
  try {
    next = await loadConfig(file);
  } catch (error) {
    logger.error({ config: file, reason: (error as Error).message }, 'config reload refused: the new config does not load; keeping the running config');
    return running;
  }
  const needsRestart = changedPaths(withoutReloadable(running), withoutReloadable(next));
  if (running.agent && next.agent && target.reloadAgent) {
    try {
      target.reloadAgent(next);
    } catch (error) {
      logger.error({ config: file, reason: (error as Error).message }, 'config reload refused: the agent cannot apply it; keeping the running config');
      return running;
    }
  }
  setLevel(next.log.level);
  const applied: PosternConfig = {
    ...running,
    log: { ...running.log, level: next.log.level },
    agent: running.agent && next.agent ? { ...running.agent, labels: next.agent.labels, ssh: { ...running.agent.ssh, labels: next.agent.ssh.labels } } : running.agent,
  };
  logger.info({ config: file, applied: ['log.level', 'agent.labels', 'agent.ssh.labels'] }, 'config reloaded');
  if (needsRestart.length > 0) logger.warn({ config: file, fields: needsRestart }, `config changes that need a restart were not applied: ${needsRestart.join(', ')}`);
  return applied;
}
