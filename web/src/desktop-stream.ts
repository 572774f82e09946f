/**
 * The desktop stream in the browser (docs/desktops.md "The desktop stream"):
 * `LENGTH (u32 BE) TYPE (u8) PAYLOAD`; type 1 a JSON control message, type 2 a rect
 * `X Y WIDTH HEIGHT (u16 BE) ENCODING (u8: 0 raw RGBA, 1 PNG) DATA`. Websocket
 * messages may split or join frames, so the decoder reassembles them.
 */

export interface Control {
  type: string;
  [field: string]: unknown;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
  encoding: number;
  data: Uint8Array<ArrayBuffer>;
}

export type Frame = { kind: 'control'; message: Control } | { kind: 'rect'; rect: Rect };

/** Largest frame accepted from the agent (one raw 2048x2048 rect and its header). */
const maxFrame = 16 * 1024 * 1024 + 64;

/** Turns websocket messages into frames; throws on a frame that breaks the format. */
export class DesktopStreamDecoder {
  #buffer = new Uint8Array(0);

  push(chunk: Uint8Array): Frame[] {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const view = new DataView(joined.buffer);
    const frames: Frame[] = [];
    let at = 0;
    while (joined.length - at >= 4) {
      const length = view.getUint32(at);
      if (length < 1 || length > maxFrame) throw new Error(`desktop stream: a frame of ${length} bytes is out of bounds`);
      if (joined.length - at - 4 < length) break;
      const type = joined[at + 4];
      const payload = joined.subarray(at + 5, at + 4 + length);
      if (type === 1) frames.push({ kind: 'control', message: JSON.parse(new TextDecoder().decode(payload)) as Control });
      else if (type === 2) {
        if (payload.length < 9) throw new Error('desktop stream: a rect frame shorter than its header');
        const p = new DataView(payload.buffer, payload.byteOffset, payload.length);
        frames.push({ kind: 'rect', rect: { x: p.getUint16(0), y: p.getUint16(2), width: p.getUint16(4), height: p.getUint16(6), encoding: payload[8]!, data: payload.slice(9) } });
      } else throw new Error(`desktop stream: unknown frame type ${String(type)}`);
      at += 4 + length;
    }
    this.#buffer = joined.slice(at);
    return frames;
  }
}

/** Draws one rect on the canvas (PNG ones decoded by the browser). */
export async function drawRect(context: CanvasRenderingContext2D, rect: Rect): Promise<void> {
  if (rect.encoding === 0) {
    if (rect.data.length !== rect.width * rect.height * 4) return;
    context.putImageData(new ImageData(new Uint8ClampedArray(rect.data.buffer, rect.data.byteOffset, rect.data.length), rect.width, rect.height), rect.x, rect.y);
  } else if (rect.encoding === 1) {
    const bitmap = await createImageBitmap(new Blob([rect.data], { type: 'image/png' }));
    context.drawImage(bitmap, rect.x, rect.y);
    bitmap.close();
  }
}

/** A desktop recording (docs/desktops.md "Recordings"): `PSTDREC1`, then TIME (u32 BE, ms) and one frame, repeated. */
export function readDesktopRecording(bytes: Uint8Array): Array<{ timeMs: number; frame: Frame }> {
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== 'PSTDREC1') throw new Error('not a Postern desktop recording (no PSTDREC1 magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Array<{ timeMs: number; frame: Frame }> = [];
  let at = 8;
  while (at + 8 <= bytes.length) {
    const timeMs = view.getUint32(at);
    const length = view.getUint32(at + 4);
    if (at + 8 + length > bytes.length) break; // cut short: play up to the last whole record
    const [frame] = new DesktopStreamDecoder().push(bytes.subarray(at + 4, at + 8 + length));
    if (frame) out.push({ timeMs, frame });
    at += 8 + length;
  }
  return out;
}

/** One control frame. */
export function encodeControl(message: Control): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(JSON.stringify(message));
  const frame = new Uint8Array(5 + json.length);
  new DataView(frame.buffer).setUint32(0, json.length + 1);
  frame[4] = 1;
  frame.set(json, 5);
  return frame;
}

/** KeyboardEvent.code to PS/2 set-1 scancodes (extended keys as 0xE0xx). */
export const scancodes: Record<string, number> = {
  Escape: 0x01, Digit1: 0x02, Digit2: 0x03, Digit3: 0x04, Digit4: 0x05, Digit5: 0x06, Digit6: 0x07, Digit7: 0x08, Digit8: 0x09, Digit9: 0x0a, Digit0: 0x0b,
  Minus: 0x0c, Equal: 0x0d, Backspace: 0x0e, Tab: 0x0f,
  KeyQ: 0x10, KeyW: 0x11, KeyE: 0x12, KeyR: 0x13, KeyT: 0x14, KeyY: 0x15, KeyU: 0x16, KeyI: 0x17, KeyO: 0x18, KeyP: 0x19, BracketLeft: 0x1a, BracketRight: 0x1b, Enter: 0x1c,
  ControlLeft: 0x1d, KeyA: 0x1e, KeyS: 0x1f, KeyD: 0x20, KeyF: 0x21, KeyG: 0x22, KeyH: 0x23, KeyJ: 0x24, KeyK: 0x25, KeyL: 0x26, Semicolon: 0x27, Quote: 0x28, Backquote: 0x29,
  ShiftLeft: 0x2a, Backslash: 0x2b, KeyZ: 0x2c, KeyX: 0x2d, KeyC: 0x2e, KeyV: 0x2f, KeyB: 0x30, KeyN: 0x31, KeyM: 0x32, Comma: 0x33, Period: 0x34, Slash: 0x35, ShiftRight: 0x36,
  NumpadMultiply: 0x37, AltLeft: 0x38, Space: 0x39, CapsLock: 0x3a,
  F1: 0x3b, F2: 0x3c, F3: 0x3d, F4: 0x3e, F5: 0x3f, F6: 0x40, F7: 0x41, F8: 0x42, F9: 0x43, F10: 0x44, F11: 0x57, F12: 0x58,
  NumpadEnter: 0xe01c, ControlRight: 0xe01d, NumpadDivide: 0xe035, AltRight: 0xe038,
  Home: 0xe047, ArrowUp: 0xe048, PageUp: 0xe049, ArrowLeft: 0xe04b, ArrowRight: 0xe04d, End: 0xe04f, ArrowDown: 0xe050, PageDown: 0xe051, Insert: 0xe052, Delete: 0xe053,
  MetaLeft: 0xe05b, MetaRight: 0xe05c, ContextMenu: 0xe05d,
};
