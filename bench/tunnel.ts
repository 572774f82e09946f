/**
 * Reverse-tunnel benchmark, on loopback, in one run:
 *  (a) one 512 MiB stream proxy -> TLS -> agent (HTTP/2 server) -> sink, against a direct
 *      TLS connection from the same process to a sink in the same agent process;
 *  (b) stream-open latency: sequential dials until the agent's 200, p50/p99.
 * Also: the other direction (agent -> proxy, against a direct TLS download), the upload
 * forwarded by the agent to a TCP sink in a third process (what a protocol service does;
 * a third process on 2 cores), and CPU per MiB of the proxy and agent processes.
 * The last line is the upload throughput ratio.
 *
 * Standalone: `node_modules/.bin/node bench/tunnel.ts`; `TUNNEL_WINDOW=<bytes>` overrides the window.
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ALPN } from '../protocols/mux/alpn.ts';
import { PortRouter } from '../protocols/mux/port-router.ts';
import { ProxyTunnel } from '../protocols/tunnel/proxy-tunnel.ts';
import { createTestPki, type TestPki } from '../protocols/tunnel/testdata/test-pki.ts';

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.TUNNEL_BYTES ?? 512 * MiB);
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
const ROUNDS = Number(process.env.TUNNEL_ROUNDS ?? 3);
/** `TUNNEL_DOWN_ONLY=1`: only the download pair (direct TLS source, tunnel source), for quick comparisons. */
const DOWN_ONLY = process.env.TUNNEL_DOWN_ONLY === '1';
const DIALS = 2_000;

interface Agent { child: ChildProcess; target: ChildProcess; directPort: number; directSourcePort: number }
interface Run { mbps: number; cpuUsPerMiB: number; senderUsPerMiB: number; agentUsPerMiB: number }

async function _startProxy(pki: TestPki, windowSize: number | undefined): Promise<{ port: number; tunnel: Promise<ProxyTunnel>; server: net.Server }> {
  const router = new PortRouter({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
  const tunnel = new Promise<ProxyTunnel>((resolve) => {
    router.route(ALPN.tunnel, (socket) => resolve(new ProxyTunnel(socket, { windowSize })), { requireClientCert: true });
  });
  const server = net.createServer({ allowHalfOpen: true }, router.accept);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, tunnel, server };
}

async function _forkAgent(port: number, pki: TestPki, windowSize: number | undefined): Promise<Agent> {
  const script = (name: string): string => fileURLToPath(new URL(name, import.meta.url));
  const options: ForkOptions = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] };
  // For profiling: `TUNNEL_AGENT_ARGS='--cpu-prof'` and the like, for the agent process only.
  const agentOptions: ForkOptions = { ...options, execArgv: [...process.execArgv, ...(process.env.TUNNEL_AGENT_ARGS?.split(' ').filter(Boolean) ?? [])] };
  const target = fork(script('./tunnel-target.ts'), [], options);
  const [{ port: targetPort }] = (await once(target, 'message')) as [{ port: number }];
  const args = [String(port), String(targetPort), pki.dir, windowSize ? String(windowSize) : '', String(TOTAL)];
  const child = fork(script('./tunnel-agent.ts'), args, agentOptions);
  if (process.env.TUNNEL_AGENT_ARGS) console.log(`agent pid ${child.pid}`);
  const [msg] = (await once(child, 'message')) as [{ directPort: number; directSourcePort: number }];
  return { child, target, ...msg };
}

function _childCpu(child: ChildProcess): Promise<number> {
  child.send({ type: 'cpu' });
  return once(child, 'message').then(([msg]) => {
    const usage = (msg as { usage: NodeJS.CpuUsage }).usage;
    return usage.user + usage.system;
  });
}

/** Writes TOTAL bytes with backpressure, ends, and returns the byte count the sink reports. */
async function _sendAndConfirm(stream: Duplex): Promise<number> {
  const reply: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => reply.push(chunk));
  const ended = once(stream, 'end');
  for (let sent = 0; sent < TOTAL; sent += CHUNK.length) {
    if (!stream.write(CHUNK)) await once(stream, 'drain');
  }
  stream.end();
  await ended;
  return Number(String(Buffer.concat(reply)));
}

/** Ends its side at once and counts what the source sends back. */
async function _receiveAll(stream: Duplex): Promise<number> {
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => { bytes += chunk.length; });
  const ended = once(stream, 'end');
  stream.end();
  await ended;
  return bytes;
}

async function _measure(agent: Agent, open: () => Promise<Duplex>, transfer = _sendAndConfirm): Promise<Run> {
  const stream = await open();
  const cpuParent = process.cpuUsage();
  const cpuChild = await _childCpu(agent.child);
  const started = process.hrtime.bigint();
  const received = await transfer(stream);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const parent = process.cpuUsage(cpuParent);
  const child = (await _childCpu(agent.child)) - cpuChild;
  if (received !== TOTAL) throw new Error(`received ${received} bytes, expected ${TOTAL}`);
  const mib = TOTAL / MiB;
  const own = parent.user + parent.system;
  return { mbps: TOTAL / 1e6 / seconds, cpuUsPerMiB: (own + child) / mib, senderUsPerMiB: own / mib, agentUsPerMiB: child / mib };
}

async function _direct(pki: TestPki, port: number): Promise<Duplex> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.cert });
  await once(socket, 'secureConnect');
  socket.setNoDelay(true);
  return socket;
}

async function _dialLatency(tunnel: ProxyTunnel): Promise<{ p50: number; p99: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < DIALS + 100; i++) {
    const started = process.hrtime.bigint();
    const stream = await tunnel.dial('noop', 'bench-user');
    if (i >= 100) times.push(Number(process.hrtime.bigint() - started) / 1e6); // first 100 warm up
    stream.resume();
    stream.end();
  }
  times.sort((x, y) => x - y);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: times[times.length - 1]! };
}

function _median(runs: Run[]): Run {
  const sorted = [...runs].sort((x, y) => x.mbps - y.mbps);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Runs the benchmark and prints its figures; the last line is the throughput ratio. */
export async function run(): Promise<void> {
  const windowSize = process.env.TUNNEL_WINDOW ? Number(process.env.TUNNEL_WINDOW) : undefined;
  const pki = await createTestPki();
  const proxy = await _startProxy(pki, windowSize);
  const agent = await _forkAgent(proxy.port, pki, windowSize);
  const tunnel = await proxy.tunnel;
  try {
    const direct: Run[] = [];
    const tunnelled: Run[] = [];
    const forwarded: Run[] = [];
    const directDown: Run[] = [];
    const tunnelledDown: Run[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (DOWN_ONLY) {
        directDown.push(await _measure(agent, () => _direct(pki, agent.directSourcePort), _receiveAll));
        tunnelledDown.push(await _measure(agent, () => tunnel.dial('source', 'bench-user'), _receiveAll));
        continue;
      }
      direct.push(await _measure(agent, () => _direct(pki, agent.directPort)));
      tunnelled.push(await _measure(agent, () => tunnel.dial('sink', 'bench-user')));
      forwarded.push(await _measure(agent, () => tunnel.dial('tcp-sink', 'bench-user')));
      directDown.push(await _measure(agent, () => _direct(pki, agent.directSourcePort), _receiveAll));
      tunnelledDown.push(await _measure(agent, () => tunnel.dial('source', 'bench-user'), _receiveAll));
    }
    if (DOWN_ONLY) {
      const line = (name: string, r: Run): string => `${name.padEnd(24)} ${r.mbps.toFixed(0).padStart(5)} MB/s  ${r.cpuUsPerMiB.toFixed(0).padStart(5)} us CPU/MiB (receiver ${r.senderUsPerMiB.toFixed(0)} + agent ${r.agentUsPerMiB.toFixed(0)})`;
      for (let i = 0; i < ROUNDS; i++) console.log(`${line('direct TLS <- source', directDown[i]!)}\n${line('tunnel <- agent source', tunnelledDown[i]!)}`);
      console.log(`download ratio (median): ${(_median(tunnelledDown).mbps / _median(directDown).mbps).toFixed(2)}`);
      return;
    }
    const d = _median(direct);
    const t = _median(tunnelled);
    const f = _median(forwarded);
    const dd = _median(directDown);
    const td = _median(tunnelledDown);
    const latency = await _dialLatency(tunnel);
    const mib = Math.round(TOTAL / MiB);
    const line = (name: string, r: Run): string => `${name.padEnd(38)} ${r.mbps.toFixed(0).padStart(5)} MB/s  ${r.cpuUsPerMiB.toFixed(0).padStart(5)} us CPU/MiB (sender + agent process: ${r.senderUsPerMiB.toFixed(0)} + ${r.agentUsPerMiB.toFixed(0)})`;
    console.log(`one ${mib} MiB stream, loopback, median of ${ROUNDS}; window ${windowSize ?? 'default'}`);
    console.log(line('direct TLS -> sink', d));
    console.log(line('tunnel -> agent sink', t));
    console.log(line('tunnel -> agent -> TCP target process', f));
    console.log(line('direct TLS <- source', dd));
    console.log(line('tunnel <- agent source', td));
    console.log(`download (agent -> proxy) ratio: ${(td.mbps / dd.mbps).toFixed(2)}`);
    console.log(`tunnel forwarded to a TCP target vs direct TLS: ${(f.mbps / d.mbps).toFixed(2)} (a third process on 2 cores; cf. a bare Node TCP hop ~0.45 of plain TCP)`);
    console.log(`stream open (dial until 200), ${DIALS} sequential: p50 ${latency.p50.toFixed(3)} ms, p99 ${latency.p99.toFixed(3)} ms, max ${latency.max.toFixed(3)} ms (target p99 < 5 ms)`);
    console.log(`tunnel throughput ratio: ${(t.mbps / d.mbps).toFixed(2)} (target >= 0.8)`);
  } finally {
    await tunnel.close();
    agent.child.kill();
    agent.target.kill();
    proxy.server.close();
    await pki.cleanup();
  }
}

if (import.meta.main) await run();
