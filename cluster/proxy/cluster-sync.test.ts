import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PosternError } from '../../protocols/errors.ts';
import type { AuthClient } from '../api/auth-client.ts';
import type { IdentityFile } from '../api/identity-file.ts';
import { createLogger } from '../common/logger.ts';
import { startTestAuth, type TestAuth } from '../../test/fixtures/auth.ts';
import { ClusterSync } from './cluster-sync.ts';
import { ProxyCredentials } from './proxy-credentials.ts';

let auth: TestAuth;
let identity: IdentityFile;

before(async () => {
  auth = await startTestAuth({ clusterName: 'alpha' });
  identity = auth.server.issueHostIdentity({ hostId: 'proxy-s', nodeName: 'proxy-s', systemRoles: ['proxy'], ttlMs: 3_600_000 });
});
after(async () => auth.stop());

interface Calls {
  heartbeat: number;
  getResources: number;
  exportAuthorities: number;
}

/** An auth client answering from scripts; only the calls ClusterSync makes. */
function _fakeAuth(script: { down?: boolean; proxies?: () => unknown[] | PosternError; hostCa?: string }): { client: AuthClient; calls: Calls } {
  const calls: Calls = { heartbeat: 0, getResources: 0, exportAuthorities: 0 };
  const unavailable = () => new PosternError('PST_UNAVAILABLE', 'the auth service cannot be reached: connection refused');
  const client = {
    heartbeat: async () => {
      calls.heartbeat++;
      if (script.down) throw unavailable();
      return { intervalSeconds: 7n };
    },
    getResources: async () => {
      calls.getResources++;
      if (script.down) throw unavailable();
      const answer = script.proxies?.() ?? [];
      if (answer instanceof PosternError) throw answer;
      return { resourcesJson: JSON.stringify(answer) };
    },
    exportAuthorities: async () => {
      calls.exportAuthorities++;
      if (script.down) throw unavailable();
      return { authorities: [{ kind: 'host', cluster: 'alpha', tlsCertPem: script.hostCa ?? identity.ca_pems.join(''), sshPublicKey: '', jwksJson: '' }] };
    },
  } as unknown as AuthClient;
  return { client, calls };
}

function _sync(client: AuthClient, credentials = new ProxyCredentials(identity)) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  const sync = new ClusterSync({ auth: () => client, credentials, publicAddr: () => 'proxy.example.com:3080', renew: async (current) => current, logger });
  return { sync, lines, credentials };
}

describe('ClusterSync', () => {
  it('lists the online proxies with a public address', async () => {
    const { client } = _fakeAuth({
      proxies: () => [
        { host_id: 'a', public_addr: 'a.example.com:3080', online: true },
        { host_id: 'b', public_addr: 'b.example.com:3080', online: false },
        { host_id: 'c', online: true },
      ],
    });
    const { sync } = _sync(client);
    await sync.beat();
    assert.ok(sync.connected);
    assert.deepEqual(sync.peers, [{ host_id: 'a', public_addr: 'a.example.com:3080' }]);
  });

  it('stops asking for proxies once auth refuses (each refusal is an audit event there), and says so once', async () => {
    const { client, calls } = _fakeAuth({ proxies: () => new PosternError('PST_ACCESS_DENIED', 'access denied: host proxy-s (proxy) may not list proxy') });
    const { sync, lines } = _sync(client);
    await sync.beat();
    await sync.beat();
    assert.deepEqual([calls.heartbeat, calls.getResources], [2, 1]);
    assert.deepEqual(sync.peers, []);
    assert.equal(lines.filter((l) => /does not let this proxy list proxies/.test(String(l.msg))).length, 1);
  });

  it('logs an outage once, keeps beating, and logs the recovery', async () => {
    const script = { down: true };
    const { client, calls } = _fakeAuth(script);
    const { sync, lines } = _sync(client);
    await sync.beat();
    await sync.beat();
    assert.equal(sync.connected, false);
    script.down = false;
    await sync.beat();
    assert.ok(sync.connected);
    assert.equal(calls.heartbeat, 3);
    const warnings = lines.filter((l) => l.msg === 'proxy cannot talk to the auth service; retrying every beat');
    assert.deepEqual(warnings.map((l) => l.step), ['heartbeat', 'list proxies', 'refresh CAs']);
    assert.equal(lines.filter((l) => l.msg === 'proxy reaches the auth service again').length, 3);
  });

  it('takes a changed host CA from auth (rotation), and ignores an empty answer', async () => {
    const other = await startTestAuth({ clusterName: 'beta' });
    try {
      const rotated = other.server.issueHostIdentity({ hostId: 'x', nodeName: 'x', systemRoles: ['node'], ttlMs: 60_000 }).ca_pems[0]!;
      const script = { hostCa: identity.ca_pems.join('') + rotated };
      const { client } = _fakeAuth(script);
      const { sync, credentials } = _sync(client);
      let changes = 0;
      credentials.on('change', () => changes++);
      await sync.beat();
      assert.equal(credentials.hostCaPems().length, 2);
      assert.equal(changes, 1);
      await sync.beat();
      assert.equal(changes, 1, 'the same CAs again are no change');
      script.hostCa = '';
      await sync.beat();
      assert.equal(credentials.hostCaPems().length, 2, 'an answer without host CAs never empties the trust');
    } finally {
      await other.stop();
    }
  });
});
