/**
 * Chooses how a changed rectangle travels: small ones raw (RGBA), larger ones as PNG
 * (8-bit RGBA, no filtering, zlib level 1 — fast, and desktop pictures with large
 * flat areas shrink 50-1000x). Browsers decode both without a library.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { ENCODING_PNG, ENCODING_RAW, type RectFrame } from './desktop-stream.ts';
import type { FrameRect } from './rdp-engine.ts';

/** Rects of at most this many pixels go raw: PNG's overhead (~60 bytes + deflate) is not worth it. */
export const RAW_MAX_PIXELS = 1024;
/** Rects taller than this are cut into bands so every frame stays under the stream's limit. */
export const MAX_BAND_PIXELS = 2048 * 2048;

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The stream rects for one changed rectangle (one, or several bands of a huge one). */
export function encodeRects(rect: FrameRect): RectFrame[] {
  const stride = rect.stride ?? rect.width * 4;
  const bandRows = Math.max(1, Math.floor(MAX_BAND_PIXELS / Math.max(1, rect.width)));
  const out: RectFrame[] = [];
  for (let top = 0; top < rect.height; top += bandRows) {
    const rows = Math.min(bandRows, rect.height - top);
    const rgba = rect.rgba.subarray(top * stride);
    const pixels = rect.width * rows;
    out.push(pixels <= RAW_MAX_PIXELS
      ? { x: rect.x, y: rect.y + top, width: rect.width, height: rows, encoding: ENCODING_RAW, data: _packed(rect.width, rows, rgba, stride) }
      : { x: rect.x, y: rect.y + top, width: rect.width, height: rows, encoding: ENCODING_PNG, data: encodePng(rect.width, rows, rgba, stride) });
  }
  return out;
}

/** The filtered rows of the last PNG, kept for the next (one frame's worth at most): a new 3 MB buffer a frame was most of the agent's garbage. */
let scratch = Buffer.alloc(0);
const MAX_SCRATCH_BYTES = 8 * 1024 * 1024;

/** A PNG (RGBA, 8 bits per channel) of `rgba`, rows top down, `stride` bytes apart (default packed). */
export function encodePng(width: number, height: number, rgba: Buffer, stride = width * 4): Buffer {
  const rowBytes = width * 4;
  const size = (rowBytes + 1) * height;
  const filtered = size <= scratch.length ? scratch : Buffer.allocUnsafe(size);
  if (filtered !== scratch && size <= MAX_SCRATCH_BYTES) scratch = filtered;
  for (let row = 0; row < height; row++) {
    const at = row * (rowBytes + 1);
    filtered[at] = 0; // filter type None
    rgba.copy(filtered, at + 1, row * stride, row * stride + rowBytes);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([SIGNATURE, ..._chunk('IHDR', header), ..._chunk('IDAT', deflateSync(filtered.subarray(0, size), { level: 1 })), ..._chunk('IEND', Buffer.alloc(0))]);
}

/** A PNG chunk as [length+type, data, crc], so the caller's one concat copies the data once. */
function _chunk(type: string, data: Buffer): Buffer[] {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0, 0);
  return [head, data, crc];
}

/** Rows `stride` apart, packed into a new buffer. */
function _packed(width: number, height: number, rgba: Buffer, stride: number): Buffer {
  const rowBytes = width * 4;
  const out = Buffer.allocUnsafe(rowBytes * height);
  for (let row = 0; row < height; row++) rgba.copy(out, row * rowBytes, row * stride, row * stride + rowBytes);
  return out;
}

/** The RGBA pixels of a stream rect: raw as is, PNG as written by {@link encodePng} (filter 0 only). */
export function decodeRectPixels(rect: RectFrame): Buffer {
  if (rect.encoding === ENCODING_RAW) return rect.data;
  const png = rect.data;
  if (png.length < 8 || !png.subarray(0, 8).equals(SIGNATURE)) throw new RangeError('rect data is not a PNG');
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  for (let at = 8; at + 8 <= png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[9] !== 6) throw new RangeError('only 8-bit RGBA PNGs are decoded here');
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  const filtered = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  const out = Buffer.alloc(stride * height);
  for (let row = 0; row < height; row++) {
    if (filtered[row * (stride + 1)] !== 0) throw new RangeError('only unfiltered PNG rows are decoded here');
    filtered.copy(out, row * stride, row * (stride + 1) + 1, (row + 1) * (stride + 1));
  }
  return out;
}
