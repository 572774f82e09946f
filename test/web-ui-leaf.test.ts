/**
 * The web UI across trust, with real processes and a real browser: a root and a leaf
 * cluster (the leaf trusts the root; role map leaf-admin -> access), an agent in the
 * leaf, and headless Chromium at the root's proxy. A person signs in at the root,
 * picks the leaf in the cluster picker, sees the leaf's node (listed by the leaf
 * through the root's dialer) and runs a command in a web terminal on it (root proxy
 * -> leaf tunnel -> leaf proxy -> agent), with the root-routed web session
 * certificate. Refusals: a person whose roles do not reach the leaf gets no leaf in
 * the picker, an error on the leaf's pages and no terminal websocket there.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { stopAll } from './fixtures/processes.ts';
import { createResource, pshIn, signUpAndLogIn, startTrustedPair, type TrustedPair } from './fixtures/cluster-process.ts';
import { artifactsDir, chromiumMissing, launchChromium, newContext, screenshot } from './fixtures/browser.ts';

const skip = chromiumMissing() ?? (process.getuid?.() === 0 ? undefined : 'logs in as root on the leaf agent: run as root');
const password = 'a long and happy password';

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('web UI: a leaf cluster through the root', { skip }, () => {
  let pair: TrustedPair;
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
    pair = await startTrustedPair({ roleMap: [{ remote: 'leaf-admin', local: ['access'] }] });
    const created = await createResource(pair.root, [
      'kind: role\nversion: v1\nmetadata: { name: leaf-admin }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: prod }\n',
      'kind: role\nversion: v1\nmetadata: { name: staging-only }\nspec:\n  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n    cluster_labels: { env: staging }\n',
    ].join('---\n'));
    assert.equal(created.code, 0, created.stderr);
    await Promise.all([
      { name: 'alice', roles: 'leaf-admin,access' },
      { name: 'bob', roles: 'staging-only,access' },
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
    await stopAll(pair?.daemons() ?? []);
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
