/**
 * What a desktop service needs from an RDP client, and nothing about how it is done:
 * connect to a host with credentials and a size, then pictures come out as changed
 * rectangles and input goes in. ironrdp-engine.ts implements it with ironrdp-wasm; a
 * different engine (a native client, another wasm build) only has to honour this.
 */
import type { EventEmitter } from 'node:events';

export interface RdpCredentials {
  username: string;
  password: string;
  domain?: string;
}

export interface RdpConnectOptions {
  host: string;
  port: number;
  credentials: RdpCredentials;
  width: number;
  height: number;
  /** Accept only this server certificate (sha256 of its DER, hex); without it any is accepted and reported. */
  serverCertSha256?: string;
  /**
   * Offer RemoteFX to the host. Default false: the host then sends bitmap updates, which
   * cost the engine far less CPU per frame (remotefx-patch.ts) for more bytes between it and the host.
   */
  remoteFx?: boolean;
  /** For the connection up to the first picture. Default 15 s. */
  timeoutMs?: number;
}

/**
 * A changed rectangle: pixel (x+i, y+j) is the 4 bytes (RGBA) at `rgba[j*stride + i*4]`.
 * Rects from a 'rects' event may be views of the engine's own picture (no copy per
 * frame): they hold until the event handler returns; copy what must outlive it.
 */
export interface FrameRect {
  x: number;
  y: number;
  width: number;
  height: number;
  rgba: Buffer;
  /** Bytes from one row to the next in `rgba`; width*4 (rows packed) when absent. */
  stride?: number;
}

/** Mouse buttons as the browser numbers them (MouseEvent.button). */
export type MouseButton = 0 | 1 | 2 | 3 | 4;

export interface RdpSessionEvents {
  /** Rectangles drawn since the last event (one server update); views valid during the event only. */
  rects: [rects: FrameRect[]];
  /** The desktop changed size (after a resize or by the server); the picture restarts. */
  resize: [width: number, height: number];
  /** The remote clipboard now holds this text. */
  clipboard: [text: string];
  /** The session is over; `error` says why when it was not a normal end, `reason` what the host said otherwise. */
  close: [error?: Error, reason?: string];
}

/** One connected desktop. */
export interface RdpSession extends EventEmitter<RdpSessionEvents> {
  readonly width: number;
  readonly height: number;
  /** sha256 (hex) of the certificate the host presented. */
  readonly serverCertSha256: string;
  /** The whole current picture (RGBA, width*height*4). */
  snapshot(): FrameRect;
  mouseMove(x: number, y: number): void;
  mouseButton(button: MouseButton, down: boolean): void;
  /** Wheel rotation in pixels; vertical unless `horizontal`. Positive is up/right. */
  wheel(amount: number, horizontal?: boolean): void;
  /** A PS/2 set-1 scancode; extended keys as 0xE0xx (0xE048 is Up). */
  key(scancode: number, down: boolean): void;
  /** Offers text to the remote clipboard. */
  clipboardText(text: string): Promise<void>;
  /** Asks the host for a new desktop size (needs the display control channel; may be ignored). */
  resize(width: number, height: number): void;
  close(): void;
}

export interface RdpEngine {
  /** Connects and resolves once the session runs (before the first picture). */
  connect(options: RdpConnectOptions): Promise<RdpSession>;
}
