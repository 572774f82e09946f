import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SessionRecording } from '../recordings/session-recorder.ts';
import { HeaderBlockWriter } from '../../../protocols/spdy/header-block.ts';
import { dataFrame, synStream } from '../../../protocols/spdy/frame-writer.ts';
import { ExecSession, exitFromStatus, spdyExecTap, webSocketExecTap, type ExecSessionSummary } from './kube-exec-session.ts';

/** A recording that keeps what it is given. */
function memoryRecording(): SessionRecording & { events: Array<['o', string] | ['r', string]>; closed: boolean } {
  const recording = {
    sessionId: 's-1',
    events: [] as Array<['o', string] | ['r', string]>,
    closed: false,
    output(data: Buffer | string) {
      recording.events.push(['o', data.toString()]);
    },
    resize(cols: number, rows: number) {
      recording.events.push(['r', `${cols}x${rows}`]);
    },
    async close() {
      recording.closed = true;
    },
  };
  return recording;
}

function session(recording: SessionRecording): { session: ExecSession; stopped: string[]; ended: Promise<ExecSessionSummary> } {
  const stopped: string[] = [];
  let resolve!: (summary: ExecSessionSummary) => void;
  const ended = new Promise<ExecSessionSummary>((r) => (resolve = r));
  return { session: new ExecSession({ recording, onStopped: (reason) => stopped.push(reason), onEnd: resolve }), stopped, ended };
}

function wsFrame(payload: Buffer, o: { fin?: boolean; opcode?: number; mask?: boolean } = {}): Buffer {
  const mask = o.mask ? Buffer.from([1, 2, 3, 4]) : undefined;
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!)) : payload;
  return Buffer.concat([Buffer.from([((o.fin ?? true) ? 0x80 : 0) | (o.opcode ?? 2), (mask ? 0x80 : 0) | payload.length]), ...(mask ? [mask] : []), body]);
}

test('the error channel\'s Status gives the exit code', () => {
  assert.deepEqual(exitFromStatus(Buffer.from('{"metadata":{},"status":"Success"}')), { exitCode: 0 });
  assert.deepEqual(exitFromStatus(Buffer.from('{"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}')), { exitCode: 7, failure: 'command terminated with non-zero exit code' });
  assert.deepEqual(exitFromStatus(Buffer.from('{"status":"Failure","message":"container not found"}')), { failure: 'container not found' });
  assert.deepEqual(exitFromStatus(Buffer.from('oops')), { failure: 'an error channel message that is not JSON' });
});

test('websocket: stdout and stderr (fragmented too) are output, resizes are recorded, stdin is not; the exit code is kept', async () => {
  const recording = memoryRecording();
  const s = session(recording);
  const tap = webSocketExecTap(s.session);
  tap.fromClient(wsFrame(Buffer.from('\x04{"Width":132,"Height":43}'), { mask: true }));
  tap.fromClient(wsFrame(Buffer.from('\x00secret typed input'), { mask: true }));
  const server = Buffer.concat([wsFrame(Buffer.from('\x01hel'), { fin: false }), wsFrame(Buffer.from('lo\n'), { opcode: 0 }), wsFrame(Buffer.from('\x02warn\n')), wsFrame(Buffer.from('\x03{"status":"Success"}'))]);
  for (let i = 0; i < server.length; i += 3) tap.fromUpstream(server.subarray(i, i + 3));
  tap.end();
  const summary = await s.ended;
  assert.deepEqual(recording.events, [['r', '132x43'], ['o', 'hello\n'], ['o', 'warn\n']]);
  assert.equal(recording.closed, true);
  assert.equal(summary.exitCode, 0);
  assert.equal(summary.stopped, undefined);
  assert.deepEqual(s.stopped, []);
});

test('websocket: a malformed stream stops the recording once, keeps what came before, and the session still ends', async () => {
  const recording = memoryRecording();
  const s = session(recording);
  const tap = webSocketExecTap(s.session);
  tap.fromUpstream(wsFrame(Buffer.from('\x01before\n')));
  tap.fromUpstream(Buffer.from([0xf2, 0x00]));
  tap.fromUpstream(wsFrame(Buffer.from('\x01after\n')));
  tap.fromClient(Buffer.from('garbage'));
  tap.end();
  const summary = await s.ended;
  assert.deepEqual(recording.events, [['o', 'before\n']]);
  assert.equal(s.stopped.length, 1);
  assert.match(s.stopped[0]!, /API server's websocket stream is malformed \(reserved bits/);
  assert.equal(summary.stopped, s.stopped[0]);
});

test('SPDY: streams are told apart by streamtype; resize lines split across frames; the error stream\'s Status across frames', async () => {
  const recording = memoryRecording();
  const s = session(recording);
  const tap = spdyExecTap(s.session);
  const client = new HeaderBlockWriter();
  tap.fromClient(Buffer.concat([synStream(client, 1, { streamtype: 'error' }), synStream(client, 3, { streamtype: 'stdin' }), synStream(client, 5, { streamtype: 'stdout' }), synStream(client, 7, { streamtype: 'resize' })]));
  tap.fromClient(dataFrame(7, Buffer.from('{"Width":100,"He')));
  tap.fromClient(dataFrame(7, Buffer.from('ight":30}\n{"Width":0,"Height":99999}\n')));
  tap.fromClient(dataFrame(3, Buffer.from('typed')));
  tap.fromUpstream(dataFrame(5, Buffer.from('out\n')));
  tap.fromUpstream(dataFrame(1, Buffer.from('{"status":"Failure","details":{"causes":[{"reason":"ExitCode",')));
  tap.fromUpstream(dataFrame(1, Buffer.from('"message":"2"}]}}'), true));
  tap.end();
  const summary = await s.ended;
  assert.deepEqual(recording.events, [['r', '100x30'], ['r', '80x10000'], ['o', 'out\n']]);
  assert.equal(summary.exitCode, 2);
});

test('SPDY: data on a stream the client never opened is malformed', async () => {
  const recording = memoryRecording();
  const s = session(recording);
  const tap = spdyExecTap(s.session);
  tap.fromUpstream(dataFrame(9, Buffer.from('who?')));
  tap.end();
  await s.ended;
  assert.deepEqual(recording.events, []);
  assert.match(s.stopped[0]!, /data on stream 9, which the client never opened/);
});
