/**
 * The agent's own decisions on app streams, against a real auth server, proxy and
 * agent in this process: the proxy's registry dials `app:NAME` with routed identities
 * the proxy would never send (expired, another cluster, roles that do not match,
 * garbage) and each is refused by the agent with a 4xx and, for a named user, an
 * `access.denied` audit event at auth; an allowed one gets the upstream's answer with
 * a JWT assertion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { encodeRoutedIdentity, type RoutedIdentity } from '../cluster/api/routed-identity.ts';
import { TunnelRejectedError } from '../protocols/tunnel/index.ts';
import { startAgent } from '../agent/agent.ts';

test('the agent decides every app stream: allowed with a JWT, refused (and audited) when expired, foreign, not allowed or malformed', async () => {
  const upstream = http.createServer((req, res) => res.end(`jwt:${String(req.headers['postern-jwt-assertion']).split('.').length}`));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-app-service-'));
  const admin = t.auth.connectAs(['admin']).client;
  const deps = t.auth.server.deps;
  const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
  const pin = (await admin.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
  await admin.createResources({ source: 'test', upsert: false, text: 'kind: role\nversion: v1\nmetadata: { name: dev-apps }\nspec:\n  allow:\n    app_labels: { env: dev }\n' });
  const port = (upstream.address() as AddressInfo).port;
  const config = parseConfig(`data_dir: ${dir}\nagent:\n  proxy_addr: ${t.proxy.address}\n  token: ${secret}\n  ca_pin: ${pin}\n  ssh: { enabled: false }\n  apps:\n    - { name: prod-app, uri: "http://127.0.0.1:${port}", labels: { env: prod } }\n    - { name: dev-app, uri: "http://127.0.0.1:${port}", labels: { env: dev } }\n`, path.join(dir, 'postern.yaml'));
  const agent = await startAgent(config, { logger: silentLogger() });
  try {
    const hostId = agent.identity.current.host_id!;
    for (let i = 0; i < 200 && !t.proxy.registry.has(hostId); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    const base: RoutedIdentity = { v: 1, username: 'erin', roles: ['dev-apps'], traits: {}, cluster: 'alpha', expires: new Date(Date.now() + 600_000).toISOString(), via: 'certificate', addr: '127.0.0.1:1' };
    const dial = (app: string, identity: string) => t.proxy.registry.dial(hostId, `app:${app}`, identity);
    const refused = async (app: string, identity: string, status: number, reason: RegExp) => {
      await assert.rejects(dial(app, identity), (error: unknown) => error instanceof TunnelRejectedError && error.status === status && reason.test(error.reason));
    };

    const stream = await dial('dev-app', encodeRoutedIdentity(base));
    stream.write('GET / HTTP/1.1\r\nHost: dev-app\r\nConnection: close\r\n\r\n');
    let answer = '';
    for await (const chunk of stream) answer += (chunk as Buffer).toString();
    assert.match(answer, /^HTTP\/1\.1 200[\s\S]*jwt:3$/);

    await refused('prod-app', encodeRoutedIdentity(base), 403, /no role allows app "prod-app"/);
    await refused('dev-app', encodeRoutedIdentity({ ...base, username: 'frank', expires: new Date(Date.now() - 1_000).toISOString() }), 403, /expired/);
    await refused('dev-app', encodeRoutedIdentity({ ...base, username: 'gina', cluster: 'elsewhere' }), 403, /cluster "elsewhere"/);
    await refused('dev-app', Buffer.from('{"v":1,"username":"x"}').toString('base64url'), 400, /does not parse/);

    const denied = async () => (await deps.audit.search({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000), types: ['access.denied'] })).filter((e) => e.resource?.kind === 'app');
    let events = await denied();
    for (let i = 0; i < 100 && events.length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      events = await denied();
    }
    assert.deepEqual(events.map((e) => e.identity.user).sort(), ['erin', 'frank', 'gina']);
    const allowed = await deps.audit.search({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000), types: ['app.session.start'] });
    assert.ok(allowed.some((e) => e.identity.user === 'erin' && e.resource?.name === 'dev-app'));
  } finally {
    await agent.stop();
    await t.stop();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
