/**
 * An agent serves an xrdp desktop through its tunnel: an in-process auth server, the
 * real proxy, an agent joined by token with `agent.desktops` (password from a file),
 * and the xrdp fixture. A user's stream (a dial of `desktop:NAME` through the proxy's
 * tunnel registry carrying the user's X.509 certificate, as the web UI will send it)
 * gets `ready`, a first picture, and the pixels of a colour set with xsetroot; keys sent
 * as stream messages type a command into the session's xterm; the
 * session is audited at auth (desktop.session.start/end), recorded, and the recording
 * uploaded to auth (kind desktop) and removed from the agent's disk. Clipboard text
 * crosses the stream both ways (xclip in the session).
 * Refusals: a desktop login no role allows (error message + access.denied), a desktop
 * whose labels no role matches (dial refused 403 + access.denied), an unknown desktop
 * (404), a dial without a valid certificate (401), and malformed stream frames (an
 * error message naming the problem, then the stream ends; the agent keeps serving).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestProxy, type TestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { startAgent, type RunningAgent } from '../agent/agent.ts';
import type { AuditEvent } from '../cluster/auth/audit/audit-event.ts';
import { TunnelRejectedError } from '../protocols/tunnel/index.ts';
import { readRecording } from '../protocols/rdp/desktop-recording.ts';
import { typeText } from '../protocols/rdp/scancodes.ts';
import { startXrdp, xrdpUnavailable, type XrdpDesktop } from './fixtures/xrdp.ts';
import { DesktopViewer } from './fixtures/desktop-viewer.ts';

const skip = xrdpUnavailable();
let t: TestProxy;
let desktop: XrdpDesktop;
let agent: RunningAgent;
let dir: string;
let hostId: string;

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function near(pixel: number[], rgb: [number, number, number]): boolean {
  return pixel[3] === 255 && rgb.every((value, i) => Math.abs(value - pixel[i]!) <= 4);
}

/** base64 of a fresh user certificate's PEM: what the proxy forwards as `postern-identity`. */
function userCertificate(username: string, roles: string[], cluster = 'alpha'): string {
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ssh = generateKeyPairSync('ed25519');
  const { formatAuthorizedKey } = sshHelpers;
  const issued = t.auth.server.deps.issuer.issueUser({
    identity: {
      kind: 'user', username, roles, traits: {}, logins: [], cluster, routeToCluster: cluster, mfaVerified: false, bot: false, expires: new Date(Date.now() + 600_000),
    },
    sshPublicKey: formatAuthorizedKey(ssh.publicKey),
    tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    permit: { pty: false, portForwarding: false, agentForwarding: false },
  });
  return Buffer.from(issued.tlsCertPem).toString('base64');
}

const sshHelpers = await import('../protocols/ssh/public-key.ts');

async function events(types: string[]): Promise<AuditEvent[]> {
  return (await t.auth.server.deps.audit.search({ from: new Date(Date.now() - 600_000), to: new Date(Date.now() + 60_000), types, limit: 200, order: 'asc' }))
    .filter((e) => e.resource?.kind === 'desktop');
}

async function open(service: string, username: string, roles: string[]): Promise<DesktopViewer> {
  return new DesktopViewer(await t.proxy.registry.dial(hostId, service, userCertificate(username, roles)));
}

before(async () => {
  if (skip) return;
  desktop = await startXrdp({ background: '#204060' });
  t = await startTestProxy();
  dir = mkdtempSync(path.join(tmpdir(), 'postern-agent-desktop-'));
  const deps = t.auth.server.deps;
  const admin = t.auth.connectAs(['admin']).client;
  const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
  const pin = (await admin.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
  writeFileSync(path.join(dir, 'xrdp.pass'), `${desktop.password}\n`, { mode: 0o600 });
  const config = parseConfig([
    `data_dir: ${dir}/agent`,
    'agent:',
    `  proxy_addr: ${t.proxy.address}`,
    `  token: ${secret}`,
    `  ca_pin: ${pin}`,
    '  node_name: desk-1',
    '  ssh: { enabled: false }',
    '  desktops:',
    '    - name: xrdp-1',
    `      addr: ${desktop.host}:${desktop.port}`,
    '      labels: { env: test }',
    '      logins:',
    `        - { login: tester, username: ${desktop.username}, password_file: xrdp.pass }`,
    '',
  ].join('\n'), path.join(dir, 'postern.yaml'));
  await admin.createResources({
    source: 'test',
    upsert: false,
    text: [
      'kind: role\nversion: v1\nmetadata: { name: desk-test }\nspec:\n  allow:\n    desktop_labels: { env: test }\n    desktop_logins: [tester]\n',
      'kind: role\nversion: v1\nmetadata: { name: desk-other-login }\nspec:\n  allow:\n    desktop_labels: { env: test }\n    desktop_logins: [admin]\n',
      'kind: role\nversion: v1\nmetadata: { name: desk-prod }\nspec:\n  allow:\n    desktop_labels: { env: prod }\n    desktop_logins: [tester]\n',
    ].join('---\n'),
  });
  agent = await startAgent(config, { logger: silentLogger() });
  hostId = agent.identity.current.host_id ?? '';
  await until('the tunnel at the proxy', () => t.proxy.registry.has(hostId));
  await until('the user CAs at the agent', () => /user CA certificate/.test(agent.desktops?.health().detail ?? '') || undefined);
});

after(async () => {
  await agent?.stop();
  await t?.stop();
  await desktop?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the agent announces the desktop with its labels and address', { skip }, async () => {
  const listed = await until('the desktop at auth', async () => (await t.auth.server.deps.presence.listServed('desktop')).find((d) => d.metadata.name === 'xrdp-1'));
  assert.deepEqual(listed.metadata.labels, { env: 'test' });
  assert.equal(listed.status.host_id, hostId);
  assert.equal(listed.spec['addr'], `${desktop.host}:${desktop.port}`);
  assert.doesNotMatch(JSON.stringify(listed), new RegExp(desktop.password));
});

test('malformed stream frames end the session with an error naming the problem', { skip, timeout: 30_000 }, async () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['unknown frame type', Buffer.from([0, 0, 0, 2, 9, 0]), /unknown type 9/],
    ['oversized length', Buffer.from([0x7f, 0, 0, 0, 1]), /over the 262144-byte limit/],
    ['not JSON', Buffer.concat([Buffer.from([0, 0, 0, 4, 1]), Buffer.from('{{{')]), /not valid JSON/],
    ['a rect from the viewer', Buffer.concat([Buffer.from([0, 0, 0, 10, 2]), Buffer.alloc(9)]), /may not send rect frames/],
    ['a bad connect', Buffer.concat([Buffer.from([0, 0, 0, 21, 1]), Buffer.from('{"type":"connect"}  ')]), /"connect" is malformed: login/],
  ];
  for (const [what, bytes, reason] of cases) {
    const viewer = await open('desktop:xrdp-1', 'mallory', ['desk-test']);
    viewer.stream.write(bytes);
    const error = await viewer.message('error');
    assert.equal(error['code'], 'PST_DESKTOP_STREAM', what);
    assert.match(String(error['message']), reason, what);
    await viewer.ended$();
  }
});

test('a dial without a valid user certificate, or to a desktop the agent does not serve, is refused', { skip }, async () => {
  const refused = async (service: string, identity: string): Promise<TunnelRejectedError> => {
    const error = await t.proxy.registry.dial(hostId, service, identity).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof TunnelRejectedError, String(error));
    return error;
  };
  const none = await refused('desktop:xrdp-1', '');
  assert.equal(none.status, 401);
  assert.match(none.reason, /no user certificate/);
  const forged = await refused('desktop:xrdp-1', Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64'));
  assert.equal(forged.status, 401);
  const anonymous = await until('the certificate refusals at auth', async () => {
    const list = (await events(['access.denied'])).filter((e) => e.identity.user === undefined);
    return list.length >= 2 ? list : undefined;
  });
  assert.match(anonymous[0]?.reason ?? '', /no user certificate/);
  const unknown = await refused('desktop:nope', userCertificate('alice', ['desk-test']));
  assert.equal(unknown.status, 404);
  assert.match(unknown.reason, /does not serve desktop:nope; it serves desktop:xrdp-1/);
});

test('a desktop whose labels no role matches is refused at the dial and audited', { skip }, async () => {
  const error = await t.proxy.registry.dial(hostId, 'desktop:xrdp-1', userCertificate('carol', ['desk-prod'])).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof TunnelRejectedError);
  assert.equal(error.status, 403);
  assert.match(error.reason, /desktop "xrdp-1"/);
  const denied = await until('carol\'s denial at auth', async () => (await events(['access.denied'])).find((e) => e.identity.user === 'carol'));
  assert.equal(denied.resource?.name, 'xrdp-1');
  assert.equal(denied.outcome, 'deny');
});

test('a desktop login no role allows gets an error message and an access.denied event', { skip, timeout: 30_000 }, async () => {
  const viewer = await open('desktop:xrdp-1', 'bob', ['desk-other-login']);
  viewer.send({ type: 'connect', login: 'tester', width: 1024, height: 768 });
  const error = await viewer.message('error');
  assert.equal(error['code'], 'PST_ACCESS_DENIED');
  assert.match(String(error['message']), /no role allows desktop login "tester" on desktop "xrdp-1"/);
  await viewer.ended$();
  const denied = await until('bob\'s denial at auth', async () => (await events(['access.denied'])).find((e) => e.identity.user === 'bob'));
  assert.equal(denied.fields['login'], 'tester');
  assert.deepEqual(denied.identity.roles, ['desk-other-login']);
});

test('clipboard text crosses the stream both ways (the session copies with xclip, the viewer pastes)', { skip: skip ?? (existsSync('/usr/bin/xclip') ? undefined : 'needs xclip (installers/dev-deps.sh)'), timeout: 60_000 }, async () => {
  const viewer = await open('desktop:xrdp-1', 'dora', ['desk-test']);
  viewer.send({ type: 'connect', login: 'tester', width: 1024, height: 768 });
  await viewer.message('ready', 15_000);
  const copied = 'copied on the desktop: ✓ 12';
  const arrived = (): boolean => viewer.messages.some((m) => m.type === 'clipboard' && m['text'] === copied);
  // A copy made before the clipboard channel is up is not announced: copy again, slower than a round trip.
  for (let attempt = 0; attempt < 4 && !arrived(); attempt++) {
    const set = await desktop.runInSession('sh', ['-c', `printf '%s' '${copied}' | xclip -selection clipboard -i >/dev/null 2>&1 &`]);
    assert.equal(set.code, 0, set.stderr);
    await until('the copied text at the viewer', () => arrived() || undefined, 5_000).catch(() => undefined);
  }
  assert.ok(arrived(), `no clipboard message with the copied text; got ${JSON.stringify(viewer.messages)}`);
  const pasted = 'pasted in the browser: ✓ 34';
  viewer.send({ type: 'clipboard', text: pasted });
  let read = '';
  await until('the pasted text in the session clipboard', async () => {
    read = (await desktop.runInSession('timeout', ['3', 'xclip', '-selection', 'clipboard', '-o'])).stdout;
    return read === pasted || undefined;
  }).catch((error: Error) => { throw new Error(`${error.message}; xclip -o gave ${JSON.stringify(read)}`); });
  viewer.send({ type: 'close' });
  await viewer.ended$();
});

test('a user streams the desktop through the proxy: first picture, xsetroot pixels, typed input, audit and a recording', { skip, timeout: 90_000 }, async () => {
  const started = Date.now();
  const viewer = await open('desktop:xrdp-1', 'alice', ['desk-test']);
  viewer.send({ type: 'connect', login: 'tester', width: 1024, height: 768 });
  const ready = await viewer.message('ready', 15_000);
  assert.equal(ready['desktop'], 'xrdp-1');
  assert.equal(ready['width'], 1024);
  await until('the first picture', () => viewer.rects > 0 || undefined, 5_000);
  const firstFrameMs = Date.now() - started;
  assert.ok(firstFrameMs < 5_000, `first frame after ${firstFrameMs} ms`);
  await until('the session background in the streamed picture', () => near(viewer.picture.pixel(900, 700), [0x20, 0x40, 0x60]) || undefined, 30_000)
    .catch((error: Error) => { throw new Error(`${error.message}; pixel ${viewer.picture.pixel(900, 700).join()} after ${viewer.rects} rects; messages ${JSON.stringify(viewer.messages)}`); });
  const set = await desktop.runInSession('xsetroot', ['-solid', '#00c040']);
  assert.equal(set.code, 0, set.stderr);
  await until('the new colour in the streamed picture', () => near(viewer.picture.pixel(900, 700), [0x00, 0xc0, 0x40]) || undefined)
    .catch((error: Error) => { throw new Error(`${error.message}; pixel ${viewer.picture.pixel(900, 700).join()}`); });
  // Input through the stream: the pointer over the xterm (focus follows it), then keys.
  viewer.send({ type: 'mouse_move', x: 60, y: 40 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const [scancode, down] of typeText('touch marker-streamed\n')) viewer.send({ type: 'key', scancode, down });
  await until('the marker typed through the stream', () => existsSync(path.join(desktop.runDir, 'marker-streamed')) || undefined);
  viewer.send({ type: 'close' });
  await viewer.ended$();

  const session = await until('the session events at auth', async () => {
    const list = await events(['desktop.session.start', 'desktop.session.end']);
    return list.some((e) => e.type === 'desktop.session.end' && e.identity.user === 'alice') ? list.filter((e) => e.identity.user === 'alice') : undefined;
  });
  assert.deepEqual(session.map((e) => [e.type, e.resource?.name, e.outcome, e.fields['login']]), [
    ['desktop.session.start', 'xrdp-1', 'success', 'tester'],
    ['desktop.session.end', 'xrdp-1', 'success', 'tester'],
  ]);
  assert.equal(session[0]?.fields['emitted_by'], hostId);
  const recording = String(session[1]?.fields['recording']);
  assert.ok(recording.startsWith(path.join(dir, 'agent', 'recordings', 'desktop')), recording);
  // The agent uploads the recording to auth when the session ends, then deletes its copy.
  const sessionId = String(session[0]?.fields['session_id']);
  const stored = await until('the recording at auth', () => t.auth.server.deps.recordings.get(sessionId).catch(() => undefined));
  assert.equal(stored.kind, 'desktop');
  assert.equal(stored.node, 'xrdp-1');
  assert.equal(stored.user, 'alice');
  assert.equal(stored.login, 'tester');
  assert.ok(stored.ended, 'the session ended before the upload');
  const bytes = await t.auth.server.deps.recordings.read(sessionId, 0, stored.size);
  const records = readRecording(bytes);
  assert.equal(records[0]?.frame.kind, 'control');
  assert.equal(records[0]?.frame.kind === 'control' && records[0].frame.message['user'], 'alice');
  assert.ok(records.filter((r) => r.frame.kind === 'rect').length > 0, 'the recording holds rects');
  await until('the local copy removed after the upload', () => readdirSync(path.dirname(recording)).length === 0 || undefined);
  assert.doesNotMatch(bytes.subarray(0, 4096).toString('latin1'), new RegExp(desktop.password));
});
