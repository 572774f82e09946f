/**
 * `npm run bench -- apps`: HTTP app throughput and latency, and a kubectl round trip.
 *
 * In one run, `wrk -t2 -c32 -d10s --latency` against a Node 'ok' server:
 *   direct       http://127.0.0.1:UP/
 *   haproxy      https://127.0.0.1:HA/ (TLS terminated by haproxy, plain HTTP upstream)
 *   postern      https://web.proxy.localhost:PX/ (browser path: TLS at the proxy, app
 *                session cookie, tunnel to the agent, agent adds the JWT, upstream)
 * wrk cannot present a client certificate, so it uses an app session cookie from the
 * login form; it resolves web.proxy.localhost through a private /etc/hosts (unshare).
 * Each target first gets an unmeasured 2 s wrk pass (the same for all three): connections,
 * tunnel streams and the JIT are warm when the measured run starts, as in a long-running
 * deployment. CPU microseconds per request = utime+stime of the cluster (auth+proxy) and
 * agent processes over the measured Postern run, divided by its requests. Then `kubectl get pods`
 * (10 runs each, median) direct to the API-server fixture and through Postern.
 * Last line: the ratios.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, stopAll, type DaemonProcess } from '../test/fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess } from '../test/fixtures/cluster-process.ts';
import { startKubeApiServer } from '../test/fixtures/kube-apiserver.ts';

const duration = process.env.BENCH_APPS_DURATION ?? '10s';
const domain = 'proxy.localhost';

interface WrkResult {
  rps: number;
  p99Ms: number;
  requests: number;
}

function _ms(text: string): number {
  const match = /([\d.]+)(us|ms|s)/.exec(text);
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

function _wrk(url: string, headers: string[] = [], hostsFile?: string, seconds = duration): WrkResult {
  const args = ['-t2', '-c32', `-d${seconds}`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const out = hostsFile
    ? execFileSync('unshare', ['--mount', 'sh', '-c', `mount --bind ${hostsFile} /etc/hosts && exec wrk "$@"`, 'wrk', ...args], { encoding: 'utf8' })
    : execFileSync('wrk', args, { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p99 = /\s99%\s+(\S+)/.exec(out)?.[1] ?? '';
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`wrk got ${non2xx[1]} error answers from ${url}:\n${out}`);
  return { rps, p99Ms: _ms(p99), requests };
}

function _cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  return (ticks / 100) * 1e6;
}

function _cpuTree(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + _cpuMicros(pid), 0);
}

async function _upstream(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', `require('http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { port, child };
}

async function _haproxy(dir: string, upstreamPort: number): Promise<{ port: number; child: ChildProcess }> {
  const key = path.join(dir, 'ha.key');
  const crt = path.join(dir, 'ha.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  writeFileSync(path.join(dir, 'ha.pem'), readFileSync(crt, 'utf8') + readFileSync(key, 'utf8'));
  const port = await freePort();
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(config, [
    'global', '  maxconn 4096', '  nbthread 1',
    'defaults', '  mode http', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s', '  option http-keep-alive',
    'frontend fe', `  bind 127.0.0.1:${port} ssl crt ${path.join(dir, 'ha.pem')} alpn http/1.1`, '  default_backend be',
    'backend be', `  server up 127.0.0.1:${upstreamPort}`, '',
  ].join('\n'));
  const child = spawn('haproxy', ['-f', config, '-db'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  return { port, child };
}

function _login(port: number, user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams({ user, password, redirect: '/' }).toString();
    const req = https.request({ host: '127.0.0.1', port, servername: `web.${domain}`, method: 'POST', path: '/.postern/login', rejectUnauthorized: false, headers: { host: `web.${domain}:${port}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const cookie = /(__Host-postern_app=[A-Za-z0-9_-]{43})/.exec(String(res.headers['set-cookie'] ?? ''))?.[1];
      res.resume();
      if (cookie) resolve(cookie);
      else reject(new Error(`login answered ${res.statusCode} without a session cookie`));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function _kubectlMedian(kubeconfig: string, runs = 10): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => execFile('kubectl', ['--kubeconfig', kubeconfig, 'get', 'pods'], { timeout: 20_000 }, (error) => (error ? reject(error) : resolve())));
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-apps-'));
  const upstream = await _upstream();
  const haproxy = await _haproxy(dir, upstream.port);
  const kube = await startKubeApiServer();
  const cluster = await startClusterProcess('bench', { proxyYaml: `  app_domain: ${domain}\n`, logLevel: 'info' });
  let agent: DaemonProcess | undefined;
  try {
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('bench-agent', (data, diag) => [
      `data_dir: ${data}`, `diag_addr: ${diag}`, 'agent:', `  proxy_addr: ${cluster.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster.pin}`, '  ssh: { enabled: false }',
      '  apps:', `    - { name: web, uri: "http://127.0.0.1:${upstream.port}" }`,
      '  kube:', '    clusters:', `      - { name: k, api_addr: "${kube.url}", ca_file: "${kube.caFile}", token_file: "${kube.tokenFile}" }`, '',
    ].join('\n'), { logLevel: 'info' });
    await agent.waitReady();
    const home = path.join(dir, 'home');
    await signUpAndLogIn(cluster, home, { name: 'bench', roles: 'access', logins: 'bench', password: 'a long and steady password' });
    for (let i = 0; i < 100; i++) {
      if ((await pshIn(home)(['kube', 'ls'])).stdout.includes(' k ') || (await pshIn(home)(['apps', 'ls'])).stdout.includes('web')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const port = Number(cluster.proxy.split(':')[1]);
    const cookie = await _login(port, 'bench', 'a long and steady password');
    const hosts = path.join(dir, 'hosts');
    writeFileSync(hosts, `127.0.0.1 localhost web.${domain}\n`);

    _wrk(`http://127.0.0.1:${upstream.port}/`, [], undefined, '2s');
    const direct = _wrk(`http://127.0.0.1:${upstream.port}/`);
    _wrk(`https://127.0.0.1:${haproxy.port}/`, [], undefined, '2s');
    const viaHaproxy = _wrk(`https://127.0.0.1:${haproxy.port}/`);
    _wrk(`https://web.${domain}:${port}/`, [`Cookie: ${cookie}`], hosts, '2s');
    const pids = [cluster.daemon.child.pid!, agent.child.pid!];
    const cpuBefore = _cpuTree(pids);
    const proxyBefore = _cpuMicros(pids[0]!);
    const viaPostern = _wrk(`https://web.${domain}:${port}/`, [`Cookie: ${cookie}`], hosts);
    const posternCpu = (_cpuTree(pids) - cpuBefore) / viaPostern.requests;
    const proxyCpu = (_cpuMicros(pids[0]!) - proxyBefore) / viaPostern.requests;

    const directConfig = path.join(dir, 'kube-direct');
    writeFileSync(directConfig, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${kube.url}", certificate-authority: ${kube.caFile}}}]\nusers: [{name: u, user: {token: ${kube.token}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    const posternConfig = path.join(dir, 'kube-postern');
    const login = await pshIn(home)(['kube', 'login', 'k', '--kubeconfig', posternConfig]);
    if (login.code !== 0) throw new Error(login.stderr);
    await _kubectlMedian(posternConfig, 2); // warm the tunnel streams
    const kubeDirect = await _kubectlMedian(directConfig);
    const kubePostern = await _kubectlMedian(posternConfig);

    const row = (name: string, r: WrkResult) => `${name.padEnd(9)} ${r.rps.toFixed(0).padStart(8)} req/s   p99 ${r.p99Ms.toFixed(2).padStart(7)} ms   ratio ${(r.rps / direct.rps).toFixed(2)}`;
    process.stdout.write(`wrk -t2 -c32 -d${duration} --latency against a Node 'ok' server\n`);
    process.stdout.write(`${row('direct', direct)}\n${row('haproxy', viaHaproxy)}\n${row('postern', viaPostern)}\n`);
    process.stdout.write(`postern CPU (auth+proxy and agent processes): ${posternCpu.toFixed(0)} us/request (proxy process ${proxyCpu.toFixed(0)}, agent ${(posternCpu - proxyCpu).toFixed(0)})\n`);
    process.stdout.write(`kubectl get pods, median of 10: direct ${kubeDirect.toFixed(0)} ms, through postern ${kubePostern.toFixed(0)} ms (${(kubePostern / kubeDirect).toFixed(2)}x)\n`);
    process.stdout.write(`apps: postern/direct ${(viaPostern.rps / direct.rps).toFixed(2)}, haproxy/direct ${(viaHaproxy.rps / direct.rps).toFixed(2)}, p99 postern/direct ${(viaPostern.p99Ms / direct.p99Ms).toFixed(1)}x, ${posternCpu.toFixed(0)} us/req; kubectl get postern/direct ${(kubePostern / kubeDirect).toFixed(2)}x\n`);
  } finally {
    await stopAll([agent, cluster.daemon]);
    upstream.child.kill();
    haproxy.child.kill();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
