/**
 * The agent's database service: every `agent.db.databases[]` entry is served through
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
 * certificates, audit) is DbClusterAccess.
 */
import { readFile } from 'node:fs/promises';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { DatabaseConfig } from '../../../cluster/common/config.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { TunnelRejectedError } from '../../../protocols/tunnel/index.ts';
import type { ServiceHealth, SupervisedService } from '../../supervisor/service.ts';
import type { ServiceRegistry } from '../../tunnel/service-registry.ts';
import { DbClusterAccess } from './db-cluster-access.ts';
import { servePostgresDial, type PostgresSessionContext } from './postgres-session.ts';
import { serveMysqlDial } from './mysql-session.ts';

export interface DbServiceOptions {
  databases: readonly DatabaseConfig[];
  auth: () => AuthClient;
  cluster: () => string;
  logger: Logger;
}

export class DbService implements SupervisedService {
  readonly name = 'db';
  readonly access: DbClusterAccess;
  readonly #options: DbServiceOptions;
  readonly #cancelKeys = new Map<number, { secretKey: number; upstream: { processId: number; secretKey: number } }>();
  #removals: Array<() => void> = [];

  constructor(options: DbServiceOptions) {
    this.#options = options;
    this.access = new DbClusterAccess({ auth: options.auth, cluster: options.cluster, logger: options.logger.child({ part: 'db' }) });
  }

  /** Registers every configured database with the tunnel services. */
  register(services: ServiceRegistry): void {
    for (const db of this.#options.databases) {
      const handler = db.protocol === 'postgres' ? this.#postgresHandler(db) : this.#mysqlHandler(db);
      this.#removals.push(services.registerServed({
        kind: 'db',
        name: db.name,
        labels: db.labels,
        ...(db.description ? { description: db.description } : {}),
        spec: { protocol: db.protocol, uri: db.uri },
      }, handler));
    }
  }

  async start(): Promise<void> {
    this.access.start();
  }

  async stop(): Promise<void> {
    await this.access.stop();
  }

  unregister(): void {
    for (const remove of this.#removals) remove();
    this.#removals = [];
  }

  health(): ServiceHealth {
    return { ok: true, detail: `${this.#options.databases.length} database(s); ${this.access.describe()}` };
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
