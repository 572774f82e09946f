/**
 * The session logic alone, with an engine that paints on demand (the real engine and
 * xrdp are exercised in test/rdp-engine.test.ts and test/agent-desktop.test.ts):
 * a viewer that stops reading costs a bounded amount of memory, and once it reads again
 * it gets the whole current picture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { duplexPair } from 'node:stream';
import { silentLogger } from '../../../cluster/common/logger.ts';
import type { FrameRect, RdpEngine, RdpSession, RdpSessionEvents } from '../../../protocols/rdp/rdp-engine.ts';
import { serveDesktopSession } from './desktop-session.ts';
import { DesktopViewer } from '../../../test/fixtures/desktop-viewer.ts';

class PaintingSession extends EventEmitter<RdpSessionEvents> implements RdpSession {
  readonly width = 1024;
  readonly height = 768;
  readonly serverCertSha256 = '00'.repeat(32);
  colour = 0;
  closed = false;

  /** Paints the whole screen a new noisy colour (so PNG cannot shrink it much). */
  paint(): void {
    this.colour++;
    const rgba = Buffer.alloc(this.width * this.height * 4);
    for (let i = 0; i < rgba.length; i += 4) {
      rgba[i] = this.colour & 0xff;
      rgba[i + 1] = (i * 7919) & 0xff;
      rgba[i + 2] = (i >> 3) & 0xff;
      rgba[i + 3] = 255;
    }
    this.emit('rects', [{ x: 0, y: 0, width: this.width, height: this.height, rgba }]);
  }

  snapshot(): FrameRect {
    const rgba = Buffer.alloc(this.width * this.height * 4, 0);
    for (let i = 0; i < rgba.length; i += 4) rgba[i] = this.colour & 0xff, rgba[i + 3] = 255;
    return { x: 0, y: 0, width: this.width, height: this.height, rgba };
  }

  mouseMove(): void {}
  mouseButton(): void {}
  wheel(): void {}
  key(): void {}
  async clipboardText(): Promise<void> {}
  resize(): void {}
  close(): void {
    this.closed = true;
  }
}

test('a viewer that stops reading keeps the agent\'s memory bounded and gets the whole picture when it reads again', async () => {
  const rdp = new PaintingSession();
  const engine: RdpEngine = { connect: async () => rdp };
  const [agentEnd, viewerEnd] = duplexPair({ highWaterMark: 64 * 1024 });
  const done = serveDesktopSession(agentEnd, {
    target: { name: 'd', host: '127.0.0.1', port: 1, labels: {} },
    user: { username: 'u', roles: [] },
    engine,
    authorize: async () => ({ allowed: true, reason: 'ok' }),
    credentials: async () => ({ username: 'u', password: 'p' }),
    audit: () => {},
    logger: silentLogger(),
  });
  const viewer = new DesktopViewer(viewerEnd);
  viewer.send({ type: 'connect', login: 'u', width: 1024, height: 768 });
  await viewer.message('ready');

  viewerEnd.pause();
  for (let i = 0; i < 40; i++) {
    rdp.paint();
    await new Promise((resolve) => setImmediate(resolve));
  }
  // 40 noisy full screens are ~120 MB raw; what waits for the viewer is about one.
  const queued = agentEnd.writableLength;
  assert.ok(queued < 8 * 1024 * 1024, `${queued} bytes queued for a paused viewer`);

  const before = viewer.rects;
  viewerEnd.resume();
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(viewer.rects > before, 'the viewer got rects after resuming');
  assert.equal(viewer.picture.pixel(500, 500)[0], rdp.colour & 0xff, 'the picture is the current one');

  viewer.send({ type: 'close' });
  await done;
  assert.ok(rdp.closed);
});
