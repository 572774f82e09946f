/**
 * The ironrdp-wasm engine against a real xrdp desktop (test/fixtures/xrdp.ts): the
 * first picture arrives within 5 s, a colour set with xsetroot by the session user
 * shows up in the decoded pixels, and keys typed into the session's xterm run a
 * command that creates a marker file. Clipboard text crosses both ways (xclip in the
 * session, xrdp-chansrv). A host that requires NLA (FreeRDP's shadow server)
 * is reached with CredSSP. Refusals: a port with nothing listening, a wrong NLA password and a
 * certificate that does not match the pin fail with reasons that say so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { IronRdpEngine } from '../protocols/rdp/ironrdp-engine.ts';
import type { FrameRect, RdpSession } from '../protocols/rdp/rdp-engine.ts';
import { typeText } from '../protocols/rdp/scancodes.ts';
import { startXrdp, xrdpUnavailable, type XrdpDesktop } from './fixtures/xrdp.ts';
import { freePort } from './fixtures/processes.ts';
import { shadowUnavailable, startNlaDesktop } from './fixtures/rdp-shadow.ts';

const skip = xrdpUnavailable();
let desktop: XrdpDesktop;
const engine = new IronRdpEngine();

before(async () => {
  if (!skip) desktop = await startXrdp({ background: '#204060' });
});
after(async () => {
  await desktop?.stop();
});

/** The RGBA of one pixel of the session's current picture. */
export function pixelAt(frame: FrameRect, x: number, y: number): number[] {
  const at = (y * frame.width + x) * 4;
  return [...frame.rgba.subarray(at, at + 4)];
}

/** Whether a pixel is within 4 of an RGB colour per channel (RemoteFX is lossy: #ff8000 decodes as 253,128,0). */
export function near(pixel: number[], rgb: [number, number, number]): boolean {
  return pixel[3] === 255 && rgb.every((value, i) => Math.abs(value - pixel[i]!) <= 4);
}

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('ironrdp-wasm renders an xrdp desktop, shows xsetroot colours and types into an xterm', { skip, timeout: 60_000 }, async () => {
  const started = Date.now();
  const session: RdpSession = await engine.connect({
    host: desktop.host, port: desktop.port, credentials: { username: desktop.username, password: desktop.password }, width: 1024, height: 768,
  });
  try {
    let firstFrameMs: number | undefined;
    session.on('rects', () => void (firstFrameMs ??= Date.now() - started));
    let closed: Error | undefined | null = null;
    session.on('close', (error) => void (closed = error));
    await until('the first picture', () => firstFrameMs, 5_000);
    assert.ok(firstFrameMs! <= 5_000, `first frame after ${firstFrameMs} ms`);
    assert.match(session.serverCertSha256, /^[0-9a-f]{64}$/);

    // The session script painted the root window #204060; far from the xterm at the top left.
    await until('the session background', () => near(pixelAt(session.snapshot(), 900, 700), [0x20, 0x40, 0x60]) || undefined);
    const set = await desktop.runInSession('xsetroot', ['-solid', '#ff8000']);
    assert.equal(set.code, 0, set.stderr);
    await until('the new root colour in the decoded picture', () => near(pixelAt(session.snapshot(), 900, 700), [0xff, 0x80, 0x00]) || undefined)
      .catch((error: Error) => { throw new Error(`${error.message}; pixel is ${pixelAt(session.snapshot(), 900, 700).join()}`); });

    // No window manager: focus follows the pointer into the xterm.
    session.mouseMove(60, 40);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const [scancode, down] of typeText('touch marker-typed\n')) session.key(scancode, down);
    const marker = path.join(desktop.runDir, 'marker-typed');
    await until('the marker file typed into the xterm', () => existsSync(marker) || undefined)
      .catch((error: Error) => { throw new Error(`${error.message} (${marker})`); });
    assert.equal(closed, null, 'the session is still open');
  } finally {
    session.close();
  }
});

const clipSkip = skip ?? (existsSync('/usr/bin/xclip') ? undefined : 'needs xclip (Debian package xclip; installers/dev-deps.sh)');

test('clipboard text crosses both ways through the cliprdr channel (xrdp-chansrv, xclip in the session)', { skip: clipSkip, timeout: 60_000 }, async () => {
  const session = await engine.connect({
    host: desktop.host, port: desktop.port, credentials: { username: desktop.username, password: desktop.password }, width: 1024, height: 768,
  });
  try {
    const received: string[] = [];
    session.on('clipboard', (text) => void received.push(text));
    await desktop.sessionEnv();
    // Remote to local: a copy in the session (xclip owns CLIPBOARD) reaches the engine as text.
    const remote = 'copied in the session: héllo ✓ 42';
    // The copy may come before the channel has started: copy again, but slower than a round trip
    // (each xclip takes the selection from the one before, which would fail a fetch in flight).
    for (let attempt = 0; attempt < 4 && !received.includes(remote); attempt++) {
      const set = await desktop.runInSession('sh', ['-c', `printf '%s' '${remote}' | xclip -selection clipboard -i >/dev/null 2>&1 &`]);
      assert.equal(set.code, 0, set.stderr);
      await until('the copied text', () => received.includes(remote) || undefined, 5_000).catch(() => undefined);
    }
    assert.ok(received.includes(remote), `the session's copy never arrived; got ${JSON.stringify(received)}\n${desktop.logs().slice(-1500)}`);
    // Local to remote: text offered by the viewer becomes the session's CLIPBOARD.
    const local = 'pasted from the browser: ünïcode ✓ 7';
    await session.clipboardText(local);
    let pasted = '';
    await until('the text in the session clipboard', async () => {
      pasted = (await desktop.runInSession('timeout', ['3', 'xclip', '-selection', 'clipboard', '-o'])).stdout;
      return pasted === local || undefined;
    }).catch((error: Error) => { throw new Error(`${error.message}; xclip -o gave ${JSON.stringify(pasted)}`); });
  } finally {
    session.close();
  }
});

test('connecting to a port nothing listens on fails with the address and the cause', { skip, timeout: 30_000 }, async () => {
  const port = await freePort();
  await assert.rejects(
    engine.connect({ host: '127.0.0.1', port, credentials: { username: 'x', password: 'y' }, width: 800, height: 600, timeoutMs: 5_000 }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'PST_RDP_CONNECT');
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*(ECONNREFUSED|refused)`));
      return true;
    },
  );
});

test('a server certificate that does not match the pin is refused', { skip, timeout: 30_000 }, async () => {
  await assert.rejects(
    engine.connect({
      host: desktop.host, port: desktop.port, credentials: { username: desktop.username, password: desktop.password },
      width: 800, height: 600, serverCertSha256: '00'.repeat(32), timeoutMs: 10_000,
    }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'PST_RDP_CONNECT');
      assert.match(error.message, /presented a certificate with sha256 [0-9a-f]{64}, not the pinned 0{64}/);
      return true;
    },
  );
});

const nlaSkip = shadowUnavailable();

test('a host that requires NLA (freerdp-shadow-cli /sec:nla): the engine authenticates with CredSSP and renders; a wrong password is refused', { skip: nlaSkip, timeout: 90_000 }, async () => {
  const host = await startNlaDesktop();
  try {
    const session = await engine.connect({ host: host.host, port: host.port, credentials: { username: host.username, password: host.password }, width: 1024, height: 768 });
    try {
      let rects = 0;
      session.on('rects', () => void rects++);
      await until('the first picture over NLA', () => rects > 0 || undefined, 15_000);
      // The shadow server sends what changes: paint the screen and look for it.
      await host.setColour('#a06030');
      await until('the colour over NLA', () => near(pixelAt(session.snapshot(), 900, 700), [0xa0, 0x60, 0x30]) || undefined)
        .catch((error: Error) => { throw new Error(`${error.message}; pixel ${pixelAt(session.snapshot(), 900, 700).join()}`); });
    } finally {
      session.close();
    }
    await assert.rejects(
      engine.connect({ host: host.host, port: host.port, credentials: { username: host.username, password: 'wrong' }, width: 800, height: 600, timeoutMs: 30_000 }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'PST_RDP_CONNECT');
        assert.match(error.message, /NLA \(CredSSP\) authentication failed; check the user name, domain and password/);
        return true;
      },
    );
  } finally {
    await host.stop();
  }
});
