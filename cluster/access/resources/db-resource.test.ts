import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from './parse-resources.ts';
import { createResourceRegistry } from '../../auth/resources/kinds.ts';
import { databaseFromResource, type DbResourceSpec } from './db-resource.ts';
import type { Resource } from './resource.ts';

test('a db resource parses with defaults and becomes an agent database entry; bad specs are refused by field', () => {
  const registry = createResourceRegistry();
  const [db] = parseResources('kind: db\nversion: v1\nmetadata: { name: orders, labels: { env: prod } }\nspec: { protocol: postgres, uri: "10.0.0.5:5432" }\n', { source: 'db.yaml', registry });
  assert.deepEqual(databaseFromResource(db as Resource<'db', DbResourceSpec>), {
    name: 'orders', labels: { env: 'prod' }, protocol: 'postgres', uri: '10.0.0.5:5432', tls: { mode: 'verify-full' }, auth: { type: 'cert' },
  });
  assert.throws(() => parseResources('kind: db\nversion: v1\nmetadata: { name: x }\nspec: { protocol: oracle, uri: "h:1" }\n', { source: 'db.yaml', registry }), /spec\.protocol/);
  assert.throws(() => parseResources('kind: db\nversion: v1\nmetadata: { name: x }\nspec: { protocol: mysql, uri: "h:1", password: hunter2 }\n', { source: 'db.yaml', registry }), /password/);
});
