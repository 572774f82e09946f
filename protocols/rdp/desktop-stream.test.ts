import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  DesktopStreamDecoder, ENCODING_PNG, ENCODING_RAW, MAX_AGENT_FRAME, MAX_VIEWER_FRAME, encodeControl, encodeRect, parseViewerMessage,
} from './desktop-stream.ts';
import { DesktopStreamError } from './errors.ts';
import { decodeRectPixels, encodeRects } from './rect-encoder.ts';

describe('desktop stream frames', () => {
  const stream = Buffer.concat([
    encodeControl({ type: 'ready', desktop: 'd', login: 'l', width: 640, height: 480, session_id: 's' }),
    encodeRect({ x: 1, y: 2, width: 2, height: 1, encoding: ENCODING_RAW, data: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) }),
    encodeControl({ type: 'end', reason: 'bye' }),
  ]);

  it('decodes the same frames whatever the chunking (split at every byte)', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new DesktopStreamDecoder({ maxFrame: MAX_AGENT_FRAME, allowRects: true });
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      assert.deepEqual(frames.map((f) => (f.kind === 'control' ? f.message.type : `${f.rect.x},${f.rect.y},${f.rect.width}x${f.rect.height}`)), ['ready', '1,2,2x1', 'end'], `cut at ${cut}`);
      assert.equal(decoder.buffered, 0);
    }
  });

  it('refuses an oversized length before buffering it', () => {
    const decoder = new DesktopStreamDecoder({ maxFrame: MAX_VIEWER_FRAME, allowRects: false });
    assert.throws(() => decoder.push(Buffer.from([0x00, 0x10, 0x00, 0x00])), (e: unknown) => e instanceof DesktopStreamError && /over the 262144-byte limit/.test(e.message));
  });

  it('refuses rects from a viewer, unknown types, empty frames and bad JSON', () => {
    const viewer = () => new DesktopStreamDecoder({ maxFrame: MAX_VIEWER_FRAME, allowRects: false });
    assert.throws(() => viewer().push(encodeRect({ x: 0, y: 0, width: 1, height: 1, encoding: ENCODING_RAW, data: Buffer.alloc(4) })), /may not send rect frames/);
    assert.throws(() => viewer().push(Buffer.from([0, 0, 0, 1, 7])), /unknown type 7/);
    assert.throws(() => viewer().push(Buffer.from([0, 0, 0, 0])), /length 0/);
    assert.throws(() => viewer().push(Buffer.from([0, 0, 0, 3, 1, 0x5b, 0x5d])), /JSON object with a string "type"/);
  });

  it('never throws anything but DesktopStreamError on random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const decoder = new DesktopStreamDecoder({ maxFrame: MAX_VIEWER_FRAME, allowRects: false });
      try {
        for (const frame of decoder.push(randomBytes(1 + (i % 64)))) if (frame.kind === 'control') parseViewerMessage(frame.message);
      } catch (error) {
        assert.ok(error instanceof DesktopStreamError, String(error));
      }
    }
  });

  it('checks viewer messages field by field', () => {
    assert.deepEqual(parseViewerMessage({ type: 'key', scancode: 0xe048, down: true }), { type: 'key', scancode: 0xe048, down: true });
    assert.throws(() => parseViewerMessage({ type: 'key', scancode: 0x1ff, down: true }), /"key" is malformed: scancode: a PS\/2 set-1 scancode/);
    assert.throws(() => parseViewerMessage({ type: 'mouse_move', x: -1, y: 0 }), /"mouse_move" is malformed: x/);
    assert.throws(() => parseViewerMessage({ type: 'connect', login: 'a', width: 99999, height: 600 }), /width/);
    assert.throws(() => parseViewerMessage({ type: 'launch_missiles' }), /"launch_missiles" is malformed/);
  });
});

describe('rect encoding', () => {
  it('sends small rects raw and large ones as PNG that decodes to the same pixels', () => {
    const small = { x: 0, y: 0, width: 4, height: 4, rgba: randomBytes(64) };
    const [raw] = encodeRects(small);
    assert.equal(raw?.encoding, ENCODING_RAW);
    const big = { x: 10, y: 20, width: 300, height: 200, rgba: Buffer.alloc(300 * 200 * 4, 0x7f) };
    big.rgba.set(randomBytes(4000), 1000);
    const [png] = encodeRects(big);
    assert.equal(png?.encoding, ENCODING_PNG);
    assert.ok(png!.data.length < big.rgba.length / 10, `PNG ${png!.data.length} bytes`);
    assert.ok(decodeRectPixels(png!).equals(big.rgba));
  });

  it('cuts a rect too big for one frame into bands', () => {
    const huge = { x: 0, y: 0, width: 4096, height: 2048, rgba: Buffer.alloc(4096 * 2048 * 4) };
    const bands = encodeRects(huge);
    assert.equal(bands.length, 2);
    assert.deepEqual(bands.map((b) => [b.y, b.height]), [[0, 1024], [1024, 1024]]);
  });
});
