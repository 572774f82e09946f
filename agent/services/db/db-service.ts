/**
 * The agent's database service: every `agent.db.databases[]` entry (and every `db`
 * resource matching `agent.db.resources`, re-read every 30 s) is served through
 * the tunnels as `db:NAME` and announced in the heartbeat (kind db, its labels, and
 * `{protocol, uri}` as the public spec), so `psh db ls` lists it and proxies find it.
 *
 * ```
 * proxy --dial db:NAME (identity = user certificate)--> DbService
 *        protocol postgres -> postgres-session.ts (RBAC, upstream login, audit, relay)
 *        protocol mysql    -> mysql-session.ts (greeting, RBAC, upstream login, audit, relay)
 * ```
 *
 * Runs under the ServiceSupervisor as `db`; cluster access (CAs, roles, db-client
 * certificates, audit) is DbClusterAccess over the agent's shared ClusterAccess.
 */
import { readFile } from 'node:fs/promises';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { DatabaseConfig } from '../../../cluster/common/config.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { TunnelRejectedError } from '../../../protocols/tunnel/index.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import { DbClusterAccess } from './db-cluster-access.ts';
import { ClusterAccess } from '../access/cluster-access.ts';
import { servePostgresDial, type PostgresSessionContext } from './postgres-session.ts';
import { serveMysqlDial } from './mysql-session.ts';
import { compileSelector, matchLabels, type LabelSelector } from '../../../cluster/access/roles/label-matcher.ts';
import { databaseFromResource, dbResourceKind } from '../../../cluster/access/resources/db-resource.ts';

export interface DbServiceOptions {
  databases: readonly DatabaseConfig[];
  /** Serve the `db` resources whose labels match one of these (agent.db.resources). */
  resourceSelectors?: readonly LabelSelector[];
  /** How often the `db` resources are read. Default 30 s (1 s doubling while auth cannot be reached). */
  resourcePollMs?: number;
  auth: () => AuthClient;
  cluster: () => string;
  logger: Logger;
  /** The agent's shared access module; default one of its own. */
  access?: ClusterAccess;
}

export class DbService implements SupervisedService {
  readonly name = 'db';
  readonly access: DbClusterAccess;
  readonly #shared: ClusterAccess;
  readonly #options: DbServiceOptions;
  readonly #cancelKeys = new Map<number, { secretKey: number; upstream: { processId: number; secretKey: number } }>();
  #removals: Array<() => void> = [];
  #services: ServiceRegistry | undefined;
  readonly #dynamic = new Map<string, { key: string; remove: () => void }>();
  #pollTimer: NodeJS.Timeout | undefined;
  #pollFailures = 0;
  #running = false;

  constructor(options: DbServiceOptions) {
    this.#options = options;
    this.#shared = options.access ?? new ClusterAccess({ auth: options.auth, cluster: options.cluster, logger: options.logger.child({ part: 'db' }) });
    this.access = new DbClusterAccess({ auth: options.auth, shared: this.#shared });
  }

  /** Registers every configured database with the tunnel services (and, once started, the matching `db` resources). */
  register(services: ServiceRegistry): void {
    this.#services = services;
    for (const db of this.#options.databases) this.#removals.push(this.#serve(services, db));
  }

  #serve(services: ServiceRegistry, db: DatabaseConfig): () => void {
    const handler = db.protocol === 'postgres' ? this.#postgresHandler(db) : this.#mysqlHandler(db);
    return services.registerServed({
      kind: 'db',
      name: db.name,
      labels: db.labels,
      ...(db.description ? { description: db.description } : {}),
      spec: { protocol: db.protocol, uri: db.uri },
    }, handler);
  }

  async start(): Promise<void> {
    this.#running = true;
    if ((this.#options.resourceSelectors ?? []).length > 0) void this.#poll();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#pollTimer);
    await Promise.race([this.access.flushAudit(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  unregister(): void {
    for (const remove of this.#removals) remove();
    this.#removals = [];
    for (const entry of this.#dynamic.values()) entry.remove();
    this.#dynamic.clear();
  }

  /** Reads the `db` resources and serves the matching ones; keeps serving what it has when auth cannot be reached. */
  async syncResources(): Promise<void> {
    const services = this.#services;
    if (!services) return;
    const { resourcesJson } = await this.#options.auth().getResources({ kind: 'db', name: '', stored: true }, { deadlineMs: 5_000 });
    const selectors = (this.#options.resourceSelectors ?? []).map((s) => compileSelector(s));
    const local = new Set(this.#options.databases.map((d) => d.name));
    const wanted = new Map<string, DatabaseConfig>();
    for (const raw of JSON.parse(resourcesJson) as unknown[]) {
      const parsed = dbResourceKind.schema.safeParse(raw);
      if (!parsed.success) continue;
      const db = databaseFromResource(parsed.data);
      if (local.has(db.name) || !selectors.some((s) => matchLabels(s, db.labels))) continue;
      wanted.set(db.name, db);
    }
    for (const [name, entry] of this.#dynamic) {
      const next = wanted.get(name);
      if (next && JSON.stringify(next) === entry.key) continue;
      entry.remove();
      this.#dynamic.delete(name);
      this.#log.info({ db: name }, next ? 'db resource changed; serving the new definition' : 'db resource gone or no longer selected; no longer served');
    }
    for (const [name, db] of wanted) {
      if (this.#dynamic.has(name)) continue;
      this.#dynamic.set(name, { key: JSON.stringify(db), remove: this.#serve(services, db) });
      this.#log.info({ db: name, protocol: db.protocol }, 'serving a db resource');
    }
  }

  get #log() {
    return this.#options.logger.child({ part: 'db' });
  }

  async #poll(): Promise<void> {
    try {
      await this.syncResources();
      this.#pollFailures = 0;
    } catch (error) {
      if (this.#pollFailures++ === 0) this.#log.warn({ err: error }, 'cannot read db resources from auth; serving the ones known');
    }
    if (!this.#running) return;
    const every = this.#options.resourcePollMs ?? 30_000;
    const delay = this.#pollFailures ? Math.min(every, 1_000 * 2 ** Math.min(this.#pollFailures - 1, 5)) : every;
    this.#pollTimer = setTimeout(() => void this.#poll(), delay);
    this.#pollTimer.unref();
  }

  health(): ServiceHealth {
    return { ok: true, detail: `${this.#options.databases.length + this.#dynamic.size} database(s) (${this.#dynamic.size} from db resources); ${this.access.describe()}` };
  }

  #postgresHandler(db: DatabaseConfig) {
    const context = this.#postgresContext(db);
    // Not awaited: the dial must be accepted before the proxy sends the start-up packet.
    return (dial: Parameters<typeof servePostgresDial>[0]): void => void servePostgresDial(dial, context);
  }

  #postgresContext(db: DatabaseConfig): PostgresSessionContext {
    const log = this.#options.logger.child({ part: 'db', db: db.name });
    return {
      db,
      access: this.access,
      cluster: this.#options.cluster,
      // The labels announced for the database are the ones RBAC matches, so listing and access agree.
      labels: () => db.labels,
      password: () => _password(db),
      upstreamCa: async () => (db.tls.ca_file ? readFile(db.tls.ca_file, 'utf8') : undefined),
      cancelKeys: this.#cancelKeys,
      logger: log,
    };
  }

  #mysqlHandler(db: DatabaseConfig) {
    const context = this.#postgresContext(db);
    return (dial: Parameters<typeof serveMysqlDial>[0]): void => {
      if (dial.headers['postern-db-op'] === 'cancel') throw new TunnelRejectedError(400, `database "${db.name}" speaks mysql: cancel with KILL QUERY instead`);
      void serveMysqlDial(dial, context);
    };
  }
}

async function _password(db: DatabaseConfig): Promise<string | undefined> {
  if (db.auth.type !== 'password') return undefined;
  if (db.auth.password_env) {
    const value = process.env[db.auth.password_env];
    if (value === undefined) throw new Error(`environment variable ${db.auth.password_env} (auth.password_env of database ${db.name}) is not set`);
    return value;
  }
  try {
    return (await readFile(db.auth.password_file!, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    throw new Error(`cannot read ${db.auth.password_file} (auth.password_file of database ${db.name}): ${(error as Error).message}`);
  }
}
