/**
 * The access decision for one database session, shared by the PostgreSQL and MySQL
 * engines: the certificate the proxy forwarded must be a current user certificate of
 * this cluster or of a trusted root (roles through the role map: ClusterAccess), route to this database (and to the database user and name asked for,
 * when it names them), and the user's roles must allow the database user and name on
 * this database's labels (AccessChecker.checkDatabase). Every refusal is a
 * {@link DbAccessRefusal} whose message the client is shown.
 */
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import type { UserIdentity } from '../../../cluster/api/user-certificate.ts';
import type { Caller } from '../access/cluster-access.ts';
import type { DatabaseConfig } from '../../../cluster/common/config.ts';
import type { DbClusterAccess } from './db-cluster-access.ts';

/** Access to this database was refused; the message is for the client. */
export class DbAccessRefusal extends Error {
  /** Who was refused, when known before their identity was accepted (audited). */
  readonly who: { user?: string; roles?: string[] } | undefined;
  /** The trusted root the refused user belongs to. */
  readonly about: Pick<Caller, 'remote' | 'cluster'> | undefined;

  constructor(message: string, who?: { user?: string; roles?: string[] }, about?: Pick<Caller, 'remote' | 'cluster'>) {
    super(message);
    this.who = who;
    this.about = about;
  }
}

export interface DbAuthorizeContext {
  db: DatabaseConfig;
  access: DbClusterAccess;
  cluster: () => string;
  labels: () => Record<string, string>;
}

/**
 * The caller's certificate identity with its roles in this cluster (a root user's
 * mapped through the role map), and the caller for audit events.
 */
export async function checkDatabaseIdentity(identityHeader: string, context: DbAuthorizeContext): Promise<{ identity: UserIdentity; caller: Caller }> {
  const identified = await context.access.identify(identityHeader);
  if ('refused' in identified) throw new DbAccessRefusal(identified.refused, identified.who, identified.about);
  const { caller } = identified;
  if (!caller.certificate) throw new DbAccessRefusal('databases are reached with a user certificate; run psh db login');
  return { identity: { ...caller.certificate, roles: caller.roles }, caller };
}

export async function authorizeDatabase(identity: UserIdentity, dbUser: string, dbName: string | undefined, context: DbAuthorizeContext): Promise<void> {
  const route = identity.routeToDatabase;
  if (!route) throw new DbAccessRefusal(`the certificate of ${identity.username} routes to no database; run psh db login ${context.db.name}`);
  if (route.service !== context.db.name) throw new DbAccessRefusal(`the certificate routes to database "${route.service}", not "${context.db.name}"; run psh db login ${context.db.name}`);
  if (route.user !== undefined && route.user !== dbUser) throw new DbAccessRefusal(`the certificate allows database user "${route.user}", and the client asked for "${dbUser}"; run psh db login ${context.db.name} --db-user ${dbUser}`);
  if (route.database !== undefined && route.database !== (dbName ?? '')) throw new DbAccessRefusal(`the certificate allows database name "${route.database}", and the client asked for ${dbName === undefined ? 'none' : `"${dbName}"`}; ${dbName === undefined ? `connect to database "${route.database}"` : `run psh db login ${context.db.name} --db-name ${dbName}`}`);
  let found: Awaited<ReturnType<DbClusterAccess['roles']>>;
  try {
    found = await context.access.roles(identity.roles);
  } catch (error) {
    throw new DbAccessRefusal(`this database agent cannot read the roles from the auth server (${(error as Error).message}); try again later`);
  }
  const decision = new AccessChecker(found.roles, identity.traits).checkDatabase({ name: context.db.name, labels: context.labels(), dbUser, dbName });
  if (!decision.allowed) throw new DbAccessRefusal(`${decision.reason}${found.missing.length ? ` (roles not found: ${found.missing.join(', ')})` : ''}`);
}

