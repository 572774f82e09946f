/**
 * Reverse-tunnel scale benchmark, on loopback: one real proxy (startProxy) in its own
 * process, in front of a test auth server in this process, and N simulated agents
 * (BENCH_TUNNELS, default 5,000) in BENCH_AGENT_PROCS processes (default 2), each a real
 * TunnelPool with its own host identity holding one reverse tunnel.
 *
 * Measures: the proxy's VmRSS before and after the N idle tunnels (after a forced GC),
 * i.e. KB per idle tunnel; the proxy's CPU (utime+stime from /proc/PID/stat) over an idle
 * window (BENCH_IDLE_S, default 20 s) per tunnel and per keepalive PING it handles; then
 * SIGKILLs the proxy, starts a new one on the same port and times until all N agents are
 * back (the pools' jittered back-off, agent/supervisor/backoff.ts).
 * The last line is the summary against the targets (< 100 KB/tunnel, < 60 s).
 *
 * Standalone: `node_modules/.bin/node bench/tunnel-scale.ts`.
 */
import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestAuth, type TestAuth } from '../test/fixtures/auth.ts';
import { DEFAULT_KEEPALIVE_INTERVAL_MS } from '../protocols/tunnel/settings.ts';
import { seaExecArgv } from '../installers/build.ts';

const N = Number(process.env.BENCH_TUNNELS ?? 5_000);
const PROCS = Math.max(1, Number(process.env.BENCH_AGENT_PROCS ?? 2));
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20);
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const CONNECT_TIMEOUT_MS = 120_000;
const RECONNECT_TIMEOUT_MS = 90_000;

const script = (name: string): string => fileURLToPath(new URL(name, import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const clkTck = ((): number => { try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; } })();

/** Sends `msg` and resolves with the next message that has `key`. */
function _ask<T>(child: ChildProcess, msg: object, key: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', onMessage); reject(new Error(`no "${key}" answer within ${timeoutMs} ms`)); }, timeoutMs);
    const onMessage = (answer: unknown): void => {
      if (answer && typeof answer === 'object' && key in answer) {
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(answer as T);
      }
    };
    child.on('message', onMessage);
    child.send(msg);
  });
}

function _rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** utime + stime of each thread of `pid` by thread name, in ms. */
function _threadCpuMs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, 'N');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName.set(name, (byName.get(name) ?? 0) + ((Number(fields[11]) + Number(fields[12])) * 1000) / clkTck);
    } catch { /* the thread ended */ }
  }
  return byName;
}

/** utime + stime of `pid`, in ms. */
function _cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clkTck;
}

/** CPU ms so far of the proxy, the agent processes and this process (auth). */
function _cpuSplit(proxy: ChildProcess, agents: ChildProcess[]): { proxy: number; agents: number; auth: number } {
  const own = process.cpuUsage();
  return { proxy: _cpuMs(proxy.pid!), agents: agents.reduce((sum, child) => sum + _cpuMs(child.pid!), 0), auth: (own.user + own.system) / 1000 };
}

function _cpuLine(what: string, before: { proxy: number; agents: number; auth: number }, after: { proxy: number; agents: number; auth: number }, n: number, seconds: number): string {
  const per = (key: 'proxy' | 'agents' | 'auth'): string => `${key} ${((after[key] - before[key]) / n).toFixed(2)} ms (${((after[key] - before[key]) / seconds / 10).toFixed(0)}% core)`;
  return `  CPU per ${what}: ${per('proxy')}, ${per('agents')}, ${per('auth')} (2 cores shared by all)`;
}

async function _startProxy(auth: TestAuth, port: number): Promise<{ child: ChildProcess; port: number }> {
  const identity = auth.server.issueHostIdentity({ hostId: 'proxy-1', nodeName: 'proxy-1', systemRoles: ['proxy'], ttlMs: 3_600_000, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  // The V8 flags the packaged binary runs every program with (its SEA execArgv), so the
  // proxy's memory is what a deployed proxy's would be.
  const child = fork(script('./tunnel-scale-proxy.ts'), [], { execArgv: [...process.execArgv, ...seaExecArgv, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = _ask<{ port: number }>(child, { identity, authAddr: auth.server.address, listenAddr: `127.0.0.1:${port}` }, 'ready');
  return { child, port: (await ready).port };
}

interface ProxyCount { count: number; hosts: number; adds: number; rejected: Record<string, number> }
const _rejected = (c: ProxyCount): string => Object.entries(c.rejected).map(([why, n]) => `${why} ${n}`).join(', ') || 'none';
function _proxyCount(proxy: ChildProcess): Promise<ProxyCount> {
  return _ask<ProxyCount>(proxy, { type: 'count' }, 'count');
}

async function _agentsUp(agents: ChildProcess[]): Promise<{ up: number; ups: number }> {
  const counts = await Promise.all(agents.map((child) => _ask<{ up: number; ups: number }>(child, { type: 'count' }, 'up')));
  return { up: counts.reduce((sum, c) => sum + c.up, 0), ups: counts.reduce((sum, c) => sum + c.ups, 0) };
}

async function _gcRss(proxy: ChildProcess): Promise<number> {
  await _ask(proxy, { type: 'gc' }, 'gc');
  return _rssKb(proxy.pid!);
}

/** Polls until the proxy holds `n` tunnels; resolves with the ms it took, or rejects on timeout. */
async function _waitForTunnels(proxy: ChildProcess, agents: ChildProcess[], n: number, timeoutMs: number, progress: (count: number, ms: number) => void): Promise<number> {
  const started = performance.now();
  let lastReport = 0;
  for (;;) {
    // Distinct hosts at the proxy (a stale twin of a reconnected host does not count), and every agent's link up.
    const count = (await _proxyCount(proxy)).hosts;
    const ms = performance.now() - started;
    if (count >= n && (await _agentsUp(agents)).up >= n) return ms;
    if (ms - lastReport >= 5_000) { progress(count, ms); lastReport = ms; }
    if (ms > timeoutMs) throw new Error(`only ${count} of ${n} tunnels after ${(ms / 1000).toFixed(1)} s`);
    await sleep(100);
  }
}

/** Runs the benchmark and prints its figures; the last line is the summary. */
export async function run(): Promise<void> {
  const auth = await startTestAuth({ clusterName: 'alpha' });
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-tunnel-scale-'));
  const agents: ChildProcess[] = [];
  let proxy: ChildProcess | undefined;
  try {
    let started = performance.now();
    const hosts = Array.from({ length: N }, (_, i) => {
      const hostId = `bench-node-${i}`;
      const id = auth.server.issueHostIdentity({ hostId, nodeName: hostId, systemRoles: ['node'], ttlMs: 3_600_000 });
      return { host_id: hostId, cert_pem: id.cert_pem, key_pem: id.key_pem };
    });
    const caPems = auth.server.issueHostIdentity({ hostId: 'ca-probe', nodeName: 'ca-probe', systemRoles: ['node'], ttlMs: 60_000 }).ca_pems;
    const file = path.join(dir, 'identities.json');
    writeFileSync(file, JSON.stringify({ ca_pems: caPems, hosts }));
    console.log(`${N} host identities issued in ${((performance.now() - started) / 1000).toFixed(1)} s; ${PROCS} agent processes, proxy in its own process (pid below), auth in the bench process`);

    const first = await _startProxy(auth, 0);
    proxy = first.child;
    const port = first.port;
    await sleep(1_000);
    const rssBefore = await _gcRss(proxy);
    const baseCpu0 = _cpuMs(proxy.pid!);
    await sleep(5_000);
    const baseCpuMsPerS = (_cpuMs(proxy.pid!) - baseCpu0) / 5;
    console.log(`proxy pid ${proxy.pid} on 127.0.0.1:${port}: VmRSS ${(rssBefore / 1024).toFixed(1)} MiB with no tunnels; idle CPU ${baseCpuMsPerS.toFixed(2)} ms/s`);

    started = performance.now();
    const connectCpu = { proxy: _cpuMs(proxy.pid!), agents: 0, auth: (process.cpuUsage().user + process.cpuUsage().system) / 1000 };
    const per = Math.ceil(N / PROCS);
    for (let p = 0; p < PROCS && p * per < N; p++) {
      const count = Math.min(per, N - p * per);
      // Raise the descriptor limit as far as the hard limit allows (a shell builtin).
      const child = fork(script('./tunnel-scale-agents.ts'), [file, String(p * per), String(count), `127.0.0.1:${port}`], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execPath: '/bin/bash',
        execArgv: ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, ...process.execArgv],
      });
      agents.push(child);
    }
    const connectMs = await _waitForTunnels(proxy, agents, N, CONNECT_TIMEOUT_MS, (count, ms) => console.log(`  ... ${count} tunnels after ${(ms / 1000).toFixed(0)} s`));
    console.log(`${N} tunnels up in ${(connectMs / 1000).toFixed(1)} s (agents ramped 100 per 50 ms per process), ${(N / (connectMs / 1000)).toFixed(0)}/s`);
    const afterConnect = await _proxyCount(proxy);
    console.log(`  the proxy accepted ${afterConnect.adds} tunnels for ${N} agents; connections it dropped: ${_rejected(afterConnect)}`);
    console.log(_cpuLine('tunnel set-up', connectCpu, _cpuSplit(proxy, agents), N, connectMs / 1000));

    await sleep(3_000);
    const rssAfter = await _gcRss(proxy);
    const kbPerTunnel = (rssAfter - rssBefore) / N;
    console.log(`proxy VmRSS ${(rssAfter / 1024).toFixed(1)} MiB with ${N} idle tunnels (after GC): +${((rssAfter - rssBefore) / 1024).toFixed(1)} MiB, ${kbPerTunnel.toFixed(1)} KB per idle tunnel (target < 100 KB)`);

    if (PROFILE_DIR) await _ask(proxy, { type: 'profile-start' }, 'profiling');
    const cpu0 = _cpuMs(proxy.pid!);
    const threads0 = _threadCpuMs(proxy.pid!);
    const count0 = await _proxyCount(proxy);
    const agents0 = await _agentsUp(agents);
    const t0 = performance.now();
    await sleep(IDLE_S * 1000);
    const cpuMs = _cpuMs(proxy.pid!) - cpu0;
    const threads = [..._threadCpuMs(proxy.pid!)].map(([name, ms]) => [name, ms - (threads0.get(name) ?? 0)] as const).filter(([, ms]) => ms > 0).sort((x, y) => y[1] - x[1]);
    const count1 = await _proxyCount(proxy);
    const agents1 = await _agentsUp(agents);
    if (PROFILE_DIR) console.log(`  idle profile: ${(await _ask<{ profiled: string }>(proxy, { type: 'profile-stop', file: path.join(PROFILE_DIR, 'proxy-idle.cpuprofile') }, 'profiled')).profiled}`);
    const seconds = (performance.now() - t0) / 1000;
    const tunnelCpuMs = Math.max(0, cpuMs - baseCpuMsPerS * seconds);
    // Each end of every tunnel PINGs every DEFAULT_KEEPALIVE_INTERVAL_MS: the proxy sends one and ACKs one per interval.
    const pings = (2 * N * seconds * 1000) / DEFAULT_KEEPALIVE_INTERVAL_MS;
    console.log(`proxy CPU over ${seconds.toFixed(1)} s idle: ${cpuMs.toFixed(0)} ms (${(cpuMs / seconds / 10).toFixed(2)}% of a core); minus the no-tunnel baseline ${tunnelCpuMs.toFixed(0)} ms`);
    console.log(`  by thread: ${threads.map(([name, ms]) => `${name} ${ms.toFixed(0)} ms`).join(', ')}`);
    console.log(`  tunnels accepted by the proxy during the idle window: ${count1.adds - count0.adds}; agent 'up' events: ${agents1.ups - agents0.ups}; proxy holds ${count1.count} tunnels for ${count1.hosts} hosts`);
    console.log(`  = ${((tunnelCpuMs * 1000) / N / seconds).toFixed(2)} us CPU per tunnel-second; ~${pings.toFixed(0)} keepalive PINGs (sent + answered, ${DEFAULT_KEEPALIVE_INTERVAL_MS / 1000} s interval each way): ${((tunnelCpuMs * 1000) / pings).toFixed(1)} us per keepalive (clock ${clkTck} Hz)`);

    const killCpu = _cpuSplit(proxy, agents);
    killCpu.proxy = 0;
    const killedAt = performance.now();
    proxy.kill('SIGKILL');
    await once(proxy, 'exit');
    const second = await _startProxy(auth, port);
    proxy = second.child;
    if (PROFILE_DIR) await _ask(proxy, { type: 'profile-start' }, 'profiling');
    const restartMs = performance.now() - killedAt;
    const backMs = await _waitForTunnels(proxy, agents, N, RECONNECT_TIMEOUT_MS, (count, ms) => {
      console.log(`  ... ${count} reconnected ${((ms + restartMs) / 1000).toFixed(0)} s after the kill`);
      if (process.env.BENCH_WHY) {
        void Promise.all(agents.map((child) => _ask<{ why: Record<string, number> }>(child, { type: 'why' }, 'why'))).then((answers) => {
          const why: Record<string, number> = {};
          for (const answer of answers) for (const [key, n] of Object.entries(answer.why)) why[key] = (why[key] ?? 0) + n;
          console.log(`      not up: ${Object.entries(why).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([key, n]) => `${n} ${key}`).join('; ')}`);
        });
      }
    });
    const totalS = (restartMs + backMs) / 1000;
    if (PROFILE_DIR) console.log(`  reconnect profile: ${(await _ask<{ profiled: string }>(proxy, { type: 'profile-stop', file: path.join(PROFILE_DIR, 'proxy-reconnect.cpuprofile') }, 'profiled', 60_000)).profiled}`);
    const { up } = await _agentsUp(agents);
    console.log(`proxy SIGKILLed and restarted on port ${port} (listening after ${(restartMs / 1000).toFixed(1)} s); all ${N} tunnels back ${totalS.toFixed(1)} s after the kill, ${(backMs / 1000).toFixed(1)} s after the new proxy listened (agents report ${up} up)`);
    const afterReconnect = await _proxyCount(proxy);
    console.log(`  the restarted proxy accepted ${afterReconnect.adds} tunnels for ${N} agents; connections it dropped: ${_rejected(afterReconnect)}`);
    console.log(_cpuLine('reconnect', killCpu, _cpuSplit(proxy, agents), N, totalS));
    const rssRestart = await _gcRss(proxy);
    console.log(`restarted proxy VmRSS ${(rssRestart / 1024).toFixed(1)} MiB with ${N} tunnels`);
    console.log(`tunnel scale: ${N} tunnels, ${kbPerTunnel.toFixed(0)} KB/tunnel, ${((tunnelCpuMs * 1000) / pings).toFixed(0)} us CPU/keepalive, all reconnected in ${totalS.toFixed(1)} s (targets < 100 KB, < 60 s)`);
  } finally {
    proxy?.kill('SIGKILL');
    for (const child of agents) child.kill('SIGKILL');
    await auth.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
