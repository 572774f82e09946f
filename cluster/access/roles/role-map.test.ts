import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapRoles } from './role-map.ts';
import { parseResources } from '../resources/parse-resources.ts';
import { ResourceRegistry } from '../resources/registry.ts';
import { trustedClusterKind, withoutToken, type TrustedCluster } from '../resources/trusted-cluster.ts';

const registry = new ResourceRegistry([trustedClusterKind]);
const pin = `sha256:${'ab'.repeat(32)}`;
const parse = (roleMap: string) =>
  parseResources(`kind: trusted_cluster\nversion: v1\nmetadata: { name: root }\nspec:\n  proxy_addr: root.example.com:3080\n  ca_pin: ${pin}\n  token: secret\n  role_map:\n${roleMap}`, { source: 'tc.yaml', registry });

test('role maps: names, * and regexes with captures; nothing mapped gives no roles', () => {
  const map = [
    { remote: 'admin', local: ['access', 'editor'] },
    { remote: '^team-(.*)$', local: ['$1', '$1-dev'] },
    { remote: '*', local: ['guest'] },
  ];
  assert.deepEqual(mapRoles(map, ['admin']), ['access', 'editor', 'guest']);
  assert.deepEqual(mapRoles(map, ['team-ops']), ['ops', 'ops-dev', 'guest']);
  assert.deepEqual(mapRoles(map.slice(0, 2), ['dev']), []);
  assert.deepEqual(mapRoles(map.slice(0, 2), ['team-']), [], 'an empty capture makes "" and "-dev", neither a role name');
  assert.deepEqual(mapRoles([], ['admin']), []);
});

test('a regex capture that expands to an unusable name is dropped', () => {
  assert.deepEqual(mapRoles([{ remote: '^x(.*)$', local: ['$1'] }], ['x']), []);
  assert.deepEqual(mapRoles([{ remote: '^x(.*)$', local: ['$1'] }], ['x a']), []);
});

test('trusted_cluster: a valid map parses; the token is never shown', () => {
  const [resource] = parse("    - { remote: admin, local: [access] }\n    - { remote: '^team-(.*)$', local: ['$1'] }\n");
  assert.equal((resource as TrustedCluster).spec.enabled, true);
  assert.equal(withoutToken(resource as TrustedCluster).spec.token, undefined);
});

test('trusted_cluster: refuses local "*", a remote mapped twice, bad and half regexes, and captures without a regex', () => {
  assert.throws(() => parse("    - { remote: admin, local: ['*'] }\n"), /cannot be "\*"/);
  assert.throws(() => parse('    - { remote: admin, local: [a] }\n    - { remote: admin, local: [b] }\n'), /"admin" is mapped twice \(first in entry 1\)/);
  assert.throws(() => parse("    - { remote: '^a(b$', local: [a] }\n"), /bad regex/);
  assert.throws(() => parse("    - { remote: '^admin', local: [a] }\n"), /half a regex/);
  assert.throws(() => parse("    - { remote: admin, local: ['$1'] }\n"), /captures need a regex remote/);
  assert.throws(() => parse('    - { remote: admin, local: [] }\n'), /at least one leaf role/);
});
