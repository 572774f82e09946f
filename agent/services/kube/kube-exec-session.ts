/**
 * One Kubernetes exec or attach seen by the forwarder after the API server's 101: reads
 * the remote-command streams as they pass (never changing a byte) and writes what the
 * pod printed to the session's recording.
 *
 * ```
 * websocket (v1..v5.channel.k8s.io): each binary message is [channel byte, data...]
 *   from the API server: 1 stdout, 2 stderr -> asciicast "o";  3 error: a Status (exit code)
 *   from the client:     0 stdin (not recorded, like SSH);    4 resize {"Width","Height"} -> "r"
 *                        255 (v5) close of a channel
 * SPDY/3.1 (v1..v4.channel.k8s.io): the client opens one SPDY stream per channel, named by
 *   its SYN_STREAM's `streamtype` header: stdout, stderr -> "o"; error: a Status;
 *   resize: JSON sizes, one per line -> "r"; stdin not recorded
 * ```
 *
 * The readers are strict: input that breaks the framing ends the recording there (the
 * prefix stays playable), the caller is told once (log and audit), and the bytes keep
 * flowing to both sides unchanged.
 */
import type { UpgradeTap } from '../app/http-forwarder.ts';
import type { SessionRecording } from '../recordings/session-recorder.ts';
import { WebSocketFrameReader, opcodes } from '../../../protocols/websocket/frame-reader.ts';
import { SpdyFrameReader, type SpdyFrame } from '../../../protocols/spdy/frame-reader.ts';
import { SpdyProtocolError } from '../../../protocols/spdy/errors.ts';

/** The channel protocols recorded (binary channel byte first; the base64 variants are passed but not recorded). */
export const recordedWebSocketProtocols = new Set(['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io']);

/** What the pod's remote-command streams said, in the channel protocol's terms. */
export interface ChannelSink {
  output(data: Buffer): void;
  resize(cols: number, rows: number): void;
  status(statusJson: Buffer): void;
}

/** How a session ended, for its session.end audit event. */
export interface ExecSessionSummary {
  /** Why recording stopped before the end (malformed input), if it did. */
  stopped?: string;
  /** The exit code the API server reported on the error channel (0 for Success). */
  exitCode?: number;
  /** The API server's failure message, when the status was not Success. */
  failure?: string;
  durationMs: number;
}

export interface ExecTapOptions {
  /** Where the output goes; undefined: the session is audited but not recorded. */
  recording: SessionRecording | undefined;
  /** Recording stopped early: `reason` says why (called once). */
  onStopped(reason: string): void;
  /** The connection is over and the recording closed. */
  onEnd(summary: ExecSessionSummary): void;
}

/**
 * The largest message or frame read: kubectl and the kubelet copy in 32 KiB pieces; a
 * peer announcing more only stops the recording (what a reader buffers stays bounded).
 */
const maxReadBytes = 1024 * 1024;

/** Largest sane terminal side; a resize outside 1..limit is clamped as SSH does. */
const maxSide = 10_000;
const clampSide = (n: unknown, fallback: number): number => (typeof n === 'number' && Number.isInteger(n) && n >= 1 ? Math.min(n, maxSide) : fallback);

/** Reads the error channel's Status: Success is exit 0; NonZeroExitCode carries the code in details.causes. */
export function exitFromStatus(json: Buffer): { exitCode?: number; failure?: string } {
  let status: { status?: unknown; message?: unknown; details?: { causes?: Array<{ reason?: unknown; message?: unknown }> } };
  try {
    status = JSON.parse(json.toString('utf8')) as typeof status;
  } catch {
    return { failure: 'an error channel message that is not JSON' };
  }
  if (status.status === 'Success') return { exitCode: 0 };
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = Number(cause?.message);
  return { ...(Number.isInteger(code) ? { exitCode: code } : {}), failure: String(status.message ?? 'Failure').slice(0, 1024) };
}

/** The shared part of every exec tap: recording state, the stop-once rule, the summary. */
export class ExecSession implements ChannelSink {
  readonly #options: ExecTapOptions;
  readonly #started = Date.now();
  #recording: SessionRecording | undefined;
  #stopped: string | undefined;
  #exit: { exitCode?: number; failure?: string } = {};

  constructor(options: ExecTapOptions) {
    this.#options = options;
    this.#recording = options.recording;
  }

  get recording(): boolean {
    return this.#recording !== undefined;
  }

  output(data: Buffer): void {
    if (data.length > 0) this.#recording?.output(data);
  }

  resize(cols: number, rows: number): void {
    this.#recording?.resize(cols, rows);
  }

  status(json: Buffer): void {
    this.#exit = exitFromStatus(json);
  }

  /** Malformed input: recording ends here, told once. */
  stop(reason: string): void {
    if (this.#stopped !== undefined) return;
    this.#stopped = reason;
    const recording = this.#recording;
    this.#recording = undefined;
    void recording?.close();
    this.#options.onStopped(reason);
  }

  async end(): Promise<void> {
    const recording = this.#recording;
    this.#recording = undefined;
    await recording?.close();
    this.#options.onEnd({ ...(this.#stopped !== undefined ? { stopped: this.#stopped } : {}), ...this.#exit, durationMs: Date.now() - this.#started });
  }
}

/** The tap for a websocket channel protocol (one of recordedWebSocketProtocols). */
export function webSocketExecTap(session: ExecSession): UpgradeTap {
  const fromServer = new WebSocketFrameReader({ masked: false, maxMessageBytes: maxReadBytes });
  const fromClient = new WebSocketFrameReader({ masked: true, maxMessageBytes: maxReadBytes });
  // Read even when not recording: the exit code goes into the session.end audit event.
  let reading = true;
  const read = (reader: WebSocketFrameReader, chunk: Buffer, side: string, onMessage: (channel: number, data: Buffer) => void) => {
    if (!reading) return;
    try {
      for (const message of reader.push(chunk)) {
        if (message.opcode !== opcodes.binary || message.payload.length === 0) continue;
        onMessage(message.payload[0]!, message.payload.subarray(1));
      }
    } catch (error) {
      reading = false;
      session.stop(`the ${side}'s websocket stream is malformed (${(error as Error).message}); the rest of the session is passed on but not read or recorded`);
    }
  };
  return {
    fromUpstream: (chunk) => read(fromServer, chunk, 'API server', (channel, data) => {
      if (channel === 1 || channel === 2) session.output(data);
      else if (channel === 3) session.status(data);
    }),
    fromClient: (chunk) => read(fromClient, chunk, 'client', (channel, data) => {
      if (channel === 4) resizeFrom(session, data);
    }),
    end: () => void session.end(),
  };
}

/** A resize message: `{"Width":W,"Height":H}` (terminal columns and rows). */
export function resizeFrom(sink: ChannelSink, json: Buffer): void {
  try {
    const size = JSON.parse(json.toString('utf8')) as { Width?: unknown; Height?: unknown };
    sink.resize(clampSide(size.Width, 80), clampSide(size.Height, 24));
  } catch {
    // Not a size: the API server ignores it too.
  }
}

/** The error stream's Status is small; more is not a Status. */
const maxStatusBytes = 64 * 1024;

/** The tap for a SPDY/3.1 remote-command connection. */
export function spdyExecTap(session: ExecSession): UpgradeTap {
  const fromServer = new SpdyFrameReader(maxReadBytes);
  const fromClient = new SpdyFrameReader(maxReadBytes);
  const types = new Map<number, string>();
  let status: Buffer[] = [];
  let statusBytes = 0;
  let resize = '';
  let reading = true;
  const finishStatus = () => {
    if (statusBytes > 0) session.status(Buffer.concat(status));
    status = [];
    statusBytes = 0;
  };
  const read = (reader: SpdyFrameReader, chunk: Buffer, side: string, onFrame: (frame: SpdyFrame) => void) => {
    if (!reading) return;
    try {
      for (const frame of reader.push(chunk)) onFrame(frame);
    } catch (error) {
      reading = false;
      session.stop(`the ${side}'s SPDY stream is malformed (${(error as Error).message}); the rest of the session is passed on but not read or recorded`);
    }
  };
  return {
    fromClient: (chunk) => read(fromClient, chunk, 'client', (frame) => {
      if (frame.kind === 'syn_stream') types.set(frame.streamId, frame.headers.streamtype ?? '');
      else if (frame.kind === 'data' && !types.has(frame.streamId)) throw new SpdyProtocolError(`data on stream ${frame.streamId}, which the client never opened`);
      else if (frame.kind === 'data' && types.get(frame.streamId) === 'resize') {
        resize += frame.data.toString('utf8');
        if (resize.length > maxStatusBytes) resize = '';
        let newline: number;
        while ((newline = resize.indexOf('\n')) >= 0) {
          resizeFrom(session, Buffer.from(resize.slice(0, newline)));
          resize = resize.slice(newline + 1);
        }
      }
    }),
    fromUpstream: (chunk) => read(fromServer, chunk, 'API server', (frame) => {
      if (frame.kind !== 'data') return;
      if (!types.has(frame.streamId)) throw new SpdyProtocolError(`data on stream ${frame.streamId}, which the client never opened`);
      const type = types.get(frame.streamId);
      if (type === 'stdout' || type === 'stderr') session.output(frame.data);
      else if (type === 'error') {
        if (statusBytes + frame.data.length <= maxStatusBytes) {
          status.push(frame.data);
          statusBytes += frame.data.length;
        }
        if (frame.fin) finishStatus();
      }
    }),
    end: () => {
      finishStatus();
      void session.end();
    },
  };
}
