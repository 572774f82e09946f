import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newRole } from '../../../cluster/access/roles/role.ts';
import type { UserIdentity } from '../../../cluster/api/user-certificate.ts';
import { parseConfig } from '../../../cluster/common/config.ts';
import { authorizeDatabase, DbAccessRefusal, type DbAuthorizeContext } from './db-authorize.ts';
import type { DbClusterAccess } from './db-cluster-access.ts';

const db = parseConfig('agent:\n  db:\n    databases:\n      - { name: orders, protocol: postgres, uri: "127.0.0.1:5432", labels: { env: dev } }\n', 'p.yaml').agent!.db.databases[0]!;
const role = newRole('dev-db', { allow: { db_labels: { env: 'dev' }, db_users: ['alice', '{{internal.db_users}}'], db_names: ['app'] }, deny: { db_users: ['postgres'] } });
const access = { roles: async (names: readonly string[]) => ({ roles: names.includes('dev-db') ? [role] : [], missing: names.filter((n) => n !== 'dev-db') }) } as unknown as DbClusterAccess;
const context: DbAuthorizeContext = { db, access, cluster: () => 'c1', labels: () => db.labels };
const user = (route?: UserIdentity['routeToDatabase'], roles = ['dev-db']): UserIdentity => ({
  kind: 'user', username: 'dave', roles, traits: { db_users: ['carol'] }, logins: [], cluster: 'c1', routeToCluster: 'c1', mfaVerified: false, bot: false, expires: new Date(Date.now() + 60_000),
  ...(route ? { routeToDatabase: route } : {}),
});

test('authorizeDatabase: route, user and name from the certificate, then roles with traits and deny rules', async () => {
  await authorizeDatabase(user({ service: 'orders', user: 'alice', database: 'app' }), 'alice', 'app', context);
  await authorizeDatabase(user({ service: 'orders' }), 'carol', 'app', context); // a trait-expanded db user
  const refused = async (identity: UserIdentity, dbUser: string, dbName: string | undefined, message: RegExp) =>
    assert.rejects(authorizeDatabase(identity, dbUser, dbName, context), (error: Error) => error instanceof DbAccessRefusal && message.test(error.message));
  await refused(user(), 'alice', 'app', /routes to no database; run psh db login orders/);
  await refused(user({ service: 'billing' }), 'alice', 'app', /routes to database "billing", not "orders"/);
  await refused(user({ service: 'orders', user: 'alice' }), 'bob', 'app', /allows database user "alice", and the client asked for "bob"/);
  await refused(user({ service: 'orders', database: 'app' }), 'alice', 'other', /allows database name "app", and the client asked for "other"/);
  await refused(user({ service: 'orders', database: 'app' }), 'alice', undefined, /asked for none; connect to database "app"/);
  await refused(user({ service: 'orders' }), 'bob', 'app', /database user "bob"/);
  await refused(user({ service: 'orders' }), 'alice', 'other', /database name "other"/);
  await refused(user({ service: 'orders' }), 'postgres', 'app', /denies database user "postgres"/);
  await refused(user({ service: 'orders' }, ['ghost']), 'alice', 'app', /roles not found: ghost/);
});
