/**
 * `npm run bench -- apps`: HTTP app throughput and latency, and a kubectl round trip.
 *
 * In one run, `wrk -t2 -c32 -d10s --latency` against a Node 'ok' server:
 *   direct       http://127.0.0.1:UP/
 *   haproxy      https://127.0.0.1:HA/ (TLS terminated by haproxy, plain HTTP upstream)
 *   Node hop     Node's https server + keep-alive http client in one process (the issue's
 *                "bare Node http-proxy hop")
 *   relay pair   two Node processes piping bytes, TLS from the client and TLS between them
 *                (as Postern's tunnel): the least a two-process Node design does per request
 *   postern      https://web.proxy.localhost:PX/ (browser path: TLS at the proxy, app
 *                session cookie, tunnel to the agent, agent adds the JWT, upstream)
 * and one row with HTTP/2 clients, as browsers connect: `h2load -c32 -m1 -D10s` against
 * Postern (one request at a time per connection, like wrk's); its p99 comes from h2load's
 * per-request log (--log-file), the time from each request's start to its answer's end.
 * wrk cannot present a client certificate, so it uses an app session cookie from the
 * login form; it resolves web.proxy.localhost through a private /etc/hosts (unshare);
 * h2load connects with --connect-to.
 * Each target first gets an unmeasured 2 s pass (the same for all of them): connections,
 * tunnel streams and the JIT are warm when the measured run starts, as in a long-running
 * deployment. CPU microseconds per request = utime+stime of the processes between wrk and
 * the server (Postern: the cluster's auth+proxy and the agent) over the measured run,
 * divided by its requests; the baselines also show how this machine compares with the
 * one the issue's figures come from. Then `kubectl get pods`
 * (10 runs each, median) direct to the API-server fixture and through Postern.
 * Postern's cluster and agent run from the built binary as they ship (built first when
 * stale; its V8 flags change the CPU they spend) unless `APPS_BENCH_FROM_SOURCE=1`;
 * `APPS_BENCH_PROFILE=DIR` writes CPU profiles of both processes there (from source).
 * Last line: the ratios.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureBinary } from '../test/fixtures/binary.ts';
import { freePort, fromBinary, startDaemon, stopAll, type DaemonProcess } from '../test/fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess } from '../test/fixtures/cluster-process.ts';
import { startKubeApiServer } from '../test/fixtures/kube-apiserver.ts';
import { cpuSeconds } from './cpu.ts';

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

/**
 * `h2load -c32 -m1 -D<seconds>` with the session cookie; every answer must be 2xx. p99 is
 * read from its per-request log (h2load itself prints only min, max, mean and sd).
 */
function _h2load(url: string, cookie: string, connectTo: string, dir: string, seconds = duration): WrkResult {
  const log = path.join(dir, 'h2load.log');
  const out = execFileSync('h2load', ['-c32', '-m1', '-D', seconds, '--connect-to', connectTo, '-H', `cookie: ${cookie}`, '--log-file', log, url], { encoding: 'utf8' });
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
  const succeeded = Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(out)?.[1]);
  const ok = Number(/status codes: (\d+) 2xx/.exec(out)?.[1]);
  // Status codes count answers to requests still in flight when the time is up, too.
  if (!/Application protocol: h2/.test(out) || !(succeeded > 0) || !(ok >= succeeded) || !/ 0 3xx, 0 4xx, 0 5xx/.test(out) || !/ 0 failed, 0 errored/.test(out)) throw new Error(`h2load got failures or error answers from ${url}:\n${out}`);
  const micros = readFileSync(log, 'utf8').trim().split('\n').map((line) => Number(line.split('\t')[2])).sort((a, b) => a - b);
  rmSync(log);
  return { rps, p99Ms: micros[Math.min(micros.length - 1, Math.floor(micros.length * 0.99))]! / 1000, requests: succeeded };
}

/** CPU microseconds `pids` spent while `work` ran, per request it made. */
function _measured<T extends WrkResult>(pids: readonly number[], work: () => T): T & { cpuUs: number[] } {
  const before = pids.map(cpuSeconds);
  const result = work();
  return { ...result, cpuUs: pids.map((pid, i) => ((cpuSeconds(pid) - before[i]!) * 1e6) / result.requests) };
}

async function _upstream(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', `require('http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { port, child };
}

/** A P-256 key and self-signed certificate for the baselines' TLS (files in `dir`). */
function _selfSigned(dir: string): { key: string; crt: string } {
  const key = path.join(dir, 'baseline.key');
  const crt = path.join(dir, 'baseline.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return { key, crt };
}

/** A Node process running `script` (CommonJS, `PORT` and `ARGS` defined) that prints once it listens. */
async function _nodeProcess(script: string, args: unknown): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', `const PORT = ${port}; const ARGS = ${JSON.stringify(args)};\n${script}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { port, child };
}

/**
 * The issue's yardstick "a bare Node http-proxy hop": Node's HTTPS server and a keep-alive
 * HTTP client, nothing else (no auth, no rewriting), in one process.
 */
function _nodeHop(tlsFiles: { key: string; crt: string }, upstreamPort: number): Promise<{ port: number; child: ChildProcess }> {
  return _nodeProcess(`
    const fs = require('fs'), http = require('http'), https = require('https');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    https.createServer({ key: fs.readFileSync(ARGS.key), cert: fs.readFileSync(ARGS.crt) }, (req, res) => {
      const up = http.request({ host: '127.0.0.1', port: ARGS.upstream, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    }).listen(PORT, '127.0.0.1', () => console.log('up'));`, { ...tlsFiles, upstream: upstreamPort });
}

/**
 * The least two Node processes can do on Postern's path: TLS from the client ends in the
 * first, bytes are piped over TLS (Postern's tunnel is encrypted too) to the second and over
 * plain TCP to the upstream; a connection per client connection, no parsing, no HTTP/2
 * multiplexing, no checks.
 */
async function _nodeRelayPair(tlsFiles: { key: string; crt: string }, upstreamPort: number): Promise<{ port: number; children: ChildProcess[] }> {
  const relay = (next: number, nextTls: boolean) => `
    const net = require('net'), tls = require('tls'), fs = require('fs');
    const files = ARGS;
    tls.createServer({ key: fs.readFileSync(files.key), cert: fs.readFileSync(files.crt) }, (client) => {
      const up = ${nextTls ? `tls.connect({ host: '127.0.0.1', port: ${next}, ca: fs.readFileSync(files.crt), checkServerIdentity: () => undefined })` : `net.connect({ host: '127.0.0.1', port: ${next} })`};
      up.setNoDelay(true);
      client.setNoDelay(true);
      client.pipe(up).pipe(client);
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
    }).listen(PORT, '127.0.0.1', () => console.log('up'));`;
  const second = await _nodeProcess(relay(upstreamPort, false), tlsFiles);
  const first = await _nodeProcess(relay(second.port, true), tlsFiles);
  return { port: first.port, children: [first.child, second.child] };
}

async function _haproxy(dir: string, tlsFiles: { key: string; crt: string }, upstreamPort: number): Promise<{ port: number; child: ChildProcess }> {
  writeFileSync(path.join(dir, 'ha.pem'), readFileSync(tlsFiles.crt, 'utf8') + readFileSync(tlsFiles.key, 'utf8'));
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
  const tlsFiles = _selfSigned(dir);
  const haproxy = await _haproxy(dir, tlsFiles, upstream.port);
  const nodeHop = await _nodeHop(tlsFiles, upstream.port);
  const relayPair = await _nodeRelayPair(tlsFiles, upstream.port);
  const kube = await startKubeApiServer();
  const profileDir = process.env.APPS_BENCH_PROFILE;
  if (profileDir) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profileDir}`;
  const binary = process.env.APPS_BENCH_FROM_SOURCE === '1' || profileDir ? undefined : await ensureBinary();
  const command = binary ? fromBinary(binary, 'info') : undefined;
  process.stdout.write(`Postern ${binary ? `from the binary ${path.relative(process.cwd(), binary)}` : 'from source'}\n`);
  const cluster = await startClusterProcess('bench', { proxyYaml: `  app_domain: ${domain}\n`, logLevel: 'info', command });
  let agent: DaemonProcess | undefined;
  try {
    const token = (JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout) as { token: string }).token;
    agent = await startDaemon('bench-agent', (data, diag) => [
      `data_dir: ${data}`, `diag_addr: ${diag}`, 'agent:', `  proxy_addr: ${cluster.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster.pin}`, '  ssh: { enabled: false }',
      '  apps:', `    - { name: web, uri: "http://127.0.0.1:${upstream.port}" }`,
      '  kube:', '    clusters:', `      - { name: k, api_addr: "${kube.url}", ca_file: "${kube.caFile}", token_file: "${kube.tokenFile}" }`, '',
    ].join('\n'), { logLevel: 'info', command });
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

    // Each target: an unmeasured 2 s pass, then the measured run.
    const measure = (url: string, pids: readonly number[], headers: string[] = [], hostsFile?: string) => {
      _wrk(url, headers, hostsFile, '2s');
      return _measured(pids, () => _wrk(url, headers, hostsFile));
    };
    const direct = measure(`http://127.0.0.1:${upstream.port}/`, [upstream.child.pid!]);
    const viaHaproxy = measure(`https://127.0.0.1:${haproxy.port}/`, [haproxy.child.pid!]);
    const viaNodeHop = measure(`https://127.0.0.1:${nodeHop.port}/`, [nodeHop.child.pid!]);
    const viaRelays = measure(`https://127.0.0.1:${relayPair.port}/`, relayPair.children.map((child) => child.pid!));
    const viaPostern = measure(`https://web.${domain}:${port}/`, [cluster.daemon.child.pid!, agent.child.pid!], [`Cookie: ${cookie}`], hosts);
    const posternCpu = viaPostern.cpuUs[0]! + viaPostern.cpuUs[1]!;
    _h2load(`https://web.${domain}:${port}/`, cookie, `127.0.0.1:${port}`, dir, '2s');
    const viaPosternH2 = _measured([cluster.daemon.child.pid!, agent.child.pid!], () => _h2load(`https://web.${domain}:${port}/`, cookie, `127.0.0.1:${port}`, dir));
    const posternH2Cpu = viaPosternH2.cpuUs[0]! + viaPosternH2.cpuUs[1]!;

    const directConfig = path.join(dir, 'kube-direct');
    writeFileSync(directConfig, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${kube.url}", certificate-authority: ${kube.caFile}}}]\nusers: [{name: u, user: {token: ${kube.token}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    const posternConfig = path.join(dir, 'kube-postern');
    const login = await pshIn(home)(['kube', 'login', 'k', '--kubeconfig', posternConfig]);
    if (login.code !== 0) throw new Error(login.stderr);
    await _kubectlMedian(posternConfig, 2); // warm the tunnel streams
    const kubeDirect = await _kubectlMedian(directConfig);
    const kubePostern = await _kubectlMedian(posternConfig);

    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const row = (name: string, r: WrkResult & { cpuUs: number[] }) =>
      `${name.padEnd(24)} ${r.rps.toFixed(0).padStart(8)} req/s   p99 ${r.p99Ms.toFixed(2).padStart(7)} ms   ratio ${(r.rps / direct.rps).toFixed(2)}   CPU ${sum(r.cpuUs).toFixed(0).padStart(4)} us/req`;
    process.stdout.write(`wrk -t2 -c32 -d${duration} --latency against a Node 'ok' server; CPU: what the processes between wrk and the server spent (direct: the server itself)\n`);
    process.stdout.write(`${row('direct', direct)}\n${row('haproxy (TLS)', viaHaproxy)}\n${row('Node https hop', viaNodeHop)}\n${row('Node TLS relay pair', viaRelays)}\n${row('postern', viaPostern)}\n`);
    process.stdout.write(`${row('postern HTTP/2 (h2load)', viaPosternH2)}   (h2load -c32 -m1 -D${duration}; p99 from its per-request log)\n`);
    process.stdout.write(`postern CPU: proxy process (with auth) ${viaPostern.cpuUs[0]!.toFixed(0)} us/req, agent ${viaPostern.cpuUs[1]!.toFixed(0)} us/req; HTTP/2: proxy ${viaPosternH2.cpuUs[0]!.toFixed(0)} us/req, agent ${viaPosternH2.cpuUs[1]!.toFixed(0)} us/req\n`);
    // The issue's figures come from another machine (haproxy 40 us/req, a bare Node hop 98):
    // how this one compares, by each yardstick. They disagree, so targets are compared as is.
    process.stdout.write(`this machine vs the issue's: haproxy ${(sum(viaHaproxy.cpuUs) / 40).toFixed(2)}x its CPU per request, a Node hop ${(sum(viaNodeHop.cpuUs) / 98).toFixed(2)}x\n`);
    process.stdout.write(`kubectl get pods, median of 10: direct ${kubeDirect.toFixed(0)} ms, through postern ${kubePostern.toFixed(0)} ms (${(kubePostern / kubeDirect).toFixed(2)}x)\n`);
    process.stdout.write(`apps: postern/direct ${(viaPostern.rps / direct.rps).toFixed(2)}, haproxy/direct ${(viaHaproxy.rps / direct.rps).toFixed(2)}, Node hop/direct ${(viaNodeHop.rps / direct.rps).toFixed(2)}, p99 postern/direct ${(viaPostern.p99Ms / direct.p99Ms).toFixed(1)}x, ${posternCpu.toFixed(0)} us/req (${(posternCpu / sum(viaNodeHop.cpuUs)).toFixed(2)}x a Node hop's, ${(posternCpu / sum(viaRelays.cpuUs)).toFixed(2)}x a Node relay pair's), HTTP/2 ${posternH2Cpu.toFixed(0)} us/req; kubectl get postern/direct ${(kubePostern / kubeDirect).toFixed(2)}x\n`);
  } finally {
    if (profileDir) {
      // SIGTERM: the processes exit on their own and write their profiles.
      delete process.env.NODE_OPTIONS;
      await agent?.stop();
      await cluster.daemon.stop();
    }
    await stopAll([agent, cluster.daemon]);
    for (const child of [upstream.child, haproxy.child, nodeHop.child, ...relayPair.children]) child.kill();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
