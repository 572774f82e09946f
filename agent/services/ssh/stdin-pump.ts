/**
 * Feeds what the client sends on a session channel to a child process's stdin, as
 * `channel.pipe(stdin)` would (backpressure, end), and hands each chunk's memory back
 * to ssh2 once its write has completed (`Channel#releaseData`, added by
 * patches/ssh2+1.17.0.patch).
 *
 * Why: a bulk upload arrives in packets split across tunnel chunks, and ssh2 gathered
 * each into a new ArrayBuffer. V8 counts those as external memory and, at upload rates,
 * answered with a full mark-compact every few MiB: about a quarter of the agent's CPU
 * per MiB went to marking. With the memory handed back, the next packet reuses it.
 *
 * A chunk is released only from its write callback: by then the pipe write no longer
 * refers to it, and this listener is the channel's only consumer of data.
 */
import type { Writable } from 'node:stream';
import type { ServerChannel } from 'ssh2';

/** What the patched ssh2 adds to a channel; absent on an unpatched ssh2 (then nothing is reused). */
interface ReleasingChannel {
  releaseData?: (data: Buffer) => void;
}

export function pumpChannelToStdin(channel: ServerChannel, stdin: Writable): void {
  const releaseData = (channel as ServerChannel & ReleasingChannel).releaseData;
  let waiting = false;
  const onDrain = (): void => {
    waiting = false;
    channel.resume();
  };
  channel.on('data', (data: Buffer) => {
    const more = stdin.write(data, releaseData ? () => releaseData.call(channel, data) : undefined);
    if (!more && !waiting) {
      waiting = true;
      channel.pause();
      stdin.once('drain', onDrain);
    }
  });
  channel.once('end', () => stdin.end());
}
