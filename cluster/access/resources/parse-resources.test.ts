import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { BadInputError } from '../../../protocols/errors.ts';
import { roleKind } from '../roles/role.ts';
import { formatResources } from './format-resources.ts';
import { createResourceRegistry } from '../../auth/resources/kinds.ts';
import { parseResources } from './parse-resources.ts';
import { defineKind, isKind, ResourceRegistry } from './registry.ts';
import { isExpired } from './resource.ts';

// A kind registered by "another module", to show the registry is open.
const widgetKind = defineKind({
  kind: 'widget',
  spec: z.strictObject({ size: z.number().int().positive(), color: z.string().optional() }),
  summarize: (w) => `size=${w.spec.size}`,
});
// A kind whose names are e-mail addresses, overriding the default name rule.
const personKind = defineKind({ kind: 'person', spec: z.strictObject({}), name: z.email() });
const registry = createResourceRegistry().register(widgetKind).register(personKind);

const parse = (text: string, source = 'role.yaml') => parseResources(text, { source, registry });

/** The BadInputError message thrown by parsing `text`. */
function errorOf(text: string, options: { maxBytes?: number } = {}): string {
  try {
    parseResources(text, { source: 'role.yaml', registry, ...options });
  } catch (error) {
    assert.ok(error instanceof BadInputError, String(error));
    return error.message;
  }
  assert.fail('expected a BadInputError');
}

const devRole = `kind: role
version: v1
metadata:
  name: dev
  description: Developers
  labels: { team: web }
spec:
  allow:
    logins: [ubuntu]
    node_labels: { env: staging }
`;

describe('parseResources', () => {
  it('reads several documents of several kinds', () => {
    const text = `---\n${devRole}---\nkind: widget\nversion: v1\nmetadata: { name: w1 }\nspec: { size: 3 }\n---\n---\nkind: role\nversion: v1\nmetadata: { name: ops }\nspec: {}\n---\n`;
    const resources = parse(text);
    assert.deepEqual(
      resources.map((r) => `${r.kind}/${r.metadata.name}`),
      ['role/dev', 'widget/w1', 'role/ops'],
    );
    const [dev, widget] = resources;
    assert.ok(dev && isKind(dev, roleKind));
    assert.deepEqual(dev.spec.allow?.logins, ['ubuntu']);
    assert.equal(dev.metadata.labels?.['team'], 'web');
    assert.ok(widget && isKind(widget, widgetKind) && !isKind(widget, roleKind));
    assert.equal(widget.spec.size, 3);
  });

  it('reads JSON: one object, an array, and tab-indented text', () => {
    const one = { kind: 'widget', version: 'v1', metadata: { name: 'w' }, spec: { size: 1 } };
    assert.equal(parse(JSON.stringify(one))[0]?.metadata.name, 'w');
    const two = [one, { ...one, metadata: { name: 'v' } }];
    assert.deepEqual(parse(JSON.stringify(two, null, '\t')).map((r) => r.metadata.name), ['w', 'v']);
  });

  it('names the item of a list when it is wrong', () => {
    const text = JSON.stringify([
      { kind: 'widget', version: 'v1', metadata: { name: 'w' }, spec: { size: 1 } },
      { kind: 'widget', version: 'v1', metadata: { name: 'v' }, spec: { size: 0 } },
    ]);
    assert.match(errorOf(text), /^role\.yaml: document 1, item 2: spec\.size: /);
  });

  it('refuses an unknown field, naming its path and line', () => {
    const text = devRole.replace('logins: [ubuntu]', 'logns: [ubuntu]');
    assert.equal(
      errorOf(text),
      'role.yaml: document 1: spec.allow.logns: Unrecognized key (did you mean "logins"?) (line 9)',
    );
  });

  it('refuses unknown fields in the envelope and metadata', () => {
    const message = errorOf(devRole.replace('metadata:', 'extra: 1\nmetadata:\n  nmae: x'));
    assert.match(message, /document 1: extra: Unrecognized key \(line 3\)/);
    assert.match(message, /document 1: metadata\.nmae: Unrecognized key \(did you mean "name"\?\) \(line 5\)/);
  });

  it('reports problems in every document at once', () => {
    const text = `${devRole}---\nkind: widget\nversion: v1\nmetadata: { name: w }\nspec: { size: 1 }\n---\nkind: widget\nversion: v1\nmetadata: { name: w2 }\nspec: { size: -1, colour: red }\n`;
    const lines = errorOf(text.replace('node_labels', 'node_lables')).split('\n');
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines[0]!, /^role\.yaml: document 1: spec\.allow\.node_lables: Unrecognized key \(did you mean "node_labels"\?\)/);
    assert.ok(lines.some((l) => l.startsWith('role.yaml: document 3: spec.size: ') && l.endsWith('(line 20)')));
    assert.ok(lines.some((l) => l.startsWith('role.yaml: document 3: spec.colour: Unrecognized key (did you mean "color"?)')));
  });

  it('reports YAML syntax errors with line and column', () => {
    const text = 'kind: role\nversion: v1\nmetadata:\n  name: [dev\nspec: {}\n';
    assert.match(errorOf(text), /^role\.yaml: document 1: line \d+, column \d+: .*Flow sequence/);
    const bad = 'kind: role\nversion: v1\nmetadata:\n  name: dev\n   bad: indent\nspec: {}\n';
    assert.match(errorOf(bad), /^role\.yaml: document 1: line 4, column 9: Nested mappings are not allowed/);
  });

  it('counts documents when reporting a syntax error in a later one', () => {
    const text = `${devRole}---\nkind: widget\nkind: widget\n`;
    assert.match(errorOf(text), /^role\.yaml: document 2: line 13, column 1: Map keys must be unique/);
  });

  it('refuses unknown and missing kinds, suggesting the nearest', () => {
    assert.match(errorOf(devRole.replace('kind: role', 'kind: rol')), /document 1: kind: unknown kind "rol"; did you mean "role"\? known kinds: db, person, remote_cluster, role, trusted_cluster, user, widget \(line 1\)/);
    assert.match(errorOf('version: v1\nmetadata: { name: x }\nspec: {}\n'), /document 1: kind: required; one of db, person, remote_cluster, role, trusted_cluster, user, widget/);
    assert.match(errorOf('- just\n- strings\n'), /document 1, item 1: expected a mapping with kind, version, metadata and spec/);
    assert.match(errorOf('hello\n'), /document 1: expected a mapping/);
  });

  it('refuses versions other than v1', () => {
    assert.match(errorOf(devRole.replace('version: v1', 'version: v2')), /document 1: version: expected "v1" \(line 2\)/);
  });

  it('refuses the same kind and name twice', () => {
    assert.match(errorOf(`${devRole}---\n${devRole}`), /document 2: metadata\.name: role "dev" is defined twice \(first in document 1\)/);
    // The same name in another kind is fine.
    parse(`${devRole}---\nkind: widget\nversion: v1\nmetadata: { name: dev }\nspec: { size: 1 }\n`);
  });

  it('refuses text without resources', () => {
    assert.match(errorOf(''), /^role\.yaml: no resources found/);
    assert.match(errorOf('---\n---\n# only a comment\n'), /no resources found/);
  });

  it('validates names', () => {
    const named = (name: string) => devRole.replace('name: dev', `name: ${JSON.stringify(name)}`);
    for (const good of ['dev', 'a', 'web-01', 'team_a.prod', 'A1']) parse(named(good));
    for (const bad of ['', '-dev', 'dev-', 'has space', 'a/b', 'x'.repeat(64), 'émile']) {
      assert.match(errorOf(named(bad)), /document 1: metadata\.name: /, bad);
    }
    parse(named('x'.repeat(63)));
  });

  it('lets a kind override the name rule', () => {
    const person = (name: string) => `kind: person\nversion: v1\nmetadata: { name: "${name}" }\nspec: {}\n`;
    assert.equal(parse(person('alice@example.com'))[0]?.metadata.name, 'alice@example.com');
    assert.match(errorOf(person('dev')), /metadata\.name: /);
  });

  it('validates metadata labels and expiry', () => {
    assert.match(errorOf(devRole.replace('team: web', 'team: 3')), /metadata\.labels\.team: label values must be strings/);
    assert.match(errorOf(devRole.replace('team: web', 'team: ""')), /metadata\.labels\.team: label values must not be empty/);
    assert.match(errorOf(devRole.replace('  description', '  expires: tomorrow\n  description')), /metadata\.expires: expected an ISO 8601 date/);
    const [role] = parse(devRole.replace('  description', '  expires: 2027-01-01T00:00:00Z\n  description'));
    assert.ok(role);
    assert.equal(role.metadata.expires, '2027-01-01T00:00:00Z');
    assert.equal(isExpired(role, new Date('2026-12-31T23:59:59Z')), false);
    assert.equal(isExpired(role, new Date('2027-01-01T00:00:00Z')), true);
  });

  it('refuses oversized input before parsing', () => {
    assert.match(errorOf(devRole, { maxBytes: 10 }), /larger than 10 bytes/);
  });

  it('refuses alias bombs instead of expanding them', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      lines.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    assert.match(errorOf(lines.join('\n')), /document 1: .*alias/i);
  });
});

describe('formatResources', () => {
  const resources = parse(`${devRole}---\nkind: widget\nversion: v1\nmetadata: { name: w1, expires: "2027-01-01T00:00:00Z" }\nspec: { size: 3 }\n`);

  it('writes YAML documents that parse back to the same resources', () => {
    const yaml = formatResources(resources, 'yaml');
    assert.equal(yaml.split('\n').filter((l) => l === '---').length, 1);
    assert.deepEqual(parse(yaml), resources);
  });

  it('writes a JSON array that parses back to the same resources', () => {
    const json = formatResources(resources, 'json');
    assert.ok(Array.isArray(JSON.parse(json)));
    assert.deepEqual(parse(json), resources);
  });

  it('writes a text table with a row per resource', () => {
    const lines = formatResources(resources, 'text', { registry }).trimEnd().split('\n');
    assert.deepEqual(lines[0]!.split(/\s+/), ['KIND', 'NAME', 'LABELS', 'EXPIRES', 'SUMMARY']);
    assert.deepEqual(lines[1]!.split(/\s{2,}/), ['role', 'dev', 'team=web', '-', 'logins=ubuntu']);
    assert.deepEqual(lines[2]!.split(/\s{2,}/), ['widget', 'w1', '-', '2027-01-01T00:00:00Z', 'size=3']);
  });
});

describe('ResourceRegistry', () => {
  it('lists kinds and refuses registering one twice', () => {
    assert.deepEqual(createResourceRegistry().kinds(), ['db', 'remote_cluster', 'role', 'trusted_cluster', 'user']);
    assert.throws(() => new ResourceRegistry([roleKind, roleKind]), /registered twice/);
    assert.equal(registry.get('widget'), widgetKind);
    assert.equal(registry.get('nothing'), undefined);
  });

  it('refuses kind names that are not lower-case identifiers', () => {
    assert.throws(() => defineKind({ kind: 'Bad-Kind', spec: z.strictObject({}) }), BadInputError);
  });
});
