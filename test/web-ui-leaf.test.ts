/**
 * The web UI across trust, with real processes and a real browser: a root and a leaf
 * cluster (the leaf trusts the root; role map leaf-admin -> access), an agent in the
 * leaf, and headless Chromium at the root's proxy. A person signs in at the root,
 * picks the leaf in the cluster picker, sees the leaf's node (listed by the leaf
 * through the root's dialer) and runs a command in a web terminal on it (root proxy
 * -> leaf tunnel -> leaf proxy -> agent), with the root-routed web session
 * certificate. With the xrdp fixture (root and its packages), an agent in the leaf also
 * serves an xrdp desktop, which the person opens from the root the same way: the
 * leaf's agent accepts the root's certificate and maps its roles. An agent in the leaf
 * serves an HTTP and a TCP app: the HTTP app's Launch opens the app login form on its
 * host under the root's app domain, routed to the leaf (`?cluster=leaf`), which leads
 * to the app. Refusals: a person whose roles do not reach the leaf gets no leaf in
 * the picker, an error on the leaf's pages and no terminal websocket there.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { addToken, createResource, pshIn, signUpAndLogIn, startTrustedPair, type TrustedPair } from './fixtures/cluster-process.ts';
import { startXrdp, xrdpUnavailable, type XrdpDesktop } from './fixtures/xrdp.ts';
import { until as pollUntil } from './fixtures/poll.ts';
import { artifactsDir, chromiumMissing, launchChromium, newContext, screenshot } from './fixtures/browser.ts';

const skip = chromiumMissing() ?? (process.getuid?.() === 0 ? undefined : 'logs in as root on the leaf agent: run as root');
const password = 'a long and happy password';
/** The root proxy's app domain (leaf apps are opened through the root); Chromium resolves *.localhost to the loopback. */
const appDomain = 'root.localhost';

const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => pollUntil(what, check, timeoutMs);

describe('web UI: a leaf cluster through the root', { skip }, () => {
  let pair: TrustedPair;
  let desktop: XrdpDesktop | undefined;
  let desktopAgent: DaemonProcess | undefined;
  let appAgent: DaemonProcess | undefined;
  let app: http.Server | undefined;
  let browser: Browser | undefined;
  const homes: Record<string, string> = {};
  let shots = '';
  const origin = () => `https://${pair.root.proxy}`;

  async function signIn(page: Page, user: string): Promise<void> {
    await page.goto(`${origin()}/`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Resources in root' }).waitFor();
  }

  before(async () => {
    shots = artifactsDir('web-ui-leaf');
    pair = await startTrustedPair({ roleMap: [{ remote: 'leaf-admin', local: ['access', 'leaf-desk'] }], rootProxyYaml: `  app_domain: ${appDomain}\n` });
    // An app in the leaf that names the user of the JWT it was sent (the leaf's; not verified here).
    app = await new Promise<http.Server>((resolve) => {
      const server = http.createServer((req, res) => {
        const jwt = String(req.headers['postern-jwt-assertion'] ?? '');
        const claims = jwt ? JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string } : {};
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<!doctype html><title>leafweb</title><p id="hello">hello from leafweb, ${claims.sub ?? 'nobody'}</p>`);
      });
      server.listen(0, '127.0.0.1', () => resolve(server));
    });
    const appToken = await addToken(pair.leaf, 'node');
    appAgent = await startDaemon('leaf-apps', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  proxy_addr: ${pair.leaf.proxy}\n  token: ${appToken}\n  ca_pin: ${pair.leaf.pin}\n  node_name: leaf-apps\n  ssh: { enabled: false }\n`
      + `  apps:\n    - { name: leafweb, uri: "http://127.0.0.1:${(app!.address() as AddressInfo).port}", labels: { env: leaf } }\n`
      + '    - { name: leaftcp, uri: "tcp://127.0.0.1:9", labels: { env: leaf } }\n');
    await appAgent.waitReady();
    const leafRole = await createResource(pair.leaf, 'kind: role\nversion: v1\nmetadata: { name: leaf-desk }\nspec:\n  allow:\n    desktop_labels: { env: test }\n    desktop_logins: [tester]\n');
    assert.equal(leafRole.code, 0, leafRole.stderr);
    if (!xrdpUnavailable()) {
      desktop = await startXrdp({ background: '#3060a0', xterm: false });
      const token = await addToken(pair.leaf, 'node');
      desktopAgent = await startDaemon('leaf-desk', (dir, diag) => {
        writeFileSync(path.join(dir, 'xrdp.pass'), `${desktop!.password}\n`, { mode: 0o600 });
        return `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  proxy_addr: ${pair.leaf.proxy}\n  token: ${token}\n  ca_pin: ${pair.leaf.pin}\n  node_name: leaf-desk\n  ssh: { enabled: false }\n`
          + `  desktops:\n    - name: leaf-xrdp\n      addr: ${desktop!.host}:${desktop!.port}\n      labels: { env: test }\n      logins:\n        - { login: tester, username: ${desktop!.username}, password_file: ${path.join(dir, 'xrdp.pass')} }\n`;
      });
      await desktopAgent.waitReady();
    }
    const created = await createResource(pair.root, [
      'kind: role\nversion: v1\nmetadata: { name: leaf-admin }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: unmapped }\nspec:\n  allow:\n    cluster_labels: { env: prod }\n    resources: [{ kinds: [remote_cluster], verbs: [list, read] }]\n',
      'kind: role\nversion: v1\nmetadata: { name: staging-only }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: staging }\n',
    ].join('---\n'));
    assert.equal(created.code, 0, created.stderr);
    await Promise.all([
      { name: 'alice', roles: 'leaf-admin,access' },
      { name: 'bob', roles: 'staging-only,access' },
      { name: 'carol', roles: 'unmapped' },
    ].map(async (user) => {
      homes[user.name] = mkdtempSync(path.join(tmpdir(), `postern-web-leaf-${user.name}-`));
      await signUpAndLogIn(pair.root, homes[user.name]!, { ...user, logins: 'root', password });
    }));
    // The leaf tunnel is up and the leaf's agent accepts root users (as psh sees it).
    await until('psh ssh --cluster leaf', async () => {
      const ran = await pshIn(homes.alice!)(['ssh', '--cluster', 'leaf', 'root@leaf-node', 'echo', 'ready']);
      return ran.code === 0 && ran.stdout.includes('ready') ? true : undefined;
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await stopAll([...(desktopAgent ? [desktopAgent] : []), ...(appAgent ? [appAgent] : []), ...(pair?.daemons() ?? [])]);
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
    await desktop?.stop();
    for (const home of Object.values(homes)) rmSync(home, { recursive: true, force: true });
  });

  test('sign in at the root, pick the leaf, open a terminal on the leaf node and run a command', { timeout: 90_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'alice');
      const picker = page.getByLabel('Cluster');
      await picker.locator('option', { hasText: 'leaf' }).waitFor({ state: 'attached' });
      assert.deepEqual(await picker.locator('option').allInnerTexts(), ['root', 'leaf']);
      await picker.selectOption('leaf');
      await page.getByRole('heading', { name: 'Resources in leaf' }).waitFor();
      const row = page.getByRole('row', { name: /leaf-node/ });
      await row.waitFor();
      await screenshot(page, shots, '01-leaf-resources');
      await row.getByRole('button', { name: /Connect to leaf-node as root/ }).click();
      await page.locator('[data-state="open"]').waitFor({ timeout: 30_000 });
      await page.keyboard.type('echo leaf-$((6*7)) on $(hostname)\n');
      await page.locator('.xterm-rows').filter({ hasText: /leaf-42 on/ }).waitFor({ timeout: 30_000 });
      await screenshot(page, shots, '02-leaf-terminal');
      assert.match(page.url(), /\/clusters\/leaf\/nodes\//);
      await page.keyboard.type('exit\n');
      await page.locator('[data-state="closed"]').waitFor();
    } finally {
      await context.close();
    }
  });

  test('an HTTP app in the leaf: Launch opens its login form at the root routed to the leaf, which leads to the app; a TCP app has none', { timeout: 90_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'alice');
      await page.getByLabel('Cluster').selectOption('leaf');
      await page.getByRole('heading', { name: 'Resources in leaf' }).waitFor();
      await page.getByRole('tab', { name: 'Applications' }).click();
      const row = page.getByRole('row', { name: /leafweb/ });
      await row.waitFor({ timeout: 20_000 });
      const launch = row.getByRole('link', { name: 'Launch leafweb (opens in a new tab)' });
      const host = `https://leafweb.${appDomain}:${new URL(origin()).port}`;
      assert.equal(await launch.getAttribute('href'), `${host}/.postern/login?cluster=leaf&redirect=%2F`);
      assert.equal(await launch.getAttribute('target'), '_blank');
      assert.equal(await launch.getAttribute('rel'), 'noopener noreferrer');
      const tcp = page.getByRole('row', { name: /leaftcp/ });
      await tcp.waitFor();
      assert.equal(await tcp.getByRole('link').count(), 0, 'a TCP app has no Launch');
      await screenshot(page, shots, '09-leaf-apps');

      const [tab] = await Promise.all([context.waitForEvent('page'), launch.click()]);
      await tab.waitForURL(`${host}/.postern/login?cluster=leaf&redirect=%2F`);
      await tab.getByRole('heading', { name: 'Log in to leafweb in cluster leaf' }).waitFor();
      await screenshot(tab, shots, '10-leaf-app-login');
      await tab.fill('#user', 'alice');
      await tab.fill('#password', password);
      await Promise.all([tab.waitForURL(`${host}/`), tab.click('#login')]);
      // The leaf's agent accepted the root user's routed session and mapped her roles.
      assert.equal(await tab.textContent('#hello'), 'hello from leafweb, alice');
      await tab.close();
    } catch (error) {
      await screenshot(page, shots, `failed-leaf-apps-${Date.now()}`);
      throw error;
    } finally {
      await context.close();
    }
  });

  test('an xrdp desktop in the leaf opens from the root: the canvas shows the session', { timeout: 90_000, skip: xrdpUnavailable() }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'alice');
      await page.getByLabel('Cluster').selectOption('leaf');
      await page.getByRole('heading', { name: 'Resources in leaf' }).waitFor();
      await page.getByRole('tab', { name: 'Desktops' }).click();
      await page.getByRole('row', { name: /leaf-xrdp/ }).waitFor({ timeout: 20_000 });
      await page.getByLabel('Desktop login').fill('tester');
      await page.getByRole('button', { name: 'Connect to desktop leaf-xrdp as tester' }).click();
      await page.locator('[data-state="open"]').waitFor({ timeout: 30_000 });
      const size = await page.evaluate('[document.querySelector("canvas").width, document.querySelector("canvas").height]') as [number, number];
      const pixel = () => page.evaluate(`Array.from(document.querySelector('canvas').getContext('2d').getImageData(${size[0] - 20}, ${size[1] - 20}, 1, 1).data)`) as Promise<number[]>;
      const near = (p: number[], rgb: number[]) => p[3] === 255 && rgb.every((v, i) => Math.abs(v - p[i]!) <= 4);
      await until('the leaf session\'s colour on the canvas', async () => (near(await pixel(), [0x30, 0x60, 0xa0]) ? true : undefined))
        .catch(async (error: Error) => { throw new Error(`${error.message}; pixel ${(await pixel()).join()}`); });
      await screenshot(page, shots, '04-leaf-desktop');
      await page.getByRole('link', { name: 'Back to resources' }).click();
      // The leaf's desktop events about the root user reach the root's audit log.
      await until('the leaf desktop session in the root\'s audit log', async () => {
        const found = await pair.root.pctl(['audit', 'search', '--cluster', 'leaf', '--type', 'desktop.session.end', '--limit', '100', '--format', 'json']);
        const events = JSON.parse(found.stdout || '[]') as Array<{ identity: { user?: string }; fields: Record<string, unknown> }>;
        return events.some((e) => e.identity.user === 'alice' && e.fields['user_cluster'] === 'root') ? true : undefined;
      });
    } finally {
      await context.close();
    }
  });

  test('the leaf\'s recordings page at the root replays her terminal and desktop sessions in the leaf', { timeout: 90_000, skip: xrdpUnavailable() }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    let aliceShell = '';
    try {
      await signIn(page, 'alice');
      type Listed = { session_id: string; kind: string; node: string; started: string; user_cluster?: string };
      // The leaf's agents upload when the sessions end; the leaf serves them to the root.
      const listed = await until('both leaf recordings through the root', async () => {
        const answer = await page.evaluate(`fetch('/v1/webapi/clusters/leaf/recordings').then((r) => r.json())`) as { recordings?: Listed[] };
        const shell = answer.recordings?.find((r) => r.kind === 'shell');
        const desk = answer.recordings?.find((r) => r.kind === 'desktop');
        return shell && desk ? { shell, desk, all: answer.recordings! } : undefined;
      });
      assert.ok(listed.all.every((r) => r.user_cluster === 'root'), 'only her sessions as a root user');
      aliceShell = listed.shell.session_id;
      await page.goto(`${origin()}/clusters/leaf/recordings`);
      await page.getByRole('heading', { name: 'Recordings in leaf' }).waitFor();
      await screenshot(page, shots, '06-leaf-recordings');
      await page.getByRole('link', { name: `Play the shell session of alice on leaf-node at ${listed.shell.started}` }).click();
      await page.locator('[data-state="done"]').waitFor({ timeout: 30_000 });
      await page.locator('.xterm-rows').filter({ hasText: /leaf-42 on/ }).waitFor();
      await screenshot(page, shots, '07-leaf-terminal-replay');
      await page.getByRole('link', { name: 'Back to recordings' }).click();
      await page.getByRole('link', { name: `Play the desktop session of alice on leaf-xrdp at ${listed.desk.started}` }).click();
      await page.locator('[data-state="done"]').waitFor({ timeout: 30_000 });
      const size = await page.evaluate('[document.querySelector("canvas").width, document.querySelector("canvas").height]') as [number, number];
      const replayed = await page.evaluate(`Array.from(document.querySelector('canvas').getContext('2d').getImageData(${size[0] - 20}, ${size[1] - 20}, 1, 1).data)`) as number[];
      assert.ok(replayed[3] === 255 && [0x30, 0x60, 0xa0].every((v, i) => Math.abs(v - replayed[i]!) <= 4), `the replay shows the leaf session's colour; pixel ${replayed.join()}`);
      await screenshot(page, shots, '08-leaf-desktop-replay');
    } finally {
      await context.close();
    }
    // Carol reaches the leaf but has no sessions there: an empty list; her fetch of alice's is refused by the leaf.
    const carol = await newContext(browser!);
    try {
      const login = await carol.request.post(`${origin()}/v1/webapi/sessions`, { data: { user: 'carol', password }, headers: { origin: origin() } });
      assert.equal(login.status(), 200, await login.text());
      const list = await carol.request.get(`${origin()}/v1/webapi/clusters/leaf/recordings`);
      assert.equal(list.status(), 200, await list.text());
      assert.deepEqual((await list.json() as { recordings: unknown[] }).recordings, []);
      const theirs = await carol.request.get(`${origin()}/v1/webapi/clusters/leaf/recordings/${aliceShell}`);
      assert.equal(theirs.status(), 403);
      assert.match(await theirs.text(), /is not a session of carol from cluster root/);
    } finally {
      await carol.close();
    }
  });

  test('a root user whose roles map to none in the leaf is refused by the leaf\'s desktop agent, in the page', { timeout: 60_000, skip: xrdpUnavailable() }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'carol');
      await page.goto(`${origin()}/clusters/leaf/desktops/leaf-xrdp?login=tester`);
      await page.locator('[data-state="error"]').filter({ hasText: /no roles mapped for remote user carol from cluster root/ }).waitFor({ timeout: 20_000 });
      await screenshot(page, shots, '05-leaf-desktop-unmapped');
    } finally {
      await context.close();
    }
  });

  test('a person whose roles do not reach the leaf sees only the root and is refused on the leaf\'s pages', { timeout: 60_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'bob');
      const picker = page.getByLabel('Cluster');
      // The picker has loaded once the session's cluster list arrived; bob's lists only the root.
      await until('the cluster list', async () => ((await picker.locator('option').count()) >= 1 ? true : undefined));
      const listed = await page.evaluate(`fetch('/v1/webapi/clusters').then((r) => r.json())`) as { clusters: Array<{ name: string }> };
      assert.deepEqual(listed.clusters.map((c) => c.name), ['root']);
      await page.goto(`${origin()}/clusters/leaf/resources`);
      await page.getByRole('alert').filter({ hasText: /cluster "leaf" is not reachable for you/ }).waitFor();
      await screenshot(page, shots, '03-leaf-refused');
      const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`wss://${pair.root.proxy}/v1/webapi/clusters/leaf/nodes/leaf-node/terminal?login=root`, { rejectUnauthorized: false, headers: { origin: origin(), cookie } });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => resolve(101));
        ws.on('error', () => resolve(-1));
      });
      assert.equal(status, 404, 'no terminal websocket into a leaf her roles do not reach');
    } finally {
      await context.close();
    }
  });
});
