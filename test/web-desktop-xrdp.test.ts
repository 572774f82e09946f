/**
 * The web desktop and the recordings page against the real services: Chromium signs in at the proxy,
 * opens an xrdp desktop that a real agent (joined by token, `agent.desktops`) serves
 * through its tunnel, and the canvas shows the first frame and the colour set with
 * xsetroot; keys typed in the page reach the session's xterm (a marker file appears).
 * A desktop login the person's roles do not allow is refused in the page. Then a web
 * terminal session (the same agent's SSH service) and a desktop session are replayed
 * from the recordings page: the terminal's text and the desktop's pixels in the replay.
 *
 * Needs root and the xrdp fixture's packages (test/fixtures/xrdp.ts names them) and
 * Chromium (Debian package chromium).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startTestProxy, type TestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { parseConfig } from '../cluster/common/config.ts';
import { silentLogger } from '../cluster/common/logger.ts';
import { startAgent, type RunningAgent } from '../agent/agent.ts';
import { startXrdp, xrdpUnavailable, type XrdpDesktop } from './fixtures/xrdp.ts';
import { artifactsDir, chromiumMissing, launchChromium, newContext, screenshot } from './fixtures/browser.ts';

const skip = chromiumMissing() ?? xrdpUnavailable();
const password = 'a long and happy password';

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

/** The canvas pixel at x,y (RGBA). */
export function canvasPixel(page: Page, x: number, y: number, selector = 'canvas'): Promise<number[]> {
  return page.evaluate(`Array.from(document.querySelector(${JSON.stringify(selector)}).getContext('2d').getImageData(${x}, ${y}, 1, 1).data)`) as Promise<number[]>;
}

describe('web desktop with a real agent and xrdp', { skip }, () => {
  let t: TestProxy;
  let desktop: XrdpDesktop;
  let agent: RunningAgent;
  let browser: Browser | undefined;
  let dir = '';
  let shots = '';
  const origin = () => `https://127.0.0.1:${t.port}`;

  before(async () => {
    shots = artifactsDir('web-desktop-xrdp');
    desktop = await startXrdp({ background: '#204060' });
    t = await startTestProxy();
    dir = mkdtempSync(path.join(tmpdir(), 'postern-web-desktop-xrdp-'));
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
      '  ssh: { enabled: true }',
      '  desktops:',
      '    - name: xrdp-1',
      `      addr: ${desktop.host}:${desktop.port}`,
      '      labels: { env: test }',
      '      logins:',
      `        - { login: tester, username: ${desktop.username}, password_file: xrdp.pass }`,
      `        - { login: other, username: ${desktop.username}, password_file: xrdp.pass }`,
      '',
    ].join('\n'), path.join(dir, 'postern.yaml'));
    await admin.createResources({
      source: 'test',
      upsert: false,
      text: 'kind: role\nversion: v1\nmetadata: { name: desk-web }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { \'*\': \'*\' }\n    resources: [{ kinds: [node, desktop], verbs: [list, read] }]\n    desktop_labels: { env: test }\n    desktop_logins: [tester]\n',
    });
    await deps.users.create('dora', { roles: ['desk-web'] });
    await deps.users.setPassword('dora', password);
    await deps.users.create('eve', { roles: ['desk-web'] });
    await deps.users.setPassword('eve', password);
    agent = await startAgent(config, { logger: silentLogger() });
    const hostId = agent.identity.current.host_id ?? '';
    await until('the tunnel at the proxy', () => t.proxy.registry.has(hostId));
    await until('the user CAs at the agent', () => /user CA certificate/.test(agent.desktops?.health().detail ?? '') || undefined);
    await until('the desktop at auth', async () => (await deps.presence.listServed('desktop')).some((d) => d.metadata.name === 'xrdp-1') || undefined);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await t?.stop();
    await desktop?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page): Promise<void> {
    await page.goto(`${origin()}/`);
    await page.getByLabel('User name').fill('dora');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /Resources in/ }).waitFor();
  }

  test('the canvas shows the xrdp session: first frame, the xsetroot colour, typed keys and clipboard text reach the session', { timeout: 90_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page);
      await page.getByRole('tab', { name: 'Desktops' }).click();
      await page.getByRole('row', { name: /xrdp-1/ }).waitFor();
      await page.getByLabel('Desktop login').fill('tester');
      const started = Date.now();
      await page.getByRole('button', { name: 'Connect to desktop xrdp-1 as tester' }).click();
      await page.locator('[data-state="open"]').waitFor({ timeout: 20_000 });
      const size = await page.evaluate('[document.querySelector("canvas").width, document.querySelector("canvas").height]') as [number, number];
      const [x, y] = [size[0] - 20, size[1] - 20];
      await until('the first frame on the canvas', async () => near(await canvasPixel(page, x, y), [0x20, 0x40, 0x60]) || undefined, 20_000)
        .catch(async (error: Error) => { throw new Error(`${error.message}; pixel ${(await canvasPixel(page, x, y)).join()}\n${desktop.logs()}`); });
      const firstFrameMs = Date.now() - started;
      console.log(`# first frame in the browser after ${firstFrameMs} ms`);
      const set = await desktop.runInSession('xsetroot', ['-solid', '#00c040']);
      assert.equal(set.code, 0, set.stderr);
      await until('the xsetroot colour on the canvas', async () => near(await canvasPixel(page, x, y), [0x00, 0xc0, 0x40]) || undefined)
        .catch(async (error: Error) => { throw new Error(`${error.message}; pixel ${(await canvasPixel(page, x, y)).join()}`); });
      await screenshot(page, shots, '01-xrdp-desktop');
      // No window manager in the session: focus follows the pointer, so hover the xterm (top left) and type.
      const canvas = page.locator('canvas');
      await canvas.click({ position: { x: 60, y: 40 } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await page.keyboard.type('touch marker-web\n', { delay: 15 });
      await until('the marker typed in the browser', () => existsSync(path.join(desktop.runDir, 'marker-web')) || undefined)
        .catch(async (error: Error) => {
          await screenshot(page, shots, '01-typing-failed');
          throw error;
        });
      if (existsSync('/usr/bin/xclip')) {
        // Clipboard: a copy in the session shows in the page's clipboard box; text sent from it is the session's CLIPBOARD.
        const box = page.getByLabel('Clipboard text');
        const copied = 'copied in xrdp ✓';
        for (let attempt = 0; attempt < 4 && (await box.inputValue()) !== copied; attempt++) {
          await desktop.runInSession('sh', ['-c', `printf '%s' '${copied}' | xclip -selection clipboard -i >/dev/null 2>&1 &`]);
          await until('the copied text in the page', async () => (await box.inputValue()) === copied || undefined, 5_000).catch(() => undefined);
        }
        assert.equal(await box.inputValue(), copied, 'the session\'s copy in the clipboard box');
        await box.fill('sent from the page ✓');
        await page.getByRole('button', { name: 'Send to desktop' }).click();
        let read = '';
        await until('the sent text in the session clipboard', async () => {
          read = (await desktop.runInSession('timeout', ['3', 'xclip', '-selection', 'clipboard', '-o'])).stdout;
          return read === 'sent from the page ✓' || undefined;
        }).catch((error: Error) => { throw new Error(`${error.message}; xclip -o gave ${JSON.stringify(read)}`); });
      }
    } finally {
      await context.close();
    }
  });

  test('a desktop login her roles do not allow is refused in the page', { timeout: 30_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await signIn(page);
      await page.goto(`${origin()}/clusters/alpha/desktops/xrdp-1?login=other`);
      await page.locator('[data-state="error"]').filter({ hasText: /no role allows desktop login "other" on desktop "xrdp-1"/ }).waitFor();
      await screenshot(page, shots, '02-login-refused');
    } finally {
      await context.close();
    }
  });

  test('the recordings page replays a web terminal session and a desktop session', { timeout: 120_000 }, async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    const deps = t.auth.server.deps;
    const mine = async () => (await deps.recordings.list({ user: 'dora', limit: 50 }));
    try {
      await signIn(page);
      // A terminal session: a command whose output the replay must show.
      await page.getByRole('row', { name: /desk-1/ }).getByRole('button', { name: /Connect to desk-1 as root/ }).click({ timeout: 5_000 }).catch(async (e: Error) => { throw new Error(`${e.message}\n${await page.locator('main').innerText()}`); });
      await page.locator('[data-state="open"]').waitFor({ timeout: 20_000 });
      await page.keyboard.type('echo replay-$((6*7))\n');
      await page.locator('.xterm-rows').filter({ hasText: /replay-42/ }).waitFor({ timeout: 30_000 });
      await page.keyboard.type('exit\n');
      await page.locator('[data-state="closed"]').waitFor();
      // A desktop session that shows a colour the replay must show.
      const desktopFrom = new Date().toISOString();
      await page.goto(`${origin()}/clusters/alpha/desktops/xrdp-1?login=tester`);
      await page.locator('[data-state="open"]').waitFor({ timeout: 20_000 });
      const size = await page.evaluate('[document.querySelector("canvas").width, document.querySelector("canvas").height]') as [number, number];
      const [x, y] = [size[0] - 20, size[1] - 20];
      const set = await desktop.runInSession('xsetroot', ['-solid', '#c08000']);
      assert.equal(set.code, 0, set.stderr);
      await until('the colour in the live session', async () => near(await canvasPixel(page, x, y), [0xc0, 0x80, 0x00]) || undefined);
      await page.getByRole('link', { name: 'Back to resources' }).click();
      // Both recordings reach auth once the sessions end (the agent uploads them).
      const stored = await until('both recordings at auth', async () => {
        const list = await mine();
        const shell = list.find((r) => r.kind === 'shell');
        const desk = list.find((r) => r.kind === 'desktop' && r.started >= desktopFrom);
        return shell && desk ? { shell, desk } : undefined;
      }, 30_000);
      await page.getByRole('link', { name: 'Recordings' }).click();
      await page.getByRole('heading', { name: 'Recordings in alpha' }).waitFor();
      await screenshot(page, shots, '03-recordings');
      await page.getByRole('link', { name: `Play the shell session of dora on ${stored.shell.node} at ${stored.shell.started}` }).click();
      await page.locator('[data-state="done"]').waitFor({ timeout: 30_000 });
      await page.locator('.xterm-rows').filter({ hasText: /replay-42/ }).waitFor();
      await screenshot(page, shots, '04-terminal-replay');
      await page.getByRole('link', { name: 'Back to recordings' }).click();
      await page.getByRole('link', { name: `Play the desktop session of dora on xrdp-1 at ${stored.desk.started}` }).click();
      await page.locator('[data-state="done"]').waitFor({ timeout: 30_000 });
      const replayed = await canvasPixel(page, x, y);
      assert.ok(near(replayed, [0xc0, 0x80, 0x00]), `the replay ends on the session's colour; pixel ${replayed.join()}`);
      await screenshot(page, shots, '05-desktop-replay');
    } finally {
      await context.close();
    }
  });

  test('another person cannot list or fetch her recordings through the web API', async () => {
    const theirs = (await t.auth.server.deps.recordings.list({ user: 'dora', limit: 1 }))[0];
    assert.ok(theirs, 'the previous test left a recording');
    const context = await newContext(browser!);
    try {
      const login = await context.request.post(`${origin()}/v1/webapi/sessions`, { data: { user: 'eve', password }, headers: { origin: origin() } });
      assert.equal(login.status(), 200, await login.text());
      const list = await context.request.get(`${origin()}/v1/webapi/clusters/alpha/recordings`);
      assert.equal(list.status(), 200);
      assert.deepEqual((await list.json() as { recordings: unknown[] }).recordings, [], 'eve sees only her own (none)');
      const other = await context.request.get(`${origin()}/v1/webapi/clusters/alpha/recordings?user=dora`);
      assert.equal(other.status(), 403);
      assert.match(await other.text(), /you may list only your own recordings/);
      const fetched = await context.request.get(`${origin()}/v1/webapi/clusters/alpha/recordings/${theirs.session_id}`);
      assert.equal(fetched.status(), 403);
      assert.match(await fetched.text(), /belongs to another user; playing it needs a role allowing read on session_recording/);
      const missing = await context.request.get(`${origin()}/v1/webapi/clusters/alpha/recordings/not-a-session-id-at-all`);
      assert.equal(missing.status(), 404);
    } finally {
      await context.close();
    }
    const anonymous = await browser!.newContext({ ignoreHTTPSErrors: true });
    try {
      assert.equal((await anonymous.request.get(`${origin()}/v1/webapi/clusters/alpha/recordings/${theirs.session_id}`)).status(), 401);
    } finally {
      await anonymous.close();
    }
  });
});
