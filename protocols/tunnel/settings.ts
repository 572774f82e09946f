import type { Http2Session, SessionOptions, Settings } from 'node:http2';

/**
 * Receive window per stream. Memory a paused reader can pin is one window per stream.
 * Measured with bench/tunnel.ts on loopback (2 cores), one stream against direct TLS,
 * before the agent's socket was decoupled: 64 KiB 0.35, 1 MiB 0.72, 4 MiB 0.72,
 * 8 MiB 0.90, 16 MiB 0.85 (runs drift +-10%); 8 MiB is the smallest near full speed.
 */
export const DEFAULT_WINDOW_SIZE = 8 * 1024 * 1024;
/**
 * The connection window is this many stream windows. Node credits received data to the
 * connection at once (only the stream window waits for the reader), so it pins no
 * memory at the receiver; it bounds the bytes in flight, which a long link needs.
 * Measured: 1x and 4x alike on loopback.
 */
export const CONNECTION_WINDOW_FACTOR = 2;
/** Default streams the agent serves at once; further ones are refused (REFUSED_STREAM). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1_000;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 15_000;

/** Options both ends of a tunnel take. */
export interface TunnelOptions {
  /** Receive window per stream, in bytes (the connection's is twice it). Default {@link DEFAULT_WINDOW_SIZE}. */
  windowSize?: number;
  /** Time between keepalive PINGs. Default 15 s. */
  keepaliveIntervalMs?: number;
  /** Time a PING may go unanswered (with nothing else arriving) before the tunnel is closed. Default 15 s. */
  keepaliveTimeoutMs?: number;
}

/** The HTTP/2 SETTINGS a tunnel end advertises. */
export function tunnelSettings(options: TunnelOptions, extra: Settings = {}): Settings {
  return {
    initialWindowSize: options.windowSize ?? DEFAULT_WINDOW_SIZE,
    enablePush: false,
    ...extra,
  };
}

/** Session options common to both ends. */
export function tunnelSessionOptions(): SessionOptions {
  return {
    // A credit limit, not an allocation: data queued for sending counts against it, and
    // with multi-MiB windows the 10 MB default would refuse new streams during bulk transfers.
    maxSessionMemory: 1_024,
    // The peer is authenticated; a proxy legitimately cancels streams in bursts (users
    // dropping connections), which the rapid-reset defaults (1000 burst, 33/s) would punish
    // by closing the whole tunnel.
    streamResetBurst: 100_000,
    streamResetRate: 10_000,
  } as SessionOptions;
}

/** The connection-level receive window for these options. */
export function connectionWindow(options: TunnelOptions): number {
  return Math.min(2 ** 31 - 1, (options.windowSize ?? DEFAULT_WINDOW_SIZE) * CONNECTION_WINDOW_FACTOR);
}

/** Raises the connection-level receive window once the session is up. */
export function applyConnectionWindow(session: Http2Session, options: TunnelOptions): void {
  const size = connectionWindow(options);
  const apply = (): void => {
    if (!session.destroyed) session.setLocalWindowSize(size);
  };
  if (session.connecting) session.once('connect', apply);
  else apply();
}
