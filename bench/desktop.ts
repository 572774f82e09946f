/**
 * `npm run bench -- desktop`: one desktop session through a real agent process and
 * proxy, while the session's root window cycles through full-screen colours.
 *
 * ```
 * bench process: auth + proxy (in-process), the viewer (decodes every rect)
 *   └ dial desktop:bench through the agent's tunnel
 * agent process (postern start, measured): tunnel, desktop service, ironrdp-wasm, PNG encoding
 *   └ TLS ── xrdp ── Xorg/xorgxrdp (xrdp fixture), `xsetroot` in a loop as the session user
 * ```
 *
 * Figures: time from dial to the first picture; full-screen frames per second (pixels
 * delivered / screen size, and colour changes seen at the centre) over a steady window;
 * the agent's CPU (utime+stime from /proc) per session in cores over the same window.
 * Baseline in the same run: xfreerdp (native FreeRDP, 24-bit bitmap updates as the agent
 * asks for) under Xvfb rendering the same session and cycle; its CPU against the
 * agent's is the ratio printed last.
 * Target (issue 9): >= 10 full-screen frames/s at 1024x768 under half a core. The
 * cycle is driven at BENCH_DESKTOP_RATE changes a second (default 12); the CPU per
 * full frame says how far above that one session can go (mostly ironrdp-wasm putting
 * the decoded picture on its canvas, ~20 ms a frame here; 24-bit RLE decoding ~3 ms;
 * PNG encoding ~2 ms). BENCH_DESKTOP_CPU_PROF=DIR writes the agent's CPU profile there.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestProxy } from '../cluster/proxy/testdata/proxy-fixture.ts';
import { formatAuthorizedKey } from '../protocols/ssh/public-key.ts';
import { startDaemon } from '../test/fixtures/processes.ts';
import { cliPath } from '../test/fixtures/auth.ts';
import { startXrdp, xrdpUnavailable } from '../test/fixtures/xrdp.ts';
import { DesktopViewer } from '../test/fixtures/desktop-viewer.ts';
import { cpuSeconds } from './cpu.ts';

const WIDTH = 1024;
const HEIGHT = 768;
const WINDOW_MS = Number(process.env.BENCH_DESKTOP_MS ?? 8_000);
const COLOURS = ['#ff0000', '#00ff00', '#0000ff', '#ffff00', '#00ffff', '#ff00ff'];
/** Colour changes per second the session is driven at (the target is 10 frames/s). */
const RATE = Number(process.env.BENCH_DESKTOP_RATE ?? 12);
/** Where the agent writes a V8 CPU profile (node --cpu-prof) when set. */
const PROFILE_DIR = process.env.BENCH_DESKTOP_CPU_PROF;

export async function run(): Promise<void> {
  const why = xrdpUnavailable();
  if (why) {
    process.stdout.write(`desktop: skipped: ${why}\n`);
    return;
  }
  const desktop = await startXrdp({ background: '#000000', xterm: false });
  const t = await startTestProxy();
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-desktop-'));
  let agent: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let cycler: ReturnType<typeof spawn> | undefined;
  try {
    const deps = t.auth.server.deps;
    const admin = t.auth.connectAs(['admin']).client;
    const { secret } = await deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: {}, singleUse: true });
    const pin = (await admin.status({})).authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
    await admin.createResources({ source: 'bench', upsert: false, text: 'kind: role\nversion: v1\nmetadata: { name: bench-desk }\nspec:\n  allow:\n    desktop_labels: { "*": "*" }\n    desktop_logins: [bench]\n' });
    writeFileSync(path.join(dir, 'pass'), desktop.password, { mode: 0o600 });
    agent = await startDaemon('bench-agent', (data, diag) => [
      `data_dir: ${data}`, `diag_addr: ${diag}`, 'log: { level: warn }', 'agent:', `  proxy_addr: ${t.proxy.address}`, `  token: ${secret}`, `  ca_pin: ${pin}`,
      '  node_name: bench-desk', '  ssh: { enabled: false }', '  desktops:', '    - name: bench', `      addr: ${desktop.host}:${desktop.port}`,
      `      logins: [{ login: bench, username: ${desktop.username}, password_file: ${path.join(dir, 'pass')} }]`, '',
    ].join('\n'), PROFILE_DIR ? { command: (configPath) => ({ file: process.execPath, args: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, cliPath, 'start', '-c', configPath], env: { ...process.env, POSTERN_LOG_LEVEL: 'warn' } }) } : {});
    await agent.waitReady(30_000);
    const hostId = await _until(async () => (await deps.presence.listServed('desktop')).find((d) => d.metadata.name === 'bench')?.status.host_id);
    const pid = agent.child.pid!;

    // The agent refuses (503) until it has read the user CAs from auth.
    const identity = _userCertificate(t);
    await _until(async () => (await t.proxy.registry.dial(hostId, 'desktop:bench', identity).then((s) => (s.destroy(), true), () => undefined)));
    const started = performance.now();
    const viewer = new DesktopViewer(await t.proxy.registry.dial(hostId, 'desktop:bench', identity));
    viewer.send({ type: 'connect', login: 'bench', width: WIDTH, height: HEIGHT });
    await _until(() => (viewer.rects > 0 ? true : undefined), 15_000);
    const firstFrameMs = performance.now() - started;
    await desktop.sessionEnv();

    // What the agent burns with the session open and the screen still: tunnel, heartbeats, timers.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const idleBefore = cpuSeconds(pid);
    const idleStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const idleCpu = (cpuSeconds(pid) - idleBefore) / ((performance.now() - idleStart) / 1000);
    // The colour cycle runs inside the session as its user, RATE changes a second.
    const env = await desktop.sessionEnv();
    cycler = spawn('runuser', ['-u', desktop.username, '--', 'env', `DISPLAY=${env.DISPLAY}`, `XAUTHORITY=${env.XAUTHORITY}`, 'sh', '-c',
      // xsetroot in the background: its start-up (~20-40 ms on a loaded machine) must not stretch the period.
      `while :; do for c in ${COLOURS.map((c) => `'${c}'`).join(' ')}; do xsetroot -solid "$c" & sleep ${(1 / RATE).toFixed(3)}; done; done`], { stdio: process.env.BENCH_DESKTOP_DEBUG ? 'inherit' : 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // warm-up

    let changes = 0;
    let last = '';
    let pixels = 0;
    viewer.onRect = (rect) => {
      pixels += rect.width * rect.height;
      const centre = viewer.picture.pixel(WIDTH / 2, HEIGHT / 2).join();
      if (centre !== last) {
        changes++;
        last = centre;
      }
    };
    const cpuBefore = cpuSeconds(pid);
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (cpuSeconds(pid) - cpuBefore) / seconds;
    const fullFrames = pixels / (WIDTH * HEIGHT) / seconds;
    const bytesPerSecond = viewer.rectBytes / (viewer.rects || 1);
    viewer.send({ type: 'close' });
    await Promise.race([viewer.ended$(), new Promise((resolve) => setTimeout(resolve, 3_000))]);
    const baseline = await _xfreerdpCores(desktop, seconds * 1000);
    cycler.kill();

    process.stdout.write(`colour cycle driven at ${RATE}/s (BENCH_DESKTOP_RATE); window ${seconds.toFixed(1)} s at ${WIDTH}x${HEIGHT}; ${viewer.rects} rect frames, mean ${(bytesPerSecond / 1024).toFixed(1)} KiB each\n`);
    process.stdout.write(`colour changes seen at the centre: ${(changes / seconds).toFixed(1)}/s; agent CPU with the session open and the screen still: ${idleCpu.toFixed(3)} cores\n`);
    process.stdout.write(baseline.cores === undefined ? `baseline: ${baseline.why}\n` : `baseline: xfreerdp (FreeRDP 2, native, 24-bit bitmaps like the agent) under Xvfb on the same session and cycle: ${baseline.cores.toFixed(3)} cores\n`);
    process.stdout.write(`desktop: first frame ${firstFrameMs.toFixed(0)} ms; ${fullFrames.toFixed(1)} full-screen frames/s; agent CPU ${cpu.toFixed(2)} cores per session (${(cpu / Math.max(fullFrames, 0.001) * 1000).toFixed(1)} ms per full frame); target >= 10 frames/s under 0.5 core: ${fullFrames >= 10 && cpu < 0.5 ? 'met' : 'NOT met'}${baseline.cores ? `; ${(cpu / baseline.cores).toFixed(1)}x the CPU of xfreerdp` : ''}\n`);
  } finally {
    cycler?.kill();
    // SIGTERM lets a profiled agent write its profile on the way out.
    await (PROFILE_DIR ? agent?.stop() : agent?.kill())?.catch(() => undefined);
    await t.stop();
    await desktop.stop();
    if (agent) rmSync(agent.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU of xfreerdp rendering the same session under Xvfb for `windowMs`, the native baseline. */
async function _xfreerdpCores(desktop: Awaited<ReturnType<typeof startXrdp>>, windowMs: number): Promise<{ cores?: number; why?: string }> {
  if (!existsSync('/usr/bin/xfreerdp') || !existsSync('/usr/bin/Xvfb')) return { why: 'skipped: needs xfreerdp and Xvfb (Debian packages freerdp2-x11, xvfb)' };
  let display = 0;
  do display = 300 + Math.floor(Math.random() * 600); while (existsSync(`/tmp/.X11-unix/X${display}`));
  const xvfb = spawn('/usr/bin/Xvfb', [`:${display}`, '-screen', '0', '1100x800x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
  let client: ReturnType<typeof spawn> | undefined;
  try {
    await _until(() => (existsSync(`/tmp/.X11-unix/X${display}`) ? true : undefined), 10_000);
    client = spawn('/usr/bin/xfreerdp', [`/v:${desktop.host}:${desktop.port}`, `/u:${desktop.username}`, `/p:${desktop.password}`, `/size:${WIDTH}x${HEIGHT}`, '/bpp:24', '/cert:ignore', '/sec:tls'], {
      env: { ...process.env, DISPLAY: `:${display}` }, stdio: 'ignore',
    });
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // connect, log in, warm up
    if (client.exitCode !== null) return { why: `skipped: xfreerdp exited with ${client.exitCode}` };
    const before = cpuSeconds(client.pid!);
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    return { cores: (cpuSeconds(client.pid!) - before) / ((performance.now() - start) / 1000) };
  } finally {
    client?.kill('SIGKILL');
    xvfb.kill('SIGKILL');
  }
}

function _userCertificate(t: Awaited<ReturnType<typeof startTestProxy>>): string {
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ssh = generateKeyPairSync('ed25519');
  const issued = t.auth.server.deps.issuer.issueUser({
    identity: { kind: 'user', username: 'bencher', roles: ['bench-desk'], traits: {}, logins: [], cluster: 'alpha', routeToCluster: 'alpha', mfaVerified: false, bot: false, expires: new Date(Date.now() + 600_000) },
    sshPublicKey: formatAuthorizedKey(ssh.publicKey),
    tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    permit: { pty: false, portForwarding: false, agentForwarding: false },
  });
  return Buffer.from(issued.tlsCertPem).toString('base64');
}

async function _until<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('bench: timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
