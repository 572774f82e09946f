import type { Http2Session } from 'node:http2';

/** How often to ping the peer and how long to wait for the acknowledgement. */
export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
}

function _bytesRead(socket: object): number {
  const n = (socket as { bytesRead?: unknown }).bytesRead;
  return typeof n === 'number' ? n : 0;
}

/**
 * Pings the peer every `intervalMs`; calls `onDead` when an acknowledgement is `timeoutMs`
 * late and nothing else arrived from the peer meanwhile. Returns a function that stops it.
 *
 * A PING ACK can queue behind up to a window of DATA on a slow link, so bytes still
 * arriving count as a sign of life and extend the deadline; a peer that sends nothing
 * and acknowledges nothing is dead after `intervalMs + timeoutMs` at most.
 */
export function startKeepalive(session: Http2Session, socket: object, options: KeepaliveOptions, onDead: () => void): () => void {
  let outstanding = false;
  let bytesAtPing = 0;
  let deadline: NodeJS.Timeout | undefined;

  const check = (): void => {
    if (!outstanding || session.destroyed) return;
    const bytes = _bytesRead(socket);
    if (bytes > bytesAtPing) {
      bytesAtPing = bytes;
      deadline = setTimeout(check, options.timeoutMs).unref();
      return;
    }
    stop();
    onDead();
  };
  const tick = (): void => {
    if (outstanding || session.destroyed) return;
    bytesAtPing = _bytesRead(socket);
    const sent = session.ping(() => {
      outstanding = false;
      clearTimeout(deadline);
    });
    if (!sent) return; // too many manual pings in flight; they prove liveness too
    outstanding = true;
    deadline = setTimeout(check, options.timeoutMs).unref();
  };
  const interval = setInterval(tick, options.intervalMs).unref();
  const stop = (): void => {
    clearInterval(interval);
    clearTimeout(deadline);
  };
  return stop;
}
