/**
 * The access decision for one database session, shared by the PostgreSQL and MySQL
 * engines: the certificate the proxy forwarded must be a current user certificate of
 * this cluster, route to this database (and to the database user and name asked for,
 * when it names them), and the user's roles must allow the database user and name on
 * this database's labels (AccessChecker.checkDatabase). Every refusal is a
 * {@link DbAccessRefusal} whose message the client is shown.
 */
import { AccessChecker } from '../../../cluster/access/roles/access-checker.ts';
import { verifyUserCertificate, type UserIdentity } from '../../../cluster/api/user-certificate.ts';
import type { DatabaseConfig } from '../../../cluster/common/config.ts';
import type { DbClusterAccess } from './db-cluster-access.ts';

/** Access to this database was refused; the message is for the client. */
export class DbAccessRefusal extends Error {}

export interface DbAuthorizeContext {
  db: DatabaseConfig;
  access: DbClusterAccess;
  cluster: () => string;
  labels: () => Record<string, string>;
}

export function checkDatabaseIdentity(identityHeader: string, context: DbAuthorizeContext): UserIdentity {
  const cas = context.access.userCaPems();
  if (!cas) throw new DbAccessRefusal('this database agent has not read the user CAs from the auth server yet; try again in a few seconds');
  let identity: UserIdentity;
  try {
    identity = verifyUserCertificate(Buffer.from(identityHeader, 'base64').toString('utf8'), cas);
  } catch (error) {
    throw new DbAccessRefusal(`the certificate the proxy forwarded is not valid here: ${(error as Error).message}`);
  }
  if (identity.cluster !== context.cluster()) throw new DbAccessRefusal(`the certificate was issued by cluster "${identity.cluster}", and this database belongs to "${context.cluster()}"`);
  return identity;
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

