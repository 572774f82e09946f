/**
 * SSH sessions with real programs: `psh ssh` in a real terminal (tmux) runs a shell on
 * the agent's host, sees a window resize, and its session is recorded; `psh recordings
 * ls` lists it and `psh play` gives back what was typed and printed. An agent killed
 * mid-session uploads the recording when it starts again. OpenSSH `ssh -L` and `-A`
 * work only with a role that permits them, and a role whose node_labels do not match
 * the node cannot log in; each refusal is audited with its reason.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';
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
  let echo: net.Server | undefined;
  let echoPort = 0;
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
    const roles = path.join(home, 'roles.yaml');
    writeFileSync(roles, [
      'kind: role', 'version: v1', 'metadata: { name: forwarder }', 'spec:',
      "  allow: { logins: [root], node_labels: { '*': '*' } }",
      '  options: { permit_port_forwarding: true, permit_agent_forwarding: true }',
      '---',
      'kind: role', 'version: v1', 'metadata: { name: staging-only }', 'spec:',
      '  allow: { logins: [root], node_labels: { env: staging } }',
      '',
    ].join('\n'));
    const created = await pctl(['create', '-f', roles]);
    assert.equal(created.code, 0, created.stderr);
    echo = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const t of terminals) t.close();
    echo?.close();
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

  test('asciinema plays the recording', { skip: spawnSync('asciinema', ['--version']).status === 0 ? undefined : 'asciinema is not installed (Debian package asciinema; installers/dev-deps.sh installs it)' }, async () => {
    const cast = await psh(['play', '--format', 'asciicast', recorded!.session_id]);
    const file = path.join(home, 'session.cast');
    writeFileSync(file, cast.stdout);
    // asciinema wants a terminal: play it in one, fast, and read the screen.
    const player = terminal(['asciinema', 'play', '--speed', '20', '--idle-time-limit', '0.2', file], 120, 40);
    await player.waitFor(/marker-42/);
    await player.waitEnded(20_000);
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
      const others = await asGus(['recordings', 'ls', '--user', 'fay']);
      assert.equal(others.code, 1);
      assert.match(others.stderr, /you may list only your own recordings; listing fay's needs a role allowing list on session_recording/);
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
  /** Logs a new user in under their own POSTERN_HOME; returns the ssh config path and an ssh runner. */
  const userWith = async (name: string, roles: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), `postern-sessions-${name}-`));
    homes.push(dir);
    await signUpAndLogIn(cluster!, dir, { name, roles, logins: 'root', password: "correct horse battery staple" });
    const config = await pshIn(dir)(['config']);
    assert.equal(config.code, 0, config.stderr);
    const file = path.join(dir, 'ssh_config');
    writeFileSync(file, config.stdout);
    const env = { ...process.env, POSTERN_HOME: dir };
    return { dir, file, env };
  };
  const homes: string[] = [];
  after(() => {
    for (const dir of homes) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `ssh -N -L port:127.0.0.1:echoPort` and sends one line through the forward; resolves with what came back and ssh's stderr. */
  const throughForward = async (user: { file: string; env: NodeJS.ProcessEnv }) => {
    const port = await freePort();
    const ssh = spawn('ssh', ['-F', user.file, '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-N', '-L', `${port}:127.0.0.1:${echoPort}`, 'root@box-1'], { env: user.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    ssh.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      // ssh listens once it has logged in.
      const deadline = Date.now() + 15_000;
      let socket: net.Socket | undefined;
      while (!socket) {
        if (ssh.exitCode !== null) throw new Error(`ssh exited ${ssh.exitCode}: ${stderr}`);
        socket = await new Promise<net.Socket | undefined>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.once('error', () => resolve(undefined));
          // A refused forward: ssh resets the local connection.
          s.on('error', () => {});
        });
        if (!socket) {
          if (Date.now() > deadline) throw new Error(`ssh -L did not listen: ${stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      socket.write('ping through the tunnel\n');
      let echoed = '';
      const line = new Promise((resolve) => socket.on('data', (chunk: Buffer) => {
        echoed += chunk.toString();
        if (echoed.endsWith('\n')) resolve(undefined);
      }));
      // Not events.once: it rejects on the reset a refused forward ends with.
      const closed = new Promise((resolve) => socket.once('close', resolve));
      await Promise.race([line, closed, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      socket.destroy();
      // ssh reports a refused channel on stderr around the time it resets the local connection.
      for (let i = 0; i < 30 && echoed === '' && !/open failed/.test(stderr); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      return { echoed, stderr: () => stderr };
    } finally {
      ssh.kill();
    }
  };
  const auditFor = async (user: string, match: (e: { type: string; reason?: string; fields: Record<string, unknown> }) => boolean) => {
    for (let i = 0; i < 50; i++) {
      const audit = await pctl(['audit', 'search', '--user', user, '--format', 'json']);
      const found = (JSON.parse(audit.stdout) as Array<{ type: string; reason?: string; fields: Record<string, unknown> }>).find(match);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no matching audit event for ${user}`);
  };

  test('ssh -L through the proxy reaches a TCP server beside the node when a role permits port forwarding', async () => {
    const user = await userWith('hal', 'forwarder');
    const result = await throughForward(user);
    assert.equal(result.echoed, 'ping through the tunnel\n', result.stderr());
    const event = await auditFor('hal', (e) => e.type === 'session.port_forward');
    assert.equal(event.fields.target, `127.0.0.1:${echoPort}`);
  });

  test('ssh -L is refused without a role that permits it, and the refusal is audited', async () => {
    const user = await userWith('ivy', 'access');
    const result = await throughForward(user);
    assert.equal(result.echoed, '');
    assert.match(result.stderr(), /open failed: administratively prohibited: port forwarding is not permitted for ivy/);
    const event = await auditFor('ivy', (e) => e.type === 'access.denied' && e.fields.target !== undefined);
    assert.match(event.reason ?? '', /port forwarding is not permitted for ivy: no role sets options.permit_port_forwarding: true/);
  });

  test('psh ssh -A forwards the ssh-agent when a role permits it, and not otherwise', async () => {
    const agentDir = mkdtempSync(path.join(tmpdir(), 'postern-sshagent-'));
    homes.push(agentDir);
    const sock = path.join(agentDir, 'agent.sock');
    const sshAgent = spawnSync('ssh-agent', ['-a', sock], { encoding: 'utf8' });
    assert.equal(sshAgent.status, 0, sshAgent.stderr);
    const agentPid = /SSH_AGENT_PID=(\d+)/.exec(sshAgent.stdout)?.[1];
    try {
      const key = path.join(agentDir, 'id_ed25519');
      assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forwarded-key-marker', '-f', key]).status, 0);
      const added = spawnSync('ssh-add', [key], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: sock } });
      assert.equal(added.status, 0, added.stderr);
      const allowed = await userWith('jon', 'forwarder');
      const listed = spawnSync(process.execPath, [cliPath, 'psh', 'ssh', '-A', 'root@box-1', 'ssh-add', '-l'], { encoding: 'utf8', timeout: 30_000, env: { ...allowed.env, SSH_AUTH_SOCK: sock } });
      assert.equal(listed.status, 0, listed.stderr);
      assert.match(listed.stdout, /forwarded-key-marker/);
      await auditFor('jon', (e) => e.type === 'session.agent_forward');
      const refused = spawnSync(process.execPath, [cliPath, 'psh', 'ssh', '-A', 'root@box-1', 'ssh-add -l; echo "exit=$?"'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, POSTERN_HOME: home, SSH_AUTH_SOCK: sock } });
      assert.doesNotMatch(refused.stdout, /forwarded-key-marker/);
      assert.match(refused.stdout, /exit=2/, refused.stderr);
      const event = await auditFor('fay', (e) => e.type === 'access.denied' && /agent forwarding/.test(e.reason ?? ''));
      assert.match(event.reason ?? '', /agent forwarding is not permitted for fay/);
    } finally {
      if (agentPid) process.kill(Number(agentPid));
    }
  });

  test('a role whose node_labels do not match the node cannot log in; the refusal is audited with the reason', async () => {
    const user = await userWith('kim', 'staging-only');
    const run = spawnSync('ssh', ['-F', user.file, '-o', 'BatchMode=yes', 'root@box-1', 'true'], { encoding: 'utf8', timeout: 30_000, env: user.env });
    assert.equal(run.status, 255);
    assert.match(run.stderr, /Permission denied/);
    const event = await auditFor('kim', (e) => e.type === 'access.denied' && e.fields.login === 'root');
    assert.match(event.reason ?? '', /kim may not log in as root on this node: no role allows login "root" on node "box-1" \(labels env=prod\)/);
  });
});
