/**
 * Interactive SSH sessions with real programs: `psh ssh` in a real terminal (tmux)
 * runs a shell on the agent's host, sees a window resize, and its session is recorded;
 * `psh recordings ls` lists it and `psh play` gives back what was typed and printed.
 * An agent killed mid-session uploads the recording when it starts again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { cliPath } from './fixtures/auth.ts';
import { TmuxSession, tmuxMissing } from './fixtures/tmux.ts';

interface Listed {
  session_id: string;
  user: string;
  login: string;
  node: string;
  kind: string;
  interrupted?: boolean;
  size: number;
}

describe('interactive SSH sessions, recorded', { skip: tmuxMissing() }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let home = '';
  const terminals: TmuxSession[] = [];
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);
  const pshSsh = (...args: string[]) => [process.execPath, cliPath, 'psh', 'ssh', ...args];
  const terminal = (command: string[], cols = 100, rows = 30) => {
    const session = TmuxSession.start(command, { cols, rows, env: { POSTERN_HOME: home } });
    terminals.push(session);
    return session;
  };
  /** Polls psh recordings ls until `match` finds one. */
  const waitForRecording = async (match: (r: Listed) => boolean, timeoutMs = 20_000): Promise<Listed> => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const listed = await psh(['recordings', 'ls', '--format', 'json']);
      assert.equal(listed.code, 0, listed.stderr);
      last = listed.stdout;
      const found = (JSON.parse(listed.stdout) as Listed[]).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such recording within ${timeoutMs} ms; listed: ${last}\nagent log: ${agent?.logs().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-sessions-home-'));
    cluster = await startClusterProcess('sessions');
    const { proxy, pin } = cluster;
    const token = (JSON.parse((await pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('agent', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  node_name: box-1\n  proxy_addr: ${proxy}\n  token: ${token}\n  ca_pin: ${pin}\n  labels: { env: prod }\n`);
    await agent.waitReady();
    await signUpAndLogIn(cluster, home, { name: 'fay', roles: 'access', logins: 'root', password: 'a long and happy password' });
  });
  after(async () => {
    for (const t of terminals) t.close();
    await stopAll([agent, cluster?.daemon]);
    rmSync(home, { recursive: true, force: true });
  });

  let recorded: Listed | undefined;

  test('psh ssh in a terminal runs a shell, and a window resize reaches stty', async () => {
    const term = terminal(pshSsh('root@box-1'), 100, 30);
    term.type('echo marker-$((6*7))');
    await term.waitFor(/^marker-42$/m);
    term.type('stty size');
    await term.waitFor(/^30 100$/m);
    term.resize(120, 40);
    // The shell must see SIGWINCH before stty runs: give the window-change a moment to travel.
    await new Promise((resolve) => setTimeout(resolve, 300));
    term.type('stty size');
    await term.waitFor(/^40 120$/m);
    term.type('exit');
    await term.waitEnded();
  });

  test('psh recordings ls lists the session, and psh play gives back its output', async () => {
    recorded = await waitForRecording((r) => r.user === 'fay' && r.kind === 'shell' && !r.interrupted);
    assert.equal(recorded.login, 'root');
    assert.equal(recorded.node, 'box-1');
    assert.ok(recorded.size > 0);
    const cast = await psh(['play', '--format', 'asciicast', recorded.session_id]);
    assert.equal(cast.code, 0, cast.stderr);
    const [header, ...events] = cast.stdout.trim().split('\n');
    assert.equal((JSON.parse(header!) as { version: number; width: number; height: number }).version, 2);
    const output = events.map((l) => JSON.parse(l) as [number, string, string]);
    const printed = output.filter(([, type]) => type === 'o').map(([, , text]) => text).join('');
    assert.match(printed, /marker-42/);
    assert.match(printed, /40 120/);
    assert.ok(output.some(([, type, size]) => type === 'r' && size === '120x40'), 'the resize is in the recording');
    const times = output.map(([t]) => t);
    assert.deepEqual([...times].sort((a, b) => a - b), times, 'event times never go back');
    const replayed = await psh(['play', '--speed', '50', '--idle-limit', '0.1', recorded.session_id]);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /marker-42/);
    // The agent keeps no copy once auth has it.
    assert.deepEqual(readdirSync(path.join(agent!.dir, 'recordings')).filter((n) => n.startsWith(recorded!.session_id)), []);
  });

  test('the session start and end are audited with the session id and the recording id', async () => {
    const audit = await pctl(['audit', 'search', '--type', 'session.*', '--user', 'fay', '--format', 'json']);
    assert.equal(audit.code, 0, audit.stderr);
    const events = JSON.parse(audit.stdout) as Array<{ type: string; resource?: { name: string }; fields: Record<string, unknown> }>;
    const mine = events.filter((e) => e.fields.session_id === recorded!.session_id);
    assert.deepEqual(new Set(mine.map((e) => e.type)), new Set(['session.start', 'session.end', 'session.recording']), JSON.stringify(events));
    const end = mine.find((e) => e.type === 'session.end')!;
    assert.equal(end.fields.recording_id, recorded!.session_id);
    assert.equal(end.resource?.name, 'box-1');
  });

  test('play refuses a session id that does not exist, naming it', async () => {
    const missing = await psh(['play', '00000000-0000-0000-0000-000000000000']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no recording of session 00000000-0000-0000-0000-000000000000/);
  });

  test('an agent killed mid-session uploads the recording when it starts again', async () => {
    const term = terminal(pshSsh('root@box-1'));
    term.type('echo before-crash-$((2*3))');
    await term.waitFor(/^before-crash-6$/m);
    await agent!.kill();
    await term.waitEnded();
    const left = readdirSync(path.join(agent!.dir, 'recordings'));
    assert.ok(left.some((n) => n.endsWith('.cast')), `the recording stays on disk: ${left.join(', ')}`);
    await agent!.restart();
    await agent!.waitReady();
    const interrupted = await waitForRecording((r) => r.user === 'fay' && r.interrupted === true);
    const cast = await psh(['play', '--format', 'asciicast', interrupted.session_id]);
    assert.equal(cast.code, 0, cast.stderr);
    assert.match(cast.stdout, /before-crash-6/);
  });

  test('a user without read on session_recording cannot play another user\'s session, and an auditor can', async () => {
    const otherHome = mkdtempSync(path.join(tmpdir(), 'postern-sessions-other-'));
    try {
      await signUpAndLogIn(cluster!, otherHome, { name: 'gus', roles: 'access', logins: 'gus', password: 'another long password' });
      const asGus = pshIn(otherHome);
      const denied = await asGus(['play', '--format', 'asciicast', recorded!.session_id]);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /belongs to another user; playing it needs a role allowing read on session_recording/);
      const listed = await asGus(['recordings', 'ls', '--format', 'json']);
      assert.deepEqual(JSON.parse(listed.stdout), []);
      const auditorHome = mkdtempSync(path.join(tmpdir(), 'postern-sessions-auditor-'));
      try {
        await signUpAndLogIn(cluster!, auditorHome, { name: 'ida', roles: 'auditor', logins: 'ida', password: 'an auditor password here' });
        const asIda = pshIn(auditorHome);
        const all = await asIda(['recordings', 'ls', '--format', 'json']);
        assert.equal(all.code, 0, all.stderr);
        assert.ok((JSON.parse(all.stdout) as Listed[]).some((r) => r.session_id === recorded!.session_id));
        const played = await asIda(['play', '--format', 'asciicast', recorded!.session_id]);
        assert.equal(played.code, 0, played.stderr);
        assert.match(played.stdout, /marker-42/);
      } finally {
        rmSync(auditorHome, { recursive: true, force: true });
      }
    } finally {
      rmSync(otherHome, { recursive: true, force: true });
    }
  });
});
