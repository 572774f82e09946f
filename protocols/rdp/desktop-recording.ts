/**
 * Desktop session recordings: the agent-to-viewer half of the desktop stream with a
 * timestamp per frame, so a player replays exactly what the user saw.
 *
 * ```
 * file    := MAGIC ("PSTDREC1", 8 bytes) record*
 * record  := TIME (u32 BE, ms since the session started) FRAME
 * FRAME   := a desktop stream frame (desktop-stream.ts), byte for byte as sent
 * first record: control {"type":"recording","version":1,"session_id","desktop","user",
 *               "login","started_at" (ISO 8601),"width","height"}
 * ```
 *
 * Rects are the PNG/raw frames the viewer got, so a recording costs what the stream
 * cost. A file cut short (the agent died) is still readable up to its last whole record.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { DesktopStreamDecoder, MAX_AGENT_FRAME, encodeControl, type DecodedFrame } from './desktop-stream.ts';

export const RECORDING_MAGIC = Buffer.from('PSTDREC1', 'latin1');
/** Bytes queued for the disk before the recorder gives up (the disk is too slow or full). */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

export interface RecordingHeader {
  session_id: string;
  desktop: string;
  user: string;
  login: string;
  started_at: string;
  width: number;
  height: number;
}

/** Appends frames to a recording file. */
export class DesktopRecorder {
  readonly path: string;
  readonly #out: WriteStream;
  readonly #started: number;
  #failed: Error | undefined;
  #bytes = 0;

  constructor(file: string, header: RecordingHeader, now = Date.now()) {
    this.path = file;
    this.#started = now;
    this.#out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    this.#out.on('error', (error) => void (this.#failed ??= error));
    this.#out.write(RECORDING_MAGIC);
    this.frame(encodeControl({ type: 'recording', version: 1, ...header }), now);
  }

  /** Why recording stopped, if it did. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Records one frame as sent at `now`. */
  frame(frame: Buffer, now = Date.now()): void {
    if (this.#failed) return;
    if (this.#out.writableLength > MAX_PENDING_BYTES) {
      this.#failed = new Error(`the recording ${this.path} fell more than ${MAX_PENDING_BYTES} bytes behind; the disk is too slow or full`);
      return;
    }
    const time = Buffer.alloc(4);
    time.writeUInt32BE(Math.max(0, Math.min(0xffffffff, now - this.#started)), 0);
    this.#out.write(time);
    this.#out.write(frame);
    this.#bytes += 4 + frame.length;
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#out.closed) return resolve();
      this.#out.end(() => resolve());
      this.#out.once('error', () => resolve());
    });
  }
}

/** Reads a recording: its records in order, up to the last whole one. */
export function readRecording(bytes: Buffer): Array<{ timeMs: number; frame: DecodedFrame }> {
  if (!bytes.subarray(0, 8).equals(RECORDING_MAGIC)) throw new RangeError('not a Postern desktop recording (no PSTDREC1 magic)');
  const out: Array<{ timeMs: number; frame: DecodedFrame }> = [];
  let at = 8;
  while (at + 8 <= bytes.length) {
    const timeMs = bytes.readUInt32BE(at);
    const length = bytes.readUInt32BE(at + 4);
    if (at + 8 + length > bytes.length) break;
    const [frame] = new DesktopStreamDecoder({ maxFrame: MAX_AGENT_FRAME, allowRects: true }).push(bytes.subarray(at + 4, at + 8 + length));
    if (frame) out.push({ timeMs, frame });
    at += 8 + length;
  }
  return out;
}
