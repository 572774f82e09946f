import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadInputError } from '../../../protocols/errors.ts';
import { createResourceRegistry } from '../../auth/resources/kinds.ts';
import { parseResources } from '../resources/parse-resources.ts';
import { isKind } from '../resources/registry.ts';
import { newRole, roleKind } from './role.ts';

const registry = createResourceRegistry();

/** Parses a role whose spec is `specYaml` (indented two spaces under `spec:`). */
function parseRole(specYaml: string) {
  const text = `kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n${specYaml}`;
  const [resource] = parseResources(text, { source: 'role.yaml', registry });
  assert.ok(resource && isKind(resource, roleKind));
  return resource;
}

/** Asserts that parsing fails with a line containing every fragment. */
function assertRefused(specYaml: string, ...fragments: string[]) {
  assert.throws(
    () => parseRole(specYaml),
    (error: unknown) => {
      assert.ok(error instanceof BadInputError, String(error));
      const line = error.message.split('\n').find((l) => fragments.every((f) => l.includes(f)));
      assert.ok(line, `no line has ${JSON.stringify(fragments)} in:\n${error.message}`);
      return true;
    },
  );
}

describe('role schema', () => {
  it('parses the documented example', () => {
    const role = parseRole(`
  allow:
    logins: ['{{internal.logins}}', ubuntu]
    node_labels: { env: [staging, dev], team: '^web-.*$' }
    db_labels: { '*': '*' }
    db_users: ['{{email.local(external.email)}}']
    db_names: ['*']
    kubernetes_labels: { env: staging }
    kubernetes_groups: [developers]
    kubernetes_users: []
    app_labels: { team: web }
    desktop_labels: { os: windows }
    desktop_logins: [Administrator]
    cluster_labels: { env: staging }
    resources:
      - { kinds: [node, db], verbs: [list, read] }
  deny:
    logins: [root]
    node_labels: { env: prod }
  options:
    max_session_ttl: 8h
    permit_port_forwarding: true
    permit_agent_forwarding: false
    record_session: true
    require_mfa: false
`);
    assert.deepEqual(role.spec.allow?.logins, ['{{internal.logins}}', 'ubuntu']);
    assert.deepEqual(role.spec.allow?.node_labels, { env: ['staging', 'dev'], team: '^web-.*$' });
    assert.deepEqual(role.spec.allow?.resources, [{ kinds: ['node', 'db'], verbs: ['list', 'read'] }]);
    assert.deepEqual(role.spec.deny?.logins, ['root']);
    assert.equal(role.spec.options?.max_session_ttl, '8h');
    assert.equal(role.spec.options?.permit_port_forwarding, true);
  });

  it('accepts an empty spec', () => {
    assert.deepEqual(parseRole('  {}\n').spec, {});
  });

  it('refuses an invalid regex, naming the field', () => {
    assertRefused('  allow:\n    node_labels:\n      env: "^(prod$"\n', 'spec.allow.node_labels.env:', 'invalid regular expression', 'Unterminated group', '(line 8)');
  });

  it('refuses an invalid regex inside a list, naming the index', () => {
    assertRefused('  deny:\n    db_labels:\n      env: [ok, "^[a-$"]\n', 'spec.deny.db_labels.env.1:', 'invalid regular expression');
  });

  it('refuses a value that starts with ^ but does not end with $', () => {
    assertRefused('  allow:\n    app_labels: { env: "^prod" }\n', 'spec.allow.app_labels.env:', 'does not end with $');
  });

  it('validates a regex around a template with the template replaced', () => {
    parseRole('  allow:\n    node_labels: { env: "^{{external.env}}-[0-9]+$" }\n');
    assertRefused('  allow:\n    node_labels: { env: "^{{external.env}}-[0-9+$" }\n', 'spec.allow.node_labels.env:', 'invalid regular expression');
  });

  it('refuses a malformed template, naming the field', () => {
    assertRefused('  allow:\n    logins: [ubuntu, "{{internal.logins"]\n', 'spec.allow.logins.1:', 'invalid template', "without a closing '}}'");
    assertRefused('  allow:\n    node_labels: { team: "{{externl.team}}" }\n', 'spec.allow.node_labels.team:', 'unknown namespace "externl"');
    assertRefused('  allow:\n    db_users: ["{{email.local(external.email, \\"x\\")}}"]\n', 'spec.allow.db_users.0:', 'takes 1 argument');
  });

  it('refuses templates in label keys', () => {
    assertRefused('  allow:\n    node_labels: { "{{external.k}}": v }\n', 'spec.allow.node_labels', 'cannot hold templates');
  });

  it("accepts '*' as a key only with the value '*'", () => {
    parseRole("  allow:\n    node_labels: { '*': '*' }\n");
    assertRefused("  allow:\n    node_labels: { '*': prod }\n", 'spec.allow.node_labels.*:', "only takes the value '*'");
  });

  it('refuses empty label keys, values and value lists', () => {
    assertRefused('  allow:\n    node_labels: { env: "" }\n', 'spec.allow.node_labels.env:', 'must not be empty');
    assertRefused('  allow:\n    node_labels: { "": prod }\n', 'spec.allow.node_labels."":', 'label keys must not be empty');
    assertRefused('  allow:\n    node_labels: { env: [] }\n', 'spec.allow.node_labels.env:', 'at least one value');
    assertRefused('  allow:\n    node_labels: { env: 3 }\n', 'spec.allow.node_labels.env:', 'expected a string or a list of strings');
  });

  it("allows '*' in deny lists and in allow db_users/db_names only", () => {
    const role = parseRole("  allow:\n    db_users: ['*']\n    db_names: ['*']\n  deny:\n    logins: ['*']\n    kubernetes_groups: ['*']\n");
    assert.deepEqual(role.spec.deny?.logins, ['*']);
    assertRefused("  allow:\n    logins: ['*']\n", 'spec.allow.logins.0:', "'*' is not allowed here");
    assertRefused("  allow:\n    kubernetes_groups: ['*']\n", 'spec.allow.kubernetes_groups.0:', "'*' is not allowed here");
    assertRefused("  allow:\n    desktop_logins: ['*']\n", 'spec.allow.desktop_logins.0:', "'*' is not allowed here");
  });

  it('refuses regexes in name lists', () => {
    assertRefused("  allow:\n    logins: ['^dev-.*$']\n", 'spec.allow.logins.0:', 'regexes are not supported');
  });

  it('refuses unknown fields with their path and a suggestion', () => {
    assertRefused('  allow:\n    logns: [root]\n', 'role.yaml: document 1: spec.allow.logns: Unrecognized key', 'did you mean "logins"', '(line 7)');
    assertRefused('  options:\n    record: true\n', 'spec.options.record: Unrecognized key');
    assertRefused('  allow:\n    resources: [{ kinds: [role], verbs: [read], scope: x }]\n', 'spec.allow.resources.0.scope: Unrecognized key');
  });

  it('validates resource rules', () => {
    assertRefused('  allow:\n    resources: [{ kinds: [role], verbs: [lst] }]\n', 'spec.allow.resources.0.verbs.0:', 'expected one of list, read');
    assertRefused('  allow:\n    resources: [{ kinds: [Role!], verbs: [read] }]\n', 'spec.allow.resources.0.kinds.0:');
    assertRefused('  allow:\n    resources: [{ kinds: [], verbs: [read] }]\n', 'spec.allow.resources.0.kinds:', 'at least one kind');
  });

  it('validates options', () => {
    assertRefused('  options:\n    max_session_ttl: 8x\n', 'spec.options.max_session_ttl:', 'not a duration');
    assertRefused('  options:\n    max_session_ttl: 10s\n', 'spec.options.max_session_ttl:', 'between 1m and 366d');
    assertRefused('  options:\n    record_session: yes\n', 'spec.options.record_session:', 'expected boolean');
  });
});

describe('newRole', () => {
  it('builds a validated role in code', () => {
    const role = newRole('ops', { allow: { logins: ['ops'], node_labels: { '*': '*' } } }, { description: 'Ops' });
    assert.equal(role.kind, 'role');
    assert.equal(role.version, 'v1');
    assert.equal(role.metadata.name, 'ops');
    assert.equal(role.metadata.description, 'Ops');
  });

  it('refuses invalid input with the role name and field path', () => {
    assert.throws(
      () => newRole('bad', { allow: { node_labels: { env: '^(x$' } } }),
      (error: unknown) => {
        assert.ok(error instanceof BadInputError);
        assert.match(error.message, /^role "bad": spec\.allow\.node_labels\.env: invalid regular expression/);
        return true;
      },
    );
    assert.throws(() => newRole('no spaces', {}), /role "no spaces": metadata\.name:/);
  });
});
