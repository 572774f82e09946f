/**
 * The desktop stream: what travels between a desktop viewer (the web UI over a
 * websocket, a test, a benchmark) and the agent's desktop service, over the tunnel.
 *
 * ```
 * frame   := LENGTH (u32 BE, bytes of TYPE+PAYLOAD) TYPE (u8) PAYLOAD
 * TYPE 1  control: PAYLOAD is one UTF-8 JSON object with a string "type"
 * TYPE 2  rect (agent -> viewer only):
 *         X (u16 BE) Y (u16 BE) WIDTH (u16 BE) HEIGHT (u16 BE) ENCODING (u8) DATA
 *         ENCODING 0 raw RGBA, WIDTH*HEIGHT*4 bytes, rows top down
 *         ENCODING 1 PNG (8-bit RGBA), decodable by browsers (createImageBitmap)
 *
 * viewer -> agent  {"type":"connect","login":"alice","width":1024,"height":768}   first, once
 *                  {"type":"mouse_move","x":10,"y":20}
 *                  {"type":"mouse_button","button":0,"down":true}        0 left 1 middle 2 right 3/4 back/forward
 *                  {"type":"wheel","delta":120,"horizontal":false}       pixels, positive = up/right
 *                  {"type":"key","scancode":28,"down":true}              PS/2 set 1, extended as 0xE0xx
 *                  {"type":"clipboard","text":"..."}
 *                  {"type":"resize","width":1280,"height":800}
 *                  {"type":"close"}
 * agent -> viewer  {"type":"ready","desktop":"xrdp-1","login":"alice","width":1024,"height":768,"session_id":"..."}
 *                  rect frames
 *                  {"type":"resize","width":...,"height":...}           the picture restarts at that size
 *                  {"type":"clipboard","text":"..."}
 *                  {"type":"error","code":"PST_...","message":"..."}    then the stream ends
 *                  {"type":"end","reason":"..."}                        then the stream ends
 * ```
 *
 * Bounds: a viewer's frame is at most {@link MAX_VIEWER_FRAME} bytes, an agent's at most
 * {@link MAX_AGENT_FRAME}; the length is checked before anything is buffered. A frame
 * that breaks these rules (unknown type, bad JSON, a rect from a viewer, a field out of
 * range) is a DesktopStreamError: the agent answers with an error message and ends the
 * session; it never throws past the stream.
 */
import { z } from 'zod';
import { DesktopStreamError } from './errors.ts';

export const FRAME_CONTROL = 1;
export const FRAME_RECT = 2;
export const ENCODING_RAW = 0;
export const ENCODING_PNG = 1;
/** Largest frame a viewer may send (control messages only; clipboard text is the big one). */
export const MAX_VIEWER_FRAME = 256 * 1024;
/** Largest frame the agent sends: one raw rect of 2048x2048 (bigger ones are split). */
export const MAX_AGENT_FRAME = 16 * 1024 * 1024 + 64;
/** Largest desktop accepted, per side. */
export const MAX_DESKTOP_SIDE = 8192;

const side = z.number().int().min(200).max(MAX_DESKTOP_SIDE);
const coordinate = z.number().int().min(0).max(MAX_DESKTOP_SIDE);

/** Every message a viewer may send. */
export const viewerMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('connect'), login: z.string().min(1).max(256), width: side, height: side }),
  z.strictObject({ type: z.literal('mouse_move'), x: coordinate, y: coordinate }),
  z.strictObject({ type: z.literal('mouse_button'), button: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4)]), down: z.boolean() }),
  z.strictObject({ type: z.literal('wheel'), delta: z.number().int().min(-10_000).max(10_000), horizontal: z.boolean().optional() }),
  z.strictObject({ type: z.literal('key'), scancode: z.number().int().refine((code) => (code >= 0x01 && code <= 0x7f) || (code >= 0xe001 && code <= 0xe07f), 'a PS/2 set-1 scancode: 0x01-0x7F, or 0xE001-0xE07F for extended keys'), down: z.boolean() }),
  z.strictObject({ type: z.literal('clipboard'), text: z.string().max(128 * 1024) }),
  z.strictObject({ type: z.literal('resize'), width: side, height: side }),
  z.strictObject({ type: z.literal('close') }),
]);
export type ViewerMessage = z.output<typeof viewerMessageSchema>;

/** Every control message the agent sends. */
export type AgentMessage =
  | { type: 'ready'; desktop: string; login: string; width: number; height: number; session_id: string }
  | { type: 'resize'; width: number; height: number }
  | { type: 'clipboard'; text: string }
  | { type: 'error'; code: string; message: string }
  | { type: 'end'; reason: string }
  /** Only in recordings (desktop-recording.ts): the first record. */
  | { type: 'recording'; version: 1; session_id: string; desktop: string; user: string; login: string; started_at: string; width: number; height: number };

export interface RectFrame {
  x: number;
  y: number;
  width: number;
  height: number;
  encoding: typeof ENCODING_RAW | typeof ENCODING_PNG;
  data: Buffer;
}

export type DecodedFrame = { kind: 'control'; message: Record<string, unknown> & { type: string } } | { kind: 'rect'; rect: RectFrame };

/** Encodes one control message. */
export function encodeControl(message: AgentMessage | ViewerMessage): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  return _frame(FRAME_CONTROL, json);
}

/** Encodes one rect; throws RangeError for a rect out of bounds (the encoder's bug, not the peer's). */
export function encodeRect(rect: RectFrame): Buffer {
  if (rect.encoding === ENCODING_RAW && rect.data.length !== rect.width * rect.height * 4) throw new RangeError(`raw rect ${rect.width}x${rect.height} needs ${rect.width * rect.height * 4} bytes, has ${rect.data.length}`);
  const header = Buffer.alloc(9);
  header.writeUInt16BE(rect.x, 0);
  header.writeUInt16BE(rect.y, 2);
  header.writeUInt16BE(rect.width, 4);
  header.writeUInt16BE(rect.height, 6);
  header.writeUInt8(rect.encoding, 8);
  return _frame(FRAME_RECT, header, rect.data);
}

function _frame(type: number, ...parts: Buffer[]): Buffer {
  const length = 1 + parts.reduce((sum, part) => sum + part.length, 0);
  if (length > MAX_AGENT_FRAME) throw new RangeError(`desktop stream frame of ${length} bytes is over ${MAX_AGENT_FRAME}`);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 0);
  head.writeUInt8(type, 4);
  return Buffer.concat([head, ...parts]);
}

/**
 * Splits a byte stream into frames. `maxFrame` bounds what is buffered; `allowRects`
 * is false on the agent's side (viewers send control messages only).
 */
export class DesktopStreamDecoder {
  readonly #maxFrame: number;
  readonly #allowRects: boolean;
  #buffer = Buffer.alloc(0);

  constructor(options: { maxFrame: number; allowRects: boolean }) {
    this.#maxFrame = options.maxFrame;
    this.#allowRects = options.allowRects;
  }

  /** Bytes held back for an incomplete frame. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Feeds bytes; returns the complete frames; throws DesktopStreamError on a broken one. */
  push(chunk: Uint8Array): DecodedFrame[] {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : Buffer.from(chunk);
    const out: DecodedFrame[] = [];
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUInt32BE(0);
      if (length < 1) throw new DesktopStreamError('desktop stream frame has length 0; a frame holds at least its type byte');
      if (length > this.#maxFrame) throw new DesktopStreamError(`desktop stream frame of ${length} bytes is over the ${this.#maxFrame}-byte limit`);
      if (this.#buffer.length < 4 + length) break;
      const type = this.#buffer[4]!;
      const payload = this.#buffer.subarray(5, 4 + length);
      this.#buffer = this.#buffer.subarray(4 + length);
      out.push(this.#decode(type, payload));
    }
    return out;
  }

  #decode(type: number, payload: Buffer): DecodedFrame {
    if (type === FRAME_CONTROL) {
      let message: unknown;
      try {
        message = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new DesktopStreamError('desktop stream control frame is not valid JSON');
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message) || typeof (message as { type?: unknown }).type !== 'string') {
        throw new DesktopStreamError('desktop stream control frame must be a JSON object with a string "type"');
      }
      return { kind: 'control', message: message as Record<string, unknown> & { type: string } };
    }
    if (type === FRAME_RECT) {
      if (!this.#allowRects) throw new DesktopStreamError('a viewer may not send rect frames; send control messages (type 1) only');
      if (payload.length < 9) throw new DesktopStreamError('desktop stream rect frame is shorter than its 9-byte header');
      const rect: RectFrame = {
        x: payload.readUInt16BE(0), y: payload.readUInt16BE(2), width: payload.readUInt16BE(4), height: payload.readUInt16BE(6),
        encoding: payload[8] === ENCODING_PNG ? ENCODING_PNG : ENCODING_RAW,
        data: Buffer.from(payload.subarray(9)),
      };
      if (payload[8]! > ENCODING_PNG) throw new DesktopStreamError(`desktop stream rect has unknown encoding ${payload[8]}`);
      if (rect.encoding === ENCODING_RAW && rect.data.length !== rect.width * rect.height * 4) throw new DesktopStreamError(`raw rect ${rect.width}x${rect.height} carries ${rect.data.length} bytes, not ${rect.width * rect.height * 4}`);
      return { kind: 'rect', rect };
    }
    throw new DesktopStreamError(`desktop stream frame has unknown type ${type}; known: 1 (control), 2 (rect)`);
  }
}

/** Checks a viewer's control message; throws DesktopStreamError naming the field. */
export function parseViewerMessage(message: unknown): ViewerMessage {
  const parsed = viewerMessageSchema.safeParse(message);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const type = (message as { type?: unknown })?.type;
    throw new DesktopStreamError(`desktop stream message ${JSON.stringify(type)} is malformed: ${issue ? `${issue.path.join('.') || '(message)'}: ${issue.message}` : 'unknown problem'}`);
  }
  return parsed.data;
}
