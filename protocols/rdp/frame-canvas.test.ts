import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameCanvas, NodeImageData } from './frame-canvas.ts';
import { decodeRectPixels, encodeRects } from './rect-encoder.ts';

/** The packed RGBA of a region of a packed picture. */
function region(picture: Buffer, pictureWidth: number, x: number, y: number, width: number, height: number): Buffer {
  const rows: Buffer[] = [];
  for (let row = 0; row < height; row++) rows.push(picture.subarray(((y + row) * pictureWidth + x) * 4, ((y + row) * pictureWidth + x + width) * 4));
  return Buffer.concat(rows);
}

function drawn(canvas: FrameCanvas): Promise<void> {
  return new Promise((resolve) => (canvas.onRects = resolve));
}

describe('FrameCanvas', () => {
  it('hands out changed rects as views of the picture that encode to the drawn pixels', async () => {
    const canvas = new FrameCanvas(320, 200);
    const image = new NodeImageData(new Uint8ClampedArray(randomBytes(100 * 60 * 4)), 100, 60);
    const context = canvas.getContext('2d')!;
    const done = drawn(canvas);
    context.putImageData(image, 50, 40, 10, 5, 80, 50); // dirty region 80x50 of the image at (60, 45)
    context.putImageData(image, 300, 190, 0, 0, 8, 8); // a small one: goes raw
    await done;
    const rects = canvas.takeRects();
    assert.deepEqual(rects.map((r) => [r.x, r.y, r.width, r.height, r.stride]), [[60, 45, 80, 50, 1280], [300, 190, 8, 8, 1280]]);
    const source = Buffer.from(image.data.buffer);
    const [png] = encodeRects(rects[0]!);
    assert.equal(png?.encoding, 1);
    assert.ok(decodeRectPixels(png!).equals(region(source, 100, 10, 5, 80, 50)), 'PNG of a strided view');
    const [raw] = encodeRects(rects[1]!);
    assert.equal(raw?.encoding, 0);
    assert.ok(decodeRectPixels(raw!).equals(region(source, 100, 0, 0, 8, 8)), 'raw rect packed from a strided view');
    assert.ok(region(canvas.snapshot().rgba, 320, 60, 45, 80, 50).equals(region(source, 100, 10, 5, 80, 50)), 'the picture holds the pixels');
    assert.deepEqual(canvas.takeRects(), [], 'taken once');
  });

  it('copies whole-width rows in one piece and clips what falls outside', async () => {
    const canvas = new FrameCanvas(64, 32);
    const full = new NodeImageData(new Uint8ClampedArray(randomBytes(64 * 32 * 4)), 64, 32);
    let done = drawn(canvas);
    canvas.getContext('2d')!.putImageData(full, 0, 0);
    await done;
    assert.ok(canvas.snapshot().rgba.equals(Buffer.from(full.data.buffer)));
    assert.equal(canvas.takeRects().length, 1);
    done = drawn(canvas);
    canvas.getContext('2d')!.putImageData(full, 40, 20);
    await done;
    const [rect] = canvas.takeRects();
    assert.deepEqual([rect!.x, rect!.y, rect!.width, rect!.height], [40, 20, 24, 12]);
  });
});
