/**
 * The web UI end to end with real processes and a real browser: a cluster process
 * (auth + proxy) serving the built UI, an agent process serving SSH, and headless
 * Chromium. A person signs in with password and TOTP, lists resources, opens a web
 * terminal on the node and runs a command (read back from the terminal's DOM),
 * resizes it, reads the audit log and uses the admin pages. Refusals: websockets and
 * API calls without a valid session (none, forged, signed out), state-changing calls
 * without the CSRF token, a cross-site Origin, and a user without admin rights (auth
 * refuses, the page shows it). The agent also serves an HTTP app and a TCP app: the
 * HTTP app's Launch link opens its address (APP.webui.localhost on the proxy's port) in
 * a new tab, where the app's login form leads to the app.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { connectAuth, type AuthConnection } from '../cluster/api/auth-client.ts';
import type { IdentityFile } from '../cluster/api/identity-file.ts';
import { totpCode } from '../cluster/auth/users/totp.ts';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { inviteUser, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { artifactsDir, chromiumMissing, launchChromium, newContext, screenshot } from './fixtures/browser.ts';

const skip = chromiumMissing();
/** The proxy's app domain; Chromium resolves *.localhost to the loopback. */
const appDomain = 'webui.localhost';

/** An HTTP app that answers a page naming the user of the Postern JWT it was sent (not verified: the app tests do that). */
function startHtmlApp(): Promise<http.Server> {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const jwt = String(req.headers['postern-jwt-assertion'] ?? '');
      const claims = jwt ? JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string } : {};
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>web-app</title><p id="hello">hello from web-app, ${claims.sub ?? 'nobody'}</p>`);
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request to the proxy that ignores its (test CA) certificate. */
function request(proxy: string, method: string, urlPath: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<HttpResult> {
  const [host, port] = proxy.split(':');
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host, port: Number(port), method, path: urlPath, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'],
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers },
    } as https.RequestOptions, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Opens a terminal websocket; resolves with the HTTP status of a refused upgrade, or 101
 * and the first text frame. A shell that opened is left with `exit` (a clean end).
 */
function openTerminal(proxy: string, cluster: string, headers: Record<string, string>, options: { waitForExit?: boolean } = {}): Promise<{ status: number; first?: string }> {
  return new Promise((resolve) => {
    let first: string | undefined;
    const ws = new WebSocket(`wss://${proxy}/v1/webapi/clusters/${cluster}/nodes/web-1/terminal?login=root&cols=80&rows=24`, { headers, rejectUnauthorized: false });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary || first !== undefined) return;
      first = String(data);
      if (!/"ready"/.test(first)) ws.close();
      else if (options.waitForExit) ws.send(Buffer.from('exit\r'), { binary: true });
      else {
        resolve({ status: 101, first });
        ws.close();
      }
    });
    ws.on('close', () => resolve({ status: 101, first }));
    ws.on('error', () => resolve({ status: -1 }));
  });
}

describe('web UI', { skip }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let app: http.Server | undefined;
  let admin: AuthConnection | undefined;
  let browser: Browser | undefined;
  let shots = '';
  const password = 'a long and happy password';
  let totpSecret = '';
  const origin = () => `https://${cluster!.proxy}`;

  /** Signs a user up through auth (as the local admin identity); with TOTP enrolled and confirmed when asked. */
  async function signUp(name: string, roles: string, withTotp: boolean): Promise<string> {
    const token = await inviteUser(cluster!, name, roles, 'root');
    const done = await admin!.client.completeSignup({ token, password, enrollTotp: withTotp });
    if (!withTotp) return '';
    const secret = new URL(done.totpUri).searchParams.get('secret') ?? '';
    // Confirm with the previous step's code, so the login's current code is not a replay.
    await admin!.client.confirmTotp({ user: name, password, code: totpCode(secret, new Date(Date.now() - 30_000)) });
    return secret;
  }

  /**
   * The agent reads the user CAs just after start (retrying each second): wait until a
   * web terminal opens, and end that shell cleanly with `exit`.
   */
  async function waitUntilNodeAcceptsLogins(): Promise<void> {
    const login = await request(cluster!.proxy, 'POST', '/v1/webapi/sessions', { body: { user: 'nora', password } });
    assert.equal(login.status, 200, login.body);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    let last = '';
    for (let i = 0; i < 40; i++) {
      const opened = await openTerminal(cluster!.proxy, 'webui', { origin: origin(), cookie }, { waitForExit: true });
      if (opened.status === 101 && /"ready"/.test(opened.first ?? '')) return;
      last = opened.first ?? String(opened.status);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.fail(`the node did not accept a web terminal login within 10 s: ${last}\n${agent!.logs().slice(-3000)}`);
  }

  async function signIn(page: Page, user: string, code = ''): Promise<void> {
    await page.goto(`${origin()}/`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    if (code) await page.getByLabel(/One-time code/).fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /Resources in/ }).waitFor();
  }

  before(async () => {
    shots = artifactsDir('web-ui');
    [cluster, app] = await Promise.all([startClusterProcess('webui', { proxyLines: [`app_domain: ${appDomain}`] }), startHtmlApp()]);
    const { proxy, pin } = cluster;
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  node_name: web-1\n  proxy_addr: ${proxy}\n  token: ${token}\n  ca_pin: ${pin}\n  labels: { env: prod, team: web }\n`
      + `  apps:\n    - { name: web-app, uri: "http://127.0.0.1:${(app!.address() as AddressInfo).port}", labels: { env: prod } }\n`
      + '    - { name: echo-tcp, uri: "tcp://127.0.0.1:9", labels: { env: prod } }\n');
    const identity = JSON.parse(readFileSync(path.join(cluster.daemon.dir, 'admin-identity.json'), 'utf8')) as IdentityFile;
    admin = connectAuth(identity.auth_addr ?? '', identity);
    // tess signs in with TOTP; wendy (admin) and nora (no admin rights) with passwords,
    // so the tests need no more than one one-time code per 30 s step.
    const [, secret] = await Promise.all([agent.waitReady(), signUp('tess', 'access,auditor', true), signUp('wendy', 'access,editor', false), signUp('nora', 'access', false)]);
    totpSecret = secret;
    await waitUntilNodeAcceptsLogins();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    admin?.close();
    await stopAll([agent, cluster?.daemon]);
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
  });

  test('the UI is served at / with a strict CSP, no framing, hashed assets cached for a year and index.html not cached', async () => {
    const index = await request(cluster!.proxy, 'GET', '/clusters/webui/resources');
    assert.equal(index.status, 200);
    assert.match(String(index.headers['content-type']), /text\/html/);
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.equal(index.headers['x-frame-options'], 'DENY');
    const csp = String(index.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
    assert.ok(script, index.body);
    const asset = await request(cluster!.proxy, 'GET', script);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal((await request(cluster!.proxy, 'GET', '/assets/index-nothere.js')).status, 404);
  });

  test('sign in with password and TOTP, list resources, open a terminal, run a command, resize, read the audit log', async () => {
    const context = await newContext(browser!);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: origin() });
    const page = await context.newPage();
    try {
      // A wrong one-time code is refused on the page.
      await page.goto(`${origin()}/`);
      await page.getByLabel('User name').fill('tess');
      await page.getByLabel('Password').fill(password);
      await page.getByLabel(/One-time code/).fill('000000');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: /PST_LOGIN_FAILED/ }).waitFor();
      await screenshot(page, shots, '01-login-refused');

      await signIn(page, 'tess', totpCode(totpSecret, new Date()));
      const row = page.getByRole('row', { name: /web-1/ });
      await row.waitFor();
      assert.match(await row.innerText(), /env=prod/);
      // Label filter and search.
      await page.getByLabel('Label filter').fill('env=dev');
      await page.getByText('No servers match.').waitFor();
      await page.getByLabel('Label filter').fill('team=web');
      await row.waitFor();
      await page.getByLabel('Search').fill('web-');
      await screenshot(page, shots, '02-resources');

      await row.getByRole('button', { name: /Connect to web-1 as root/ }).click();
      await page.locator('[data-state="open"]').waitFor({ timeout: 20_000 });
      const rows = page.locator('.xterm-rows');
      await page.keyboard.type('echo web-$((6*7)); stty size\n');
      // A login shell reads the account's profile first; on a busy machine root's can be
      // slow (a shared pyenv rehash lock was seen here), so allow it time.
      await rows.filter({ hasText: /web-42/ }).waitFor({ timeout: 60_000 });
      const before = /(\d+) (\d+)\s*$/m.exec((await rows.innerText()).split('web-42')[1] ?? '');
      assert.ok(before, await rows.innerText());
      await screenshot(page, shots, '03-terminal');

      // Resize: the page shrinks, xterm refits, the pty learns the new size.
      await page.setViewportSize({ width: 900, height: 600 });
      await page.waitForTimeout(300);
      await page.keyboard.type('clear; echo size-$(stty size | tr " " x)\n');
      await rows.filter({ hasText: /size-\d+x\d+/ }).waitFor();
      const after = /size-(\d+)x(\d+)/.exec(await rows.innerText());
      assert.ok(after);
      assert.ok(Number(after[2]) < Number(before[2]), `columns shrank: ${before[2]} -> ${after[2]}`);

      // Paste through the clipboard.
      await page.evaluate('navigator.clipboard.writeText("echo pasted-$((40+2))")');
      await page.getByRole('button', { name: 'Paste' }).click();
      // bash reads a bracketed paste as text, newline included, without running it: press Enter.
      await rows.filter({ hasText: /echo pasted-\$\(\(40\+2\)\)/ }).waitFor();
      await page.keyboard.press('Enter');
      await rows.filter({ hasText: /pasted-42/ }).waitFor();
      await page.keyboard.type('exit\n');
      await page.locator('[data-state="closed"]').filter({ hasText: /exit status 0/ }).waitFor();
      await page.setViewportSize({ width: 1280, height: 800 });

      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByRole('heading', { name: /Audit log of webui/ }).waitFor();
      const table = page.getByRole('table', { name: 'audit events' });
      await table.getByRole('cell', { name: 'web.session.start' }).first().waitFor();
      await page.getByLabel('Event types').fill('user.login');
      await page.getByRole('button', { name: 'Search' }).click();
      // The type filter applies: other events leave the table, logins stay.
      await table.getByRole('cell', { name: 'web.session.start' }).first().waitFor({ state: 'detached' });
      await table.getByRole('cell', { name: 'user.login', exact: true }).first().waitFor();
      await screenshot(page, shots, '04-audit');
    } catch (error) {
      await screenshot(page, shots, `failed-${Date.now()}`);
      console.log(agent!.logs().split('\n').slice(-25).join('\n'));
      throw error;
    } finally {
      await context.close();
    }
  });

  test('admin pages: invite a user, save a role from YAML, add a token', async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'wendy');
      await page.getByRole('link', { name: 'Users' }).click();
      await page.getByLabel('Name').fill('olga');
      await page.getByLabel('Roles').fill('access');
      await page.getByRole('button', { name: 'Invite' }).click();
      await page.getByRole('status').filter({ hasText: /User olga invited.*--token=\S+/ }).waitFor();
      await page.getByRole('row', { name: /olga/ }).waitFor();
      await screenshot(page, shots, '05-users');

      await page.getByRole('link', { name: 'Roles' }).click();
      await page.getByLabel('Role (YAML)').fill('kind: role\nversion: v1\nmetadata:\n  name: web-dev\nspec:\n  allow:\n    logins: [dev]\n    node_labels: { env: dev }\n');
      await page.getByRole('button', { name: 'Save role' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved role/web-dev' }).waitFor();
      await page.getByRole('button', { name: 'web-dev', exact: true }).click();
      assert.match(await page.getByLabel('Role (YAML)').inputValue(), /node_labels:\s+env: dev/);
      await page.getByLabel('Role (YAML)').fill('kind: role\nmetadata: {}\n');
      await page.getByRole('button', { name: 'Save role' }).click();
      await page.getByRole('alert').filter({ hasText: /PST_BAD_INPUT/ }).waitFor();
      await screenshot(page, shots, '06-roles');

      await page.getByRole('link', { name: 'Tokens' }).click();
      await page.getByRole('button', { name: 'Add token' }).click();
      await page.getByRole('status').filter({ hasText: /shown once/ }).waitFor();
      await screenshot(page, shots, '07-tokens');
    } catch (error) {
      await screenshot(page, shots, `failed-${Date.now()}`);
      throw error;
    } finally {
      await context.close();
    }
  });

  test('a user without admin rights sees auth\'s refusal on the admin pages, and the node\'s refusal of a login she lacks', async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'nora');
      await page.getByRole('link', { name: 'Users' }).click();
      await page.getByRole('alert').filter({ hasText: /PST_ACCESS_DENIED.*nora/ }).waitFor();
      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByRole('alert').filter({ hasText: /PST_ACCESS_DENIED/ }).waitFor();
      await screenshot(page, shots, '08-refused-admin');
      // A login her roles do not grant: the node refuses, the page says so.
      await page.goto(`${origin()}/clusters/webui/nodes/web-1/terminal?login=nobody`);
      await page.locator('[data-state="error"]').filter({ hasText: /cannot open a terminal on web-1 as nobody/ }).waitFor({ timeout: 20_000 });
      await screenshot(page, shots, '09-refused-login');
    } catch (error) {
      await screenshot(page, shots, `failed-${Date.now()}`);
      throw error;
    } finally {
      await context.close();
    }
  });

  test('applications: Launch opens an HTTP app at its address in a new tab (the app\'s login form, then the app); a TCP app and a proxy without an app domain have none', async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page, 'nora');
      await page.getByRole('tab', { name: 'Applications' }).click();
      const row = page.getByRole('row', { name: /web-app/ });
      await row.waitFor();
      const launch = row.getByRole('link', { name: 'Launch web-app (opens in a new tab)' });
      const address = `https://web-app.${appDomain}:${new URL(origin()).port}/`;
      assert.equal(await launch.getAttribute('href'), address);
      assert.equal(await launch.getAttribute('target'), '_blank');
      assert.equal(await launch.getAttribute('rel'), 'noopener noreferrer');
      const tcp = page.getByRole('row', { name: /echo-tcp/ });
      await tcp.waitFor();
      assert.equal(await tcp.getByRole('link').count(), 0, 'a TCP app has no Launch');
      assert.equal(await tcp.getAttribute('title'), 'a TCP app: use psh proxy app echo-tcp');
      await screenshot(page, shots, '12-apps');

      // The new tab is the app's own host: its login form (a separate session), then the app as nora.
      const [tab] = await Promise.all([context.waitForEvent('page'), launch.click()]);
      await tab.waitForURL(/\/\.postern\/login\?redirect=%2F$/);
      assert.ok(tab.url().startsWith(`https://web-app.${appDomain}:`), tab.url());
      await tab.fill('#user', 'nora');
      await tab.fill('#password', password);
      await Promise.all([tab.waitForURL(address), tab.click('#login')]);
      assert.equal(await tab.textContent('#hello'), 'hello from web-app, nora');
      await screenshot(tab, shots, '13-app-launched');
      await tab.close();

      // A proxy whose discovery names no app domain: no Launch, the row's tooltip says why.
      await page.route('**/v1/discovery', (route) => route.fulfill({ json: { cluster_name: 'webui', version: 'test', proxies: [], ca_pins: [] } }));
      await page.getByRole('tab', { name: 'Servers' }).click();
      await page.getByRole('row', { name: /web-1/ }).waitFor();
      await page.getByRole('tab', { name: 'Applications' }).click();
      await page.locator('tr[title="the proxy has no app domain"]').filter({ hasText: 'web-app' }).waitFor();
      assert.equal(await page.getByRole('row', { name: /web-app/ }).getByRole('link').count(), 0);
    } catch (error) {
      await screenshot(page, shots, `failed-${Date.now()}`);
      throw error;
    } finally {
      await context.close();
    }
  });

  test('works at phone width and with the keyboard: no sideways scrolling, the terminal opens', async () => {
    const context = await newContext(browser!, { width: 390, height: 844 });
    const page = await context.newPage();
    try {
      // Keyboard only: the user field has focus, Tab moves through the form in order, Enter submits.
      await page.goto(`${origin()}/`);
      await page.locator('#login-user:focus').waitFor();
      await page.keyboard.type('nora');
      await page.keyboard.press('Tab');
      await page.keyboard.type(password);
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate('document.activeElement.id'), 'login-totp');
      await page.keyboard.press('Enter');
      await page.getByRole('row', { name: /web-1/ }).waitFor();
      const width = await page.evaluate('document.documentElement.scrollWidth');
      assert.ok(Number(width) <= 390, `the resources page fits 390 px (scroll width ${String(width)})`);
      await screenshot(page, shots, '10-phone-resources');
      await page.getByRole('button', { name: /Connect to web-1/ }).click();
      await page.locator('[data-state="open"]').waitFor({ timeout: 20_000 });
      await page.keyboard.type('echo phone-$((40+2))\n');
      await page.locator('.xterm-rows').filter({ hasText: /phone-42/ }).waitFor({ timeout: 60_000 });
      await screenshot(page, shots, '11-phone-terminal');
      // End the shell with exit, not by leaving: a shell hung up inside its profile can leave locks behind.
      await page.keyboard.type('exit\n');
      await page.locator('[data-state="closed"]').waitFor();
    } catch (error) {
      await screenshot(page, shots, `failed-${Date.now()}`);
      throw error;
    } finally {
      await context.close();
    }
  });

  test('refusals: no session, a forged cookie, a signed-out cookie, missing or wrong CSRF token, a cross-site Origin', async () => {
    const proxy = cluster!.proxy;
    const login = await request(proxy, 'POST', '/v1/webapi/sessions', { body: { user: 'nora', password } });
    assert.equal(login.status, 200, login.body);
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /^__Host-postern_session=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+/);
    const cookie = setCookie.split(';')[0]!;
    const csrf = (JSON.parse(login.body) as { csrf_token: string }).csrf_token;
    const forged = `__Host-postern_session=${'A'.repeat(43)}`;
    const formLogin = await request(proxy, 'POST', '/v1/webapi/sessions', { headers: { 'content-type': 'text/plain' }, body: { user: 'nora', password } });
    assert.equal(formLogin.status, 415, 'a login a cross-site form could send is refused');
    assert.equal((await request(proxy, 'POST', '/v1/webapi/sessions', { headers: { origin: 'https://evil.example' }, body: { user: 'nora', password } })).status, 403, 'a cross-site login is refused');

    assert.equal((await request(proxy, 'GET', '/v1/webapi/clusters/webui/resources/node')).status, 401);
    assert.equal((await request(proxy, 'GET', '/v1/webapi/clusters/webui/resources/node', { headers: { cookie: forged } })).status, 401);
    assert.equal((await request(proxy, 'GET', '/v1/webapi/clusters/webui/resources/node', { headers: { cookie } })).status, 200);
    assert.equal((await request(proxy, 'GET', '/v1/webapi/clusters/elsewhere/resources/node', { headers: { cookie } })).status, 404);

    assert.equal((await openTerminal(proxy, 'webui', { origin: `https://${proxy}` })).status, 401, 'websocket without a session');
    assert.equal((await openTerminal(proxy, 'webui', { origin: `https://${proxy}`, cookie: forged })).status, 401, 'websocket with a forged cookie');
    assert.equal((await openTerminal(proxy, 'webui', { origin: 'https://evil.example', cookie })).status, 403, 'websocket from another origin');
    const opened = await openTerminal(proxy, 'webui', { origin: `https://${proxy}`, cookie }, { waitForExit: true });
    assert.equal(opened.status, 101);
    assert.match(opened.first ?? '', /"type":"ready"/);

    // CSRF on an admin action (wendy may, so only the token decides).
    const wendy = await request(proxy, 'POST', '/v1/webapi/sessions', { body: { user: 'wendy', password } });
    assert.equal(wendy.status, 200, wendy.body);
    const adminCookie = String(wendy.headers['set-cookie']).split(';')[0]!;
    const adminCsrf = (JSON.parse(wendy.body) as { csrf_token: string }).csrf_token;
    const invite = (headers: Record<string, string>, name: string) => request(proxy, 'POST', '/v1/webapi/clusters/webui/users', { headers: { cookie: adminCookie, ...headers }, body: { name, roles: ['access'] } });
    const missing = await invite({}, 'csrf-a');
    assert.equal(missing.status, 403);
    assert.match(missing.body, /CSRF token/);
    assert.equal((await invite({ 'x-csrf-token': csrf }, 'csrf-b')).status, 403, 'another session token');
    assert.equal((await invite({ 'x-csrf-token': adminCsrf, origin: 'https://evil.example' }, 'csrf-c')).status, 403, 'cross-site Origin');
    assert.equal((await invite({ 'x-csrf-token': adminCsrf }, 'csrf-d')).status, 200, 'the right token passes');
    const users = JSON.parse((await request(proxy, 'GET', '/v1/webapi/clusters/webui/resources/user', { headers: { cookie: adminCookie } })).body) as { items: Array<{ metadata: { name: string } }> };
    assert.deepEqual(users.items.map((u) => u.metadata.name).filter((n) => n.startsWith('csrf-')), ['csrf-d']);
    // The refusals are audited under wendy's name.
    let reasons: string[] = [];
    for (let i = 0; i < 40 && reasons.filter((r) => /CSRF token|cross-site/.test(r)).length < 3; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 50)); // the proxy sends them in the background
      const audited = await admin!.client.searchAudit({ types: ['access.denied'], user: 'wendy', limit: 50 });
      reasons = audited.eventsJson.map((line) => (JSON.parse(line) as { reason?: string }).reason ?? '');
    }
    assert.equal(reasons.filter((r) => /CSRF token/.test(r)).length, 2, reasons.join('\n'));
    assert.equal(reasons.filter((r) => /cross-site request refused/.test(r)).length, 1, reasons.join('\n'));

    // Sign out: the cookie is dead everywhere (auth removed the session), also for websockets.
    assert.equal((await request(proxy, 'DELETE', '/v1/webapi/sessions/current', { headers: { cookie } })).status, 403, 'logout needs the CSRF token too');
    assert.equal((await request(proxy, 'DELETE', '/v1/webapi/sessions/current', { headers: { cookie, 'x-csrf-token': csrf } })).status, 200);
    assert.equal((await request(proxy, 'GET', '/v1/webapi/sessions/current', { headers: { cookie } })).status, 401);
    assert.equal((await openTerminal(proxy, 'webui', { origin: `https://${proxy}`, cookie })).status, 401, 'websocket with a signed-out cookie');
  });
});
