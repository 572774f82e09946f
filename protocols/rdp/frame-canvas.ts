/**
 * The browser objects ironrdp-wasm draws with, for Node: an HTMLCanvasElement-shaped
 * {@link FrameCanvas} whose 2D context records every `putImageData` as a changed
 * rectangle into a framebuffer, and the globals the wasm's glue checks with
 * `instanceof` (ImageData, CanvasRenderingContext2D, Window). Nothing else of the DOM
 * is needed: the wasm only puts image data and sets the canvas size.
 */
import type { FrameRect } from './rdp-engine.ts';

/** `new ImageData(data, width[, height])` as browsers define it (no copy of `data`). */
export class NodeImageData {
  readonly data: Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
  readonly colorSpace = 'srgb';

  constructor(data: Uint8ClampedArray, width: number, height?: number) {
    if (!(width > 0) || data.length % (4 * width) !== 0) throw new RangeError(`ImageData: ${data.length} bytes is not a whole number of ${width}-pixel rows`);
    this.data = data;
    this.width = width;
    this.height = height ?? data.length / (4 * width);
  }
}

/** The base class the glue's `instanceof CanvasRenderingContext2D` checks. */
export class NodeCanvasRenderingContext2D {}

/** The 2D context: putImageData copies the dirty region into the picture and reports it. */
export class FrameContext2D extends NodeCanvasRenderingContext2D {
  readonly canvas: FrameCanvas;

  constructor(canvas: FrameCanvas) {
    super();
    this.canvas = canvas;
  }

  putImageData(image: NodeImageData, dx: number, dy: number, dirtyX = 0, dirtyY = 0, dirtyWidth = image.width, dirtyHeight = image.height): void {
    this.canvas.draw(image, dx, dy, dirtyX, dirtyY, dirtyWidth, dirtyHeight);
  }
}

type Region = Omit<FrameRect, 'rgba' | 'stride'>;

/**
 * A canvas that keeps the picture and hands out what changed. Changed rects are views
 * of the picture, not copies: the wasm redraws every pixel it changes here anyway, and
 * a copy per rect cost a full frame of bytes (3 MB at 1024x768) and its garbage.
 */
export class FrameCanvas {
  #width: number;
  #height: number;
  #pixels: Buffer;
  #pending: Region[] = [];
  readonly #context = new FrameContext2D(this);
  /** Called after a resize, with the new size. */
  onResize?: (width: number, height: number) => void;
  /** Called (once per macrotask) when rectangles are pending. */
  onRects?: () => void;
  #notifying = false;

  constructor(width: number, height: number) {
    this.#width = width;
    this.#height = height;
    this.#pixels = Buffer.alloc(width * height * 4);
  }

  get width(): number {
    return this.#width;
  }

  set width(value: number) {
    this.#setSize(value, this.#height);
  }

  get height(): number {
    return this.#height;
  }

  set height(value: number) {
    this.#setSize(this.#width, value);
  }

  getContext(kind: string): FrameContext2D | null {
    return kind === '2d' ? this.#context : null;
  }

  /** Takes the rectangles drawn since the last call, as views of the picture (valid until the next draw). */
  takeRects(): FrameRect[] {
    const stride = this.#width * 4;
    const rects = this.#pending.map((r) => ({ ...r, rgba: this.#pixels.subarray((r.y * this.#width + r.x) * 4), stride }));
    this.#pending = [];
    return rects;
  }

  /** The whole picture now (a copy). */
  snapshot(): FrameRect {
    return { x: 0, y: 0, width: this.#width, height: this.#height, rgba: Buffer.from(this.#pixels) };
  }

  /** Copies a region of `image` to (dx+dirtyX, dy+dirtyY), clipped to the canvas. */
  draw(image: NodeImageData, dx: number, dy: number, dirtyX: number, dirtyY: number, dirtyWidth: number, dirtyHeight: number): void {
    const sx0 = Math.max(0, dirtyX, -dx);
    const sy0 = Math.max(0, dirtyY, -dy);
    const sx1 = Math.min(image.width, dirtyX + dirtyWidth, this.#width - dx);
    const sy1 = Math.min(image.height, dirtyY + dirtyHeight, this.#height - dy);
    const width = sx1 - sx0;
    const height = sy1 - sy0;
    if (width <= 0 || height <= 0) return;
    const source = image.data;
    const rowBytes = width * 4;
    if (width === image.width && width === this.#width) {
      // Whole rows on both sides: one copy.
      const from = sy0 * rowBytes;
      this.#pixels.set(source.subarray(from, from + height * rowBytes), (dy + sy0) * rowBytes);
    } else {
      for (let row = 0; row < height; row++) {
        const from = ((sy0 + row) * image.width + sx0) * 4;
        this.#pixels.set(source.subarray(from, from + rowBytes), ((dy + sy0 + row) * this.#width + dx + sx0) * 4);
      }
    }
    this.#pending.push({ x: dx + sx0, y: dy + sy0, width, height });
    if (!this.#notifying) {
      this.#notifying = true;
      setImmediate(() => {
        this.#notifying = false;
        if (this.#pending.length) this.onRects?.();
      });
    }
  }

  #setSize(width: number, height: number): void {
    if (width === this.#width && height === this.#height) return;
    this.#width = width;
    this.#height = height;
    this.#pixels = Buffer.alloc(width * height * 4);
    this.#pending = [];
    this.onResize?.(width, height);
  }
}

let installed = false;

/** Defines the DOM globals the wasm glue refers to, once per process, without replacing any that exist. */
export function installCanvasGlobals(): void {
  if (installed) return;
  installed = true;
  const g = globalThis as Record<string, unknown>;
  g['ImageData'] ??= NodeImageData;
  g['CanvasRenderingContext2D'] ??= NodeCanvasRenderingContext2D;
  // web_sys::window() checks `globalThis instanceof Window`; Node's global stands in for it.
  g['Window'] ??= class Window {
    static [Symbol.hasInstance](value: unknown): boolean {
      return value === globalThis;
    }
  };
}
