/**
 * The web UI's desktop page and the proxy's desktop websocket with a real browser,
 * proxy, auth and reverse tunnel. The agent side is a small desktop service written
 * here that speaks the documented desktop stream (docs/desktops.md: ready, raw and
 * PNG rects; connect, mouse, key and clipboard back), standing in for the agent's RDP
 * desktop service so that exact bytes can be checked: the proxy's carriage (the
 * person's certificate on the dial, bytes unchanged both ways) and the canvas page
 * (pixels drawn, input sent). The real desktop service with xrdp is driven from the
 * browser in test/web-desktop-xrdp.test.ts. Refusals: a desktop the person's roles do
 * not show, and a websocket without a session.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import type { Browser } from 'playwright-core';
import { AgentTunnel, TunnelRejectedError } from '../protocols/tunnel/index.ts';
import { connectAuth, type AuthConnection } from '../cluster/api/auth-client.ts';
import { startTestProxy, tlsConnect, type TestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { artifactsDir, chromiumMissing, launchChromium, newContext, screenshot } from './fixtures/browser.ts';

const skip = chromiumMissing();
const password = 'a long and happy password';

/** One desktop stream frame: LENGTH (u32 BE) TYPE PAYLOAD. */
function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length + 1, 0);
  header[4] = type;
  return Buffer.concat([header, payload]);
}
const control = (message: object): Buffer => frame(1, Buffer.from(JSON.stringify(message)));

function rect(x: number, y: number, width: number, height: number, encoding: number, data: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUInt16BE(x, 0);
  header.writeUInt16BE(y, 2);
  header.writeUInt16BE(width, 4);
  header.writeUInt16BE(height, 6);
  header[8] = encoding;
  return frame(2, Buffer.concat([header, data]));
}

function solidRgba(width: number, height: number, rgba: [number, number, number, number]): Buffer {
  const pixels = Buffer.alloc(width * height * 4);
  for (let i = 0; i < pixels.length; i += 4) pixels.set(rgba, i);
  return pixels;
}

/** A PNG (8-bit RGBA, no filter) of one colour, as the agent's rect encoder makes them. */
function solidPng(width: number, height: number, rgba: [number, number, number, number]): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), solidRgba(width, 1, rgba)]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** What the stand-in desktop service saw of one session. */
interface SeenSession {
  identity: string;
  messages: Array<{ type: string; [field: string]: unknown }>;
}

/** Serves `desktop:lab-1`: on connect, ready, a red screen (raw) with a blue square (PNG); a key turns it green. */
function serveDesktop(stream: Duplex, seen: SeenSession): void {
  let buffered = Buffer.alloc(0);
  let size = { width: 0, height: 0 };
  stream.on('error', () => {});
  stream.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0);
      const message = JSON.parse(buffered.subarray(5, 4 + length).toString()) as SeenSession['messages'][number];
      buffered = buffered.subarray(4 + length);
      seen.messages.push(message);
      if (message.type === 'connect') {
        size = { width: Number(message.width), height: Number(message.height) };
        stream.write(control({ type: 'ready', desktop: 'lab-1', login: message.login, width: size.width, height: size.height, session_id: 's-1' }));
        stream.write(rect(0, 0, size.width, size.height, 0, solidRgba(size.width, size.height, [200, 0, 0, 255])));
        stream.write(rect(10, 10, 20, 20, 1, solidPng(20, 20, [0, 0, 220, 255])));
        stream.write(control({ type: 'clipboard', text: 'from the desktop' }));
      } else if (message.type === 'key' && message.down) {
        stream.write(rect(0, 0, 5, 5, 0, solidRgba(5, 5, [0, 180, 0, 255])));
      } else if (message.type === 'close') {
        stream.end(control({ type: 'end', reason: 'closed by the viewer' }));
      }
    }
  });
}

describe('web desktop', { skip }, () => {
  let t: TestProxy;
  let tunnel: AgentTunnel | undefined;
  let agentAuth: AuthConnection | undefined;
  let browser: Browser | undefined;
  const sessions: SeenSession[] = [];
  let shots = '';
  const origin = () => `https://127.0.0.1:${t.port}`;

  before(async () => {
    shots = artifactsDir('web-desktop');
    t = await startTestProxy();
    const admin = t.auth.connectAs(['admin']);
    await admin.client.createResources({ text: 'kind: role\nversion: v1\nmetadata: { name: lab-desktops }\nspec:\n  allow:\n    desktop_labels: { env: lab }\n    desktop_logins: [Administrator]\n' });
    await t.auth.server.deps.users.create('dora', { roles: ['lab-desktops'] });
    await t.auth.server.deps.users.setPassword('dora', password);
    const identity = t.hostIdentity(['node'], 'desk-host');
    const socket = await tlsConnect(t.port, identity.ca_pems, { alpn: ['postern-tunnel'], identity });
    tunnel = new AgentTunnel(socket, {
      onStream: ({ service, identity: caller, stream }) => {
        if (service !== 'desktop:lab-1') throw new TunnelRejectedError(404, `no service ${service}`);
        const seen: SeenSession = { identity: caller, messages: [] };
        sessions.push(seen);
        serveDesktop(stream, seen);
      },
    });
    agentAuth = connectAuth(t.auth.server.address, identity);
    await agentAuth.client.heartbeat({
      servedJson: JSON.stringify([
        { kind: 'desktop', name: 'lab-1', labels: { env: 'lab' }, spec: { protocol: 'rdp', addr: '10.0.0.5:3389' } },
        { kind: 'desktop', name: 'prod-1', labels: { env: 'prod' }, spec: { protocol: 'rdp' } },
      ]),
    });
    for (let i = 0; i < 100 && !t.proxy.registry.has('desk-host'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    tunnel?.destroy();
    agentAuth?.close();
    await t?.stop();
  });

  test('a person opens a desktop they may see: the canvas shows its rects, input and clipboard reach the desktop', async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await page.goto(`${origin()}/`);
      await page.getByLabel('User name').fill('dora');
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('tab', { name: 'Desktops' }).click();
      await page.getByRole('row', { name: /lab-1/ }).waitFor();
      assert.equal(await page.getByRole('row', { name: /prod-1/ }).count(), 0, 'auth lists only the desktops her roles show');
      await page.getByLabel('Desktop login').fill('Administrator');
      await page.getByRole('button', { name: 'Connect to desktop lab-1 as Administrator' }).click();
      await page.locator('[data-state="open"]').waitFor();
      const pixel = (x: number, y: number) => page.evaluate(`Array.from(document.querySelector('canvas').getContext('2d').getImageData(${x}, ${y}, 1, 1).data)`) as Promise<number[]>;
      const waitPixel = async (x: number, y: number, want: number[]): Promise<void> => {
        let got: number[] = [];
        for (let i = 0; i < 100; i++) {
          got = await pixel(x, y);
          if (got.join() === want.join()) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(got, want, `pixel ${x},${y}`);
      };
      await waitPixel(100, 100, [200, 0, 0, 255]); // the raw rect
      await waitPixel(15, 15, [0, 0, 220, 255]); // the PNG rect
      assert.equal(await page.getByLabel('Clipboard text').inputValue(), 'from the desktop');
      await screenshot(page, shots, '01-desktop');

      const seen = sessions.at(-1)!;
      const caller = new X509Certificate(Buffer.from(seen.identity, 'base64').toString());
      assert.match(caller.subject, /dora/, 'the dial carries the person\'s certificate');
      const connect = seen.messages[0]!;
      assert.equal(connect.type, 'connect');
      assert.equal(connect.login, 'Administrator');
      assert.ok(Number(connect.width) >= 200 && Number(connect.height) >= 200, JSON.stringify(connect));

      const canvas = page.locator('canvas');
      await canvas.click({ position: { x: 40, y: 30 } });
      await page.keyboard.press('KeyA');
      await waitPixel(2, 2, [0, 180, 0, 255]);
      await page.getByLabel('Clipboard text').fill('to the desktop');
      await page.getByRole('button', { name: 'Send to desktop' }).click();
      for (let i = 0; i < 100 && !seen.messages.some((m) => m.type === 'clipboard'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      const types = seen.messages.map((m) => m.type);
      assert.ok(types.includes('mouse_move') && types.includes('mouse_button'), types.join());
      assert.deepEqual(seen.messages.filter((m) => m.type === 'key').map((m) => [m.scancode, m.down]), [[0x1e, true], [0x1e, false]]);
      assert.deepEqual(seen.messages.find((m) => m.type === 'clipboard'), { type: 'clipboard', text: 'to the desktop' });
      const button = seen.messages.find((m) => m.type === 'mouse_button');
      assert.deepEqual(button, { type: 'mouse_button', button: 0, down: true });

      await page.getByRole('link', { name: 'Back to resources' }).click();
      for (let i = 0; i < 100 && !seen.messages.some((m) => m.type === 'close'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(seen.messages.some((m) => m.type === 'close'), 'leaving the page closes the session');
    } finally {
      await context.close();
    }
  });

  test('refusals: a desktop her roles do not show, and a websocket without a session', async () => {
    const context = await newContext(browser!);
    const page = await context.newPage();
    try {
      await page.goto(`${origin()}/`);
      await page.getByLabel('User name').fill('dora');
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: /Resources in/ }).waitFor();
      const before = sessions.length;
      await page.goto(`${origin()}/clusters/alpha/desktops/prod-1?login=Administrator`);
      await page.locator('[data-state="error"]').filter({ hasText: /no desktop named "prod-1" is visible to you/ }).waitFor();
      assert.equal(sessions.length, before, 'nothing was dialled');
      await screenshot(page, shots, '02-refused');
    } finally {
      await context.close();
    }
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${t.port}/v1/webapi/clusters/alpha/desktops/lab-1/connect`, { rejectUnauthorized: false, headers: { origin: origin() } });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(-1));
    });
    assert.equal(status, 401);
  });
});
