/**
 * A viewer's picture of a desktop: applies the stream's rect frames to an RGBA
 * framebuffer. What the web UI's canvas does, for Node (tests, benchmarks, replay).
 */
import type { RectFrame } from './desktop-stream.ts';
import { decodeRectPixels } from './rect-encoder.ts';

export class DesktopPicture {
  width: number;
  height: number;
  rgba: Buffer;

  constructor(width: number, height: number) {
    this.width = width;
    this.height = height;
    this.rgba = Buffer.alloc(width * height * 4);
  }

  /** Starts over at a new size (a `ready` or `resize` message). */
  reset(width: number, height: number): void {
    this.width = width;
    this.height = height;
    this.rgba = Buffer.alloc(width * height * 4);
  }

  /** Draws one rect, clipped to the picture. */
  apply(rect: RectFrame): void {
    const pixels = decodeRectPixels(rect);
    const width = Math.min(rect.width, this.width - rect.x);
    for (let row = 0; row < rect.height && rect.y + row < this.height; row++) {
      if (width <= 0) break;
      pixels.copy(this.rgba, ((rect.y + row) * this.width + rect.x) * 4, row * rect.width * 4, (row * rect.width + width) * 4);
    }
  }

  /** The RGBA of one pixel. */
  pixel(x: number, y: number): [number, number, number, number] {
    const at = (y * this.width + x) * 4;
    return [this.rgba[at]!, this.rgba[at + 1]!, this.rgba[at + 2]!, this.rgba[at + 3]!];
  }
}
