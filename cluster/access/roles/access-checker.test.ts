import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessChecker, defaultMaxSessionTtlMs, type Decision } from './access-checker.ts';
import { newRole, type RoleSpec } from './role.ts';

const role = (name: string, spec: RoleSpec) => newRole(name, spec);

const dev = role('dev', {
  allow: { logins: ['ubuntu', 'dev'], node_labels: { env: ['staging', 'dev'] } },
  deny: { logins: ['root'] },
});
const everything = role('everything', {
  allow: {
    logins: ['root', 'ubuntu'],
    node_labels: { '*': '*' },
    db_labels: { '*': '*' },
    db_users: ['*'],
    db_names: ['*'],
    kubernetes_labels: { '*': '*' },
    kubernetes_groups: ['system:masters'],
    app_labels: { '*': '*' },
    desktop_labels: { '*': '*' },
    desktop_logins: ['Administrator'],
    cluster_labels: { '*': '*' },
    resources: [{ kinds: ['*'], verbs: ['*'] }],
  },
});

function assertAllowed(decision: Decision, role: string) {
  assert.deepEqual(decision, { allowed: true, reason: `allowed by role "${role}"`, role });
}

function assertDenied(decision: Decision, reason: string | RegExp, role?: string) {
  assert.equal(decision.allowed, false, decision.reason);
  if (typeof reason === 'string') assert.equal(decision.reason, reason);
  else assert.match(decision.reason, reason);
  assert.equal(decision.role, role);
}

const staging = { name: 'web1', labels: { env: 'staging' } };
const prod = { name: 'db1', labels: { env: 'prod', team: 'data' } };

describe('AccessChecker.checkNode', () => {
  it('allows a listed login on a matching node', () => {
    assertAllowed(new AccessChecker([dev]).checkNode({ ...staging, login: 'ubuntu' }), 'dev');
  });

  it('denies by default a login no role lists, saying which roles matched the node', () => {
    assertDenied(
      new AccessChecker([dev]).checkNode({ ...staging, login: 'alice' }),
      'no role allows login "alice" on node "web1" (labels env=staging); role "dev" matches the node but not the login',
    );
  });

  it('denies by default a node no role matches', () => {
    assertDenied(
      new AccessChecker([dev]).checkNode({ ...prod, login: 'ubuntu' }),
      'no role allows login "ubuntu" on node "db1" (labels env=prod,team=data)',
    );
  });

  it('requires labels and login to be allowed by the same role', () => {
    const a = role('a', { allow: { logins: ['alice'], node_labels: { env: 'dev' } } });
    const b = role('b', { allow: { logins: ['bob'], node_labels: { env: 'prod' } } });
    const checker = new AccessChecker([a, b]);
    assertDenied(checker.checkNode({ name: 'n', labels: { env: 'prod' }, login: 'alice' }), /no role allows login "alice"/);
    assertAllowed(checker.checkNode({ name: 'n', labels: { env: 'prod' }, login: 'bob' }), 'b');
  });

  it('lets a denied login win over an allow in another role, in either order', () => {
    for (const roles of [[everything, dev], [dev, everything]]) {
      assertDenied(new AccessChecker(roles).checkNode({ ...staging, login: 'root' }), 'role "dev" denies login "root"', 'dev');
    }
  });

  it('lets deny labels win for every login', () => {
    const noProd = role('no-prod', { deny: { node_labels: { env: 'prod' } } });
    const checker = new AccessChecker([everything, noProd]);
    assertDenied(
      checker.checkNode({ ...prod, login: 'ubuntu' }),
      'role "no-prod" denies node "db1" (labels env=prod,team=data) by node_labels',
      'no-prod',
    );
    assertAllowed(checker.checkNode({ ...staging, login: 'ubuntu' }), 'everything');
  });

  it("denies every login with a deny '*'", () => {
    const lockdown = role('lockdown', { deny: { logins: ['*'] } });
    const checker = new AccessChecker([everything, lockdown]);
    assertDenied(checker.checkNode({ ...staging, login: 'ubuntu' }), 'role "lockdown" denies login "ubuntu"', 'lockdown');
    assert.deepEqual(checker.logins(), []);
  });

  it("matches any node with '*': '*' and regex selectors", () => {
    assertAllowed(new AccessChecker([everything]).checkNode({ name: 'bare', labels: {}, login: 'ubuntu' }), 'everything');
    const web = role('web', { allow: { logins: ['www'], node_labels: { host: '^web-[0-9]+$' } } });
    const checker = new AccessChecker([web]);
    assertAllowed(checker.checkNode({ name: 'w', labels: { host: 'web-12' }, login: 'www' }), 'web');
    assertDenied(checker.checkNode({ name: 'w', labels: { host: 'web-12.evil' }, login: 'www' }), /no role allows/);
  });
});

describe('trait templates in the checker', () => {
  const templated = role('templated', {
    allow: {
      logins: ['{{internal.logins}}', 'user-{{external.team}}'],
      node_labels: { team: '{{external.team}}', env: '^{{external.env}}-[0-9]+$' },
      db_labels: { '*': '*' },
      db_users: ['{{email.local(external.email)}}'],
      db_names: ['{{regexp.replace(external.groups, "^db-(.*)$", "$1")}}'],
    },
    deny: { logins: ['{{external.banned}}'] },
  });

  it('expands logins, including literal prefixes, and removes denied ones', () => {
    const checker = new AccessChecker([templated], { logins: ['alice', 'admin'], team: ['web'], banned: ['admin'] });
    assert.deepEqual(checker.logins(), ['alice', 'user-web']);
    assertDenied(checker.checkNode({ name: 'n', labels: { team: 'web', env: 'a-1' }, login: 'admin' }), 'role "templated" denies login "admin"', 'templated');
  });

  it('grants nothing from a missing trait', () => {
    const checker = new AccessChecker([templated], {});
    assert.deepEqual(checker.logins(), []);
    assertDenied(checker.checkNode({ name: 'n', labels: {}, login: 'alice' }), /no role allows login "alice"/);
  });

  it('matches label values from traits', () => {
    const checker = new AccessChecker([templated], { logins: ['alice'], team: ['web', 'ops'], env: ['stage'] });
    assertAllowed(checker.checkNode({ name: 'n', labels: { team: 'ops', env: 'stage-7' }, login: 'alice' }), 'templated');
    assertDenied(checker.checkNode({ name: 'n', labels: { team: 'db', env: 'stage-7' }, login: 'alice' }), /no role allows/);
  });

  it('matches trait values literally, even when they look like patterns', () => {
    const checker = new AccessChecker([templated], { logins: ['alice'], team: ['^.*$', '*'], env: ['.*'] });
    const node = (team: string, env: string) => checker.checkNode({ name: 'n', labels: { team, env }, login: 'alice' });
    assertDenied(node('web', '.*-1'), /no role allows/);
    assertAllowed(node('^.*$', '.*-1'), 'templated');
    assertAllowed(node('*', '.*-1'), 'templated');
    // Inside a regex the trait part is escaped: ".*" matches only the two characters.
    assertDenied(node('*', 'anything-1'), /no role allows/);
  });

  it('applies function templates to database users and names', () => {
    const checker = new AccessChecker([templated], { email: ['alice@example.com'], groups: ['db-sales', 'eng'] });
    assertAllowed(checker.checkDatabase({ ...prod, dbUser: 'alice', dbName: 'sales' }), 'templated');
    assertDenied(checker.checkDatabase({ ...prod, dbUser: 'alice@example.com', dbName: 'sales' }), /no role allows database user/);
    assertDenied(checker.checkDatabase({ ...prod, dbUser: 'alice', dbName: 'eng' }), /no role allows database user "alice" and database name "eng"/);
  });
});

describe('AccessChecker.checkDatabase', () => {
  const analyst = role('analyst', {
    allow: { db_labels: { env: 'prod' }, db_users: ['reader'], db_names: ['sales', 'hr'] },
    deny: { db_names: ['hr'] },
  });
  const wide = role('wide', { allow: { db_labels: { team: '^da.*$' }, db_users: ['*'], db_names: ['*'] } });
  const noAdmin = role('no-admin', { deny: { db_users: ['postgres'] } });

  it('allows listed users and names on matching databases', () => {
    assertAllowed(new AccessChecker([analyst]).checkDatabase({ ...prod, dbUser: 'reader', dbName: 'sales' }), 'analyst');
  });

  it('checks only the user when the protocol names no database', () => {
    assertAllowed(new AccessChecker([analyst]).checkDatabase({ ...prod, dbUser: 'reader' }), 'analyst');
  });

  it('denies names and users in deny, over wildcards', () => {
    const checker = new AccessChecker([wide, analyst, noAdmin]);
    assertDenied(checker.checkDatabase({ ...prod, dbUser: 'reader', dbName: 'hr' }), 'role "analyst" denies database name "hr"', 'analyst');
    assertDenied(checker.checkDatabase({ ...prod, dbUser: 'postgres', dbName: 'sales' }), 'role "no-admin" denies database user "postgres"', 'no-admin');
    assertAllowed(checker.checkDatabase({ ...prod, dbUser: 'anyone', dbName: 'anything' }), 'wide');
  });

  it('denies by default an unlisted user', () => {
    assertDenied(
      new AccessChecker([analyst]).checkDatabase({ ...prod, dbUser: 'writer', dbName: 'sales' }),
      'no role allows database user "writer" and database name "sales" on database "db1" (labels env=prod,team=data); role "analyst" matches the database but not the database user and database name',
    );
  });
});

describe('AccessChecker.checkKube and kubeIdentity', () => {
  const kdev = role('kdev', {
    allow: { kubernetes_labels: { env: 'staging' }, kubernetes_groups: ['developers', 'viewers'], kubernetes_users: ['dev-sa'] },
  });
  const kops = role('kops', { allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['ops'] } });
  const noViewers = role('no-viewers', { deny: { kubernetes_groups: ['viewers'] } });
  const kube = { name: 'k1', labels: { env: 'staging' } };

  it('allows, denies by labels, and denies by default', () => {
    assertAllowed(new AccessChecker([kdev]).checkKube(kube), 'kdev');
    const denyStaging = role('deny-staging', { deny: { kubernetes_labels: { env: 'staging' } } });
    assertDenied(new AccessChecker([everything, denyStaging]).checkKube(kube), /role "deny-staging" denies kubernetes cluster "k1"/, 'deny-staging');
    assertDenied(new AccessChecker([kops]).checkKube(kube), 'no role allows kubernetes cluster "k1" (labels env=staging)');
  });

  it('takes users and groups from roles matching the cluster, minus denied ones', () => {
    const checker = new AccessChecker([kdev, kops, noViewers]);
    assert.deepEqual(checker.kubeIdentity(kube), { users: ['dev-sa'], groups: ['developers'] });
    assert.deepEqual(checker.kubeIdentity({ name: 'k2', labels: { env: 'prod' } }), { users: [], groups: ['ops'] });
    assert.deepEqual(checker.kubeIdentity(), { users: ['dev-sa'], groups: ['developers', 'ops'] });
    assert.deepEqual(checker.kubeIdentity({ name: 'k3', labels: { env: 'test' } }), { users: [], groups: [] });
  });

  it("empties the groups with a deny '*'", () => {
    const none = role('none', { deny: { kubernetes_groups: ['*'] } });
    assert.deepEqual(new AccessChecker([kdev, none]).kubeIdentity(kube), { users: ['dev-sa'], groups: [] });
  });
});

describe('AccessChecker.checkApp, checkDesktop, checkCluster', () => {
  it('checks apps by labels', () => {
    const web = role('web', { allow: { app_labels: { team: ['web', 'ui'] } }, deny: { app_labels: { tier: 'admin' } } });
    const checker = new AccessChecker([web]);
    assertAllowed(checker.checkApp({ name: 'grafana', labels: { team: 'ui' } }), 'web');
    assertDenied(checker.checkApp({ name: 'console', labels: { team: 'ui', tier: 'admin' } }), /role "web" denies app "console"/, 'web');
    assertDenied(checker.checkApp({ name: 'x', labels: { team: 'db' } }), 'no role allows app "x" (labels team=db)');
  });

  it('checks desktops by labels and login', () => {
    const win = role('win', { allow: { desktop_labels: { os: 'windows' }, desktop_logins: ['alice'] }, deny: { desktop_logins: ['Administrator'] } });
    const checker = new AccessChecker([everything, win]);
    const desktop = { name: 'd1', labels: { os: 'windows' } };
    assertAllowed(checker.checkDesktop({ ...desktop, login: 'alice' }), 'win');
    assertDenied(checker.checkDesktop({ ...desktop, login: 'Administrator' }), 'role "win" denies desktop login "Administrator"', 'win');
    assertDenied(new AccessChecker([win]).checkDesktop({ ...desktop, login: 'bob' }), /no role allows desktop login "bob" on desktop "d1"/);
  });

  it('reaches leaf clusters only through cluster_labels', () => {
    const leafProd = { name: 'leaf-prod', labels: { env: 'prod' } };
    assertDenied(new AccessChecker([dev]).checkCluster(leafProd), 'no role allows cluster "leaf-prod" (labels env=prod)');
    const reach = role('reach', { allow: { cluster_labels: { env: ['prod', 'staging'] } } });
    assertAllowed(new AccessChecker([dev, reach]).checkCluster(leafProd), 'reach');
    const block = role('block', { deny: { cluster_labels: { env: 'prod' } } });
    assertDenied(new AccessChecker([reach, block]).checkCluster(leafProd), /role "block" denies cluster "leaf-prod"/, 'block');
  });
});

describe('AccessChecker.checkResource', () => {
  const reader = role('reader', { allow: { resources: [{ kinds: ['node', 'role'], verbs: ['list', 'read'] }] } });
  const noRoleWrites = role('no-role-writes', { deny: { resources: [{ kinds: ['role'], verbs: ['create', 'update', 'delete'] }] } });

  it('allows listed kinds and verbs, with wildcards', () => {
    assertAllowed(new AccessChecker([reader]).checkResource('role', 'read'), 'reader');
    assertAllowed(new AccessChecker([everything]).checkResource('token', 'delete'), 'everything');
  });

  it('denies by default', () => {
    assertDenied(new AccessChecker([reader]).checkResource('role', 'update'), 'no role allows update on role');
    assertDenied(new AccessChecker([reader]).checkResource('user', 'read'), 'no role allows read on user');
  });

  it('lets deny win over a wildcard allow', () => {
    const checker = new AccessChecker([everything, noRoleWrites]);
    assertDenied(checker.checkResource('role', 'update'), 'role "no-role-writes" denies update on role', 'no-role-writes');
    assertAllowed(checker.checkResource('role', 'read'), 'everything');
    assertAllowed(checker.checkResource('user', 'update'), 'everything');
  });
});

describe('with no roles', () => {
  it('denies everything, saying why', () => {
    const checker = new AccessChecker([]);
    const target = { name: 'x', labels: { env: 'dev' } };
    const decisions = [
      checker.checkNode({ ...target, login: 'root' }),
      checker.checkDatabase({ ...target, dbUser: 'u', dbName: 'd' }),
      checker.checkKube(target),
      checker.checkApp(target),
      checker.checkDesktop({ ...target, login: 'u' }),
      checker.checkCluster(target),
      checker.checkResource('role', 'list'),
    ];
    for (const decision of decisions) assertDenied(decision, /^no role allows .*; the user has no roles, so nothing is allowed$/);
    assert.deepEqual(checker.logins(), []);
    assert.deepEqual(checker.kubeIdentity(), { users: [], groups: [] });
    assert.equal(checker.maxSessionTtlMs(), 0);
    assert.deepEqual(checker.options(), {
      maxSessionTtlMs: 0,
      permitPortForwarding: false,
      permitAgentForwarding: false,
      recordSession: true,
      requireMfa: false,
    });
  });
});

describe('AccessChecker.logins, maxSessionTtlMs, options', () => {
  it('unions logins across roles in first-seen order, without duplicates', () => {
    const other = role('other', { allow: { logins: ['dev', 'ops'] } });
    assert.deepEqual(new AccessChecker([dev, other]).logins(), ['ubuntu', 'dev', 'ops']);
    assert.deepEqual(new AccessChecker([everything, dev]).logins(), ['ubuntu', 'dev']);
  });

  it('takes the shortest session TTL, 12h for roles that set none', () => {
    const short = role('short', { options: { max_session_ttl: '30m' } });
    const long = role('long', { options: { max_session_ttl: '1d' } });
    assert.equal(new AccessChecker([dev]).maxSessionTtlMs(), defaultMaxSessionTtlMs);
    assert.equal(new AccessChecker([long]).maxSessionTtlMs(), 86_400_000);
    assert.equal(new AccessChecker([long, dev]).maxSessionTtlMs(), defaultMaxSessionTtlMs);
    assert.equal(new AccessChecker([long, short, dev]).maxSessionTtlMs(), 1_800_000);
  });

  it('permits forwarding only if some role permits it and none forbids it', () => {
    const fwd = role('fwd', { options: { permit_port_forwarding: true, permit_agent_forwarding: true } });
    const noFwd = role('no-fwd', { options: { permit_port_forwarding: false } });
    assert.equal(new AccessChecker([dev]).options().permitPortForwarding, false);
    assert.equal(new AccessChecker([dev, fwd]).options().permitPortForwarding, true);
    const strict = new AccessChecker([fwd, noFwd]).options();
    assert.equal(strict.permitPortForwarding, false);
    assert.equal(strict.permitAgentForwarding, true);
  });

  it('records unless every role turns recording off, and requires MFA if any role does', () => {
    const quiet = role('quiet', { options: { record_session: false } });
    const mfa = role('mfa', { options: { require_mfa: true } });
    assert.equal(new AccessChecker([dev]).options().recordSession, true);
    assert.equal(new AccessChecker([quiet]).options().recordSession, false);
    assert.equal(new AccessChecker([quiet, dev]).options().recordSession, true);
    assert.equal(new AccessChecker([dev]).options().requireMfa, false);
    assert.equal(new AccessChecker([dev, mfa]).options().requireMfa, true);
  });
});
