/**
 * `psh recordings ls`: the recorded SSH sessions, Kubernetes execs and desktop sessions you may see (your own; everyone's with
 * a role allowing list on session_recording, such as auditor).
 * `psh play SESSION_ID`: replays one in this terminal with its timing (`--speed`,
 * `--idle-limit`), or prints the asciicast v2 file (`--format asciicast`), which
 * asciinema plays as well.
 */
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { outputFormat, printData, renderTable } from '../output.ts';
import { withAuth } from './auth-connection.ts';

interface RecordingView {
  session_id: string;
  user: string;
  login: string;
  node: string;
  kind: string;
  command?: string;
  started: string;
  ended: string;
  size: number;
  interrupted?: boolean;
}

export async function recordingsLs(invocation: Invocation): Promise<number> {
  const user = stringOption(invocation, 'user');
  const list = await withAuth(stringOption(invocation, 'proxy'), async (client) =>
    (await client.listRecordings({ user: user ?? '', limit: 0 }, { deadlineMs: 10_000 })).recordingsJson.map((j) => JSON.parse(j) as RecordingView),
  );
  printData(outputFormat(invocation.options.format), list, (rows) =>
    renderTable(
      ['SESSION', 'USER', 'LOGIN@NODE', 'KIND', 'STARTED', 'DURATION', 'SIZE'],
      rows.map((r) => [
        r.session_id,
        r.user,
        `${r.login}@${r.node}`,
        (r.kind === 'exec' || r.kind === 'kube') && r.command ? `${r.kind}: ${r.command.length > 30 ? `${r.command.slice(0, 29)}…` : r.command}` : r.kind + (r.interrupted ? ' (interrupted)' : ''),
        r.started.replace(/\.\d+Z$/, 'Z'),
        duration(Date.parse(r.ended) - Date.parse(r.started)),
        `${r.size} B`,
      ]),
      'no recordings you can see; sessions are listed once they end and their agent has uploaded them',
    ),
  );
  return 0;
}

/** Reads the whole recording from auth. */
async function fetchRecording(proxy: string | undefined, sessionId: string): Promise<Buffer> {
  return withAuth(proxy, async (client) => {
    const parts: Buffer[] = [];
    let offset = 0;
    for (;;) {
      const chunk = await client.getRecording({ sessionId, offset: BigInt(offset) }, { deadlineMs: 30_000 });
      parts.push(Buffer.from(chunk.data));
      offset += chunk.data.length;
      if (offset >= Number(chunk.size) || chunk.data.length === 0) break;
    }
    return Buffer.concat(parts);
  });
}

export async function play(invocation: Invocation): Promise<number> {
  const [sessionId, ...extra] = invocation.positionals;
  if (!sessionId || extra.length > 0) throw new UsageError('expected one SESSION_ID (see psh recordings ls)');
  const format = stringOption(invocation, 'format') ?? 'terminal';
  if (format !== 'terminal' && format !== 'asciicast') throw new UsageError(`--format: expected terminal or asciicast, got "${format}"`);
  const speed = positiveNumber(stringOption(invocation, 'speed') ?? '1', '--speed');
  const idleLimit = positiveNumber(stringOption(invocation, 'idle-limit') ?? 'Infinity', '--idle-limit');
  const file = await fetchRecording(stringOption(invocation, 'proxy'), sessionId);
  if (file.subarray(0, 8).toString('latin1') === 'PSTDREC1') {
    throw new UsageError(`session ${sessionId} is a desktop recording, which a terminal cannot show; replay it on the web UI's Recordings page`);
  }
  if (format === 'asciicast') {
    process.stdout.write(file);
    return 0;
  }
  await replay(file.toString('utf8'), { speed, idleLimit, write: (text) => process.stdout.write(text) });
  return 0;
}

/** Writes each output event at its time (divided by `speed`; pauses capped at `idleLimit` seconds). */
export async function replay(cast: string, options: { speed: number; idleLimit: number; write: (text: string) => void }): Promise<void> {
  const lines = cast.split('\n').filter((l) => l.trim() !== '');
  const header = JSON.parse(lines[0] ?? '{}') as { version?: number };
  if (header.version !== 2) throw new UsageError('this is not an asciicast v2 recording');
  let previous = 0;
  for (const line of lines.slice(1)) {
    const [time, type, data] = JSON.parse(line) as [number, string, string];
    const pause = Math.min(Math.max(0, time - previous), options.idleLimit) / options.speed;
    previous = time;
    if (pause > 0.001) await new Promise((resolve) => setTimeout(resolve, pause * 1000));
    if (type === 'o') options.write(data);
  }
}

function positiveNumber(text: string, name: string): number {
  const value = Number(text);
  if (!(value > 0)) throw new UsageError(`${name}: expected a positive number, got "${text}"`);
  return value;
}

function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
