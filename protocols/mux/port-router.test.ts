import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createTestPki, type TestPki } from '../tunnel/testdata/test-pki.ts';
import { ALPN } from './alpn.ts';
import { PortRouter, type PortRouterOptions } from './port-router.ts';

const run = promisify(execFile);
let pki: TestPki;

before(async () => { pki = await createTestPki(); });
after(async () => { await pki.cleanup(); });

interface Harness { router: PortRouter; port: number; close(): Promise<void> }
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function _start(options: Partial<PortRouterOptions>, setup: (router: PortRouter) => void): Promise<Harness> {
  const router = new PortRouter({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }, ...options });
  setup(router);
  const server = net.createServer({ allowHalfOpen: true }, router.accept);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  let closed = false;
  const harness: Harness = {
    router,
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      if (closed) return;
      closed = true;
      router.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  harnesses.push(harness);
  return harness;
}

function _echo(socket: net.Socket): void {
  socket.pipe(socket);
}

function _tlsConnect(port: number, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.cert, ...options });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function _roundTrip(socket: net.Socket, text: string): Promise<string> {
  socket.write(text);
  const [data] = (await once(socket, 'data')) as [Buffer];
  return String(data);
}

/** Resolves with the milliseconds until the server closes the connection. */
function _closedAfter(socket: net.Socket): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => {
    socket.on('error', () => {});
    socket.resume();
    socket.once('close', () => resolve(Date.now() - started));
  });
}

function _rawConnect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  return once(socket, 'connect').then(() => socket);
}

describe('PortRouter: TLS with ALPN', () => {
  it('routes each ALPN id to its handler, with the peeked ClientHello replayed into TLS', async () => {
    const seen: string[] = [];
    const h = await _start({}, (r) => {
      r.route(ALPN.tunnel, (s) => { seen.push(`tunnel:${s.alpnProtocol}`); _echo(s); });
      r.route(ALPN.join, (s) => { seen.push(`join:${s.alpnProtocol}`); _echo(s); });
      r.route(ALPN.kube, (s) => { seen.push(`kube:${s.alpnProtocol}`); _echo(s); });
    });
    const join = await _tlsConnect(h.port, { ALPNProtocols: ['nope', ALPN.join] });
    assert.equal(join.alpnProtocol, ALPN.join);
    assert.equal(await _roundTrip(join, 'hello join'), 'hello join');
    const tunnel = await _tlsConnect(h.port, { ALPNProtocols: [ALPN.tunnel], cert: pki.client.cert, key: pki.client.key });
    assert.equal(await _roundTrip(tunnel, 'hello tunnel'), 'hello tunnel');
    assert.deepEqual(seen, ['join:postern-join', 'tunnel:postern-tunnel']);
    assert.deepEqual(h.router.stats.routed, { 'postern-join': 1, 'postern-tunnel': 1 });
    join.destroy();
    tunnel.destroy();
    await h.close();
  });

  it('refuses an unknown ALPN id with a no_application_protocol alert and calls no handler', async () => {
    let called = false;
    const h = await _start({}, (r) => r.route(ALPN.tunnel, () => { called = true; }));
    await assert.rejects(_tlsConnect(h.port, { ALPNProtocols: ['postern-bogus'] }), { code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(called, false);
    assert.equal(h.router.stats.dropped['tls-handshake'], 1);
    assert.equal(h.router.stats.pending, 0);
    await h.close();
  });

  it('drops a TLS client without ALPN unless a default is configured', async () => {
    const none = await _start({}, (r) => r.route(ALPN.http1, _echo));
    const plain = await _tlsConnect(none.port, {});
    await _closedAfter(plain);
    assert.equal(none.router.stats.dropped['no-route'], 1);
    await none.close();

    const withDefault = await _start({ defaultAlpn: ALPN.http1 }, (r) => r.route(ALPN.http1, _echo));
    const routed = await _tlsConnect(withDefault.port, {});
    assert.equal(await _roundTrip(routed, 'ping'), 'ping');
    routed.destroy();
    await withDefault.close();
  });

  it('enforces requireClientCert per route, leaving the certificate check to the CA', async () => {
    const peers: string[] = [];
    const h = await _start({}, (r) => {
      r.route(ALPN.tunnel, (s) => { peers.push(s.getPeerCertificate().subject.CN as string); _echo(s); }, { requireClientCert: true });
      r.route(ALPN.join, _echo);
    });
    const anonymous = await _tlsConnect(h.port, { ALPNProtocols: [ALPN.tunnel] });
    await _closedAfter(anonymous);
    assert.equal(h.router.stats.dropped['client-cert-required'], 1);

    const other = await createTestPki(); // a certificate from a CA the router does not trust
    const stranger = await _tlsConnect(h.port, { ALPNProtocols: [ALPN.tunnel], cert: other.client.cert, key: other.client.key });
    await _closedAfter(stranger);
    assert.equal(h.router.stats.dropped['client-cert-required'], 2);
    await other.cleanup();

    const joiner = await _tlsConnect(h.port, { ALPNProtocols: [ALPN.join] });
    assert.equal(await _roundTrip(joiner, 'token'), 'token');
    const agent = await _tlsConnect(h.port, { ALPNProtocols: [ALPN.tunnel], cert: pki.client.cert, key: pki.client.key });
    assert.equal(await _roundTrip(agent, 'x'), 'x');
    assert.deepEqual(peers, ['agent']);
    joiner.destroy();
    agent.destroy();
    await h.close();
  });

  it('lets the SNI callback choose the certificate', async () => {
    const app = await pki.issue({ commonName: 'grafana.apps.test', dns: ['grafana.apps.test'], usage: 'server' });
    const appContext = tls.createSecureContext({ cert: app.cert, key: app.key, ca: pki.ca.cert });
    const names: string[] = [];
    const h = await _start({
      tls: {
        cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert,
        SNICallback: (name, cb) => { names.push(name); cb(null, name === 'grafana.apps.test' ? appContext : undefined); },
      },
    }, (r) => r.route(ALPN.http1, _echo));
    const socket = await _tlsConnect(h.port, { servername: 'grafana.apps.test', ALPNProtocols: [ALPN.http1] });
    assert.equal(socket.getPeerCertificate().subject.CN, 'grafana.apps.test');
    assert.deepEqual(names, ['grafana.apps.test']);
    socket.destroy();
    await h.close();
  });

  it('serves real curl over h2 and http/1.1 on the same port', async () => {
    const h1 = http.createServer((_req, res) => res.end('via http/1.1'));
    const h2 = http2.createServer((_req, res) => res.end('via h2'));
    const h = await _start({}, (r) => {
      r.route(ALPN.http1, (s) => { h1.emit('connection', s); });
      r.route(ALPN.h2, (s) => { h2.emit('connection', s); });
    });
    const curl = (flag: string) => run('curl', ['-sS', '--max-time', '5', flag, '--cacert', `${pki.dir}/ca.crt`,
      '--resolve', `localhost:${h.port}:127.0.0.1`, `https://localhost:${h.port}/`]);
    assert.equal((await curl('--http2')).stdout, 'via h2');
    assert.equal((await curl('--http1.1')).stdout, 'via http/1.1');
    h1.close();
    h2.close();
    await h.close();
  });
});

describe('PortRouter: SSH and PostgreSQL openings', () => {
  it('hands an SSH banner written by a raw socket to the ssh handler, bytes intact', async () => {
    const got: Buffer[] = [];
    const h = await _start({}, (r) => r.ssh((s) => { s.on('data', (d: Buffer) => got.push(d)); s.write('SSH-2.0-Postern\r\n'); }));
    const socket = await _rawConnect(h.port);
    socket.write('SSH-2.0-OpenSSH_9.2\r\n');
    const [reply] = (await once(socket, 'data')) as [Buffer];
    assert.equal(String(reply), 'SSH-2.0-Postern\r\n');
    assert.equal(String(Buffer.concat(got)), 'SSH-2.0-OpenSSH_9.2\r\n');
    assert.equal(h.router.stats.routed.ssh, 1);
    socket.destroy();
    await h.close();
  });

  it('routes the real OpenSSH client, which sends its banner without waiting for ours', async () => {
    let gotBanner: (line: string) => void = () => {};
    const banner = new Promise<string>((resolve) => { gotBanner = resolve; });
    const h = await _start({}, (r) => r.ssh((s) => {
      let text = '';
      s.on('data', (d: Buffer) => {
        text += String(d);
        if (text.includes('\r\n')) { gotBanner(text.slice(0, text.indexOf('\r\n'))); s.destroy(); }
      });
    }));
    const ssh = run('ssh', ['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=5', '-p', String(h.port), 'nobody@127.0.0.1', 'true']).then(() => 'exited 0', () => 'failed');
    assert.match(await banner, /^SSH-2\.0-OpenSSH_/);
    assert.equal(await ssh, 'failed', 'the handler hung up after the banner');
  });

  it('answers SSLRequest with S, runs TLS on the same connection and reaches the postgres handler', async () => {
    const h = await _start({}, (r) => r.postgres(_echo));
    for (const opening of [[], [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]]) { // with and without a GSSENCRequest first
      const socket = await _rawConnect(h.port);
      if (opening.length > 0) {
        socket.write(Buffer.from(opening));
        assert.equal(String((await once(socket, 'data'))[0]), 'N');
      }
      socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
      assert.equal(String((await once(socket, 'data'))[0]), 'S');
      const secure = await _tlsConnect(h.port, { socket });
      assert.equal(await _roundTrip(secure, 'startup'), 'startup');
      secure.destroy();
    }
    assert.equal(h.router.stats.routed.postgres, 2);
    await h.close();
  });

  it('routes real psql through SSLRequest and TLS to the postgres handler', async () => {
    const h = await _start({}, (r) => r.postgres((s) => {
      s.once('data', (startup: Buffer) => {
        const fields = String(startup.subarray(8)).split('\0');
        const user = fields[fields.indexOf('user') + 1];
        const body = Buffer.from(`SFATAL\0C28000\0Mpostern test says hello ${user}\0\0`);
        const header = Buffer.alloc(5);
        header.write('E');
        header.writeUInt32BE(body.length + 4, 1);
        s.end(Buffer.concat([header, body]));
      });
    }));
    const result = await run('psql', [`host=127.0.0.1 port=${h.port} user=alice dbname=db sslmode=require connect_timeout=5`, '-c', 'select 1'], {
      env: { ...process.env, PGPASSWORD: '', PGSERVICEFILE: '/dev/null' },
    }).catch((err: { stderr: string }) => err);
    assert.match((result as { stderr: string }).stderr, /postern test says hello alice/);
    assert.equal(h.router.stats.routed.postgres, 1);
    await h.close();
  });

  it('refuses plaintext that arrives after an SSLRequest, before the S', async () => {
    const h = await _start({}, (r) => r.postgres(_echo));
    const socket = await _rawConnect(h.port);
    socket.write(Buffer.concat([Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), Buffer.from('injected')]));
    await _closedAfter(socket);
    assert.equal(h.router.stats.dropped.garbage, 1);
    await h.close();
  });
});

describe('PortRouter: hostile connections', () => {
  it('drops garbage at once, without waiting for the timeout', async () => {
    const h = await _start({ sniffTimeoutMs: 5_000 }, (r) => r.route(ALPN.http1, _echo));
    for (const garbage of ['GET / HTTP/1.1\r\n\r\n', '\xff\xfe\x00', 'SSH-9']) {
      const socket = await _rawConnect(h.port);
      socket.write(Buffer.from(garbage, 'latin1'));
      assert.ok(await _closedAfter(socket) < 1_000);
    }
    assert.equal(h.router.stats.dropped.garbage, 3);
    await h.close();
  });

  it('drops a half ClientHello: at the sniff timeout before 6 bytes, at the handshake timeout after', async () => {
    const h = await _start({ sniffTimeoutMs: 200, handshakeTimeoutMs: 400 }, (r) => r.route(ALPN.http1, _echo));
    const short = await _rawConnect(h.port);
    short.write(Buffer.from([0x16, 0x03, 0x01]));
    const shortMs = await _closedAfter(short);
    assert.ok(shortMs >= 150 && shortMs < 1_500, `closed after ${shortMs} ms`);
    assert.equal(h.router.stats.dropped['sniff-timeout'], 1);

    const half = await _rawConnect(h.port);
    half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x11]));
    const halfMs = await _closedAfter(half);
    assert.ok(halfMs >= 350 && halfMs < 2_000, `closed after ${halfMs} ms`);
    assert.equal(h.router.stats.dropped['tls-handshake'], 1);
    assert.equal(h.router.stats.pending, 0);
    await h.close();
  });

  it('drops slowloris clients trickling a valid prefix at the total sniff timeout', async () => {
    const h = await _start({ sniffTimeoutMs: 300 }, (r) => r.ssh(_echo));
    const sockets = await Promise.all(Array.from({ length: 40 }, () => _rawConnect(h.port)));
    const closed = sockets.map((s) => _closedAfter(s));
    const prefix = Buffer.from('SSH-2.0');
    let i = 0;
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write(prefix.subarray(i % prefix.length, (i % prefix.length) + 1));
      i++;
    }, 50);
    const times = await Promise.all(closed);
    clearInterval(trickle);
    assert.ok(Math.max(...times) < 1_500, `slowest closed after ${Math.max(...times)} ms`);
    assert.equal(h.router.stats.dropped['sniff-timeout'], 40);
    assert.equal(h.router.stats.routed.ssh, undefined);
    await h.close();
  });

  it('caps connections in flight and survives a throwing handler', async () => {
    const h = await _start({ maxPending: 2, sniffTimeoutMs: 2_000 }, (r) => r.ssh(() => { throw new Error('boom'); }));
    const quiet = await Promise.all([_rawConnect(h.port), _rawConnect(h.port)]);
    await new Promise((r) => setTimeout(r, 50));
    const third = await _rawConnect(h.port);
    assert.ok(await _closedAfter(third) < 1_000);
    assert.equal(h.router.stats.dropped['too-many-pending'], 1);
    for (const s of quiet) s.destroy();
    await new Promise((r) => setTimeout(r, 50));

    const ssh = await _rawConnect(h.port);
    ssh.write('SSH-2.0-x\r\n');
    await _closedAfter(ssh);
    assert.equal(h.router.stats.dropped['handler-error'], 1);
    await h.close();
  });

  it('destroys connections still sniffing when closed', async () => {
    const h = await _start({ sniffTimeoutMs: 10_000 }, (r) => r.ssh(_echo));
    const socket = await _rawConnect(h.port);
    await new Promise((r) => setTimeout(r, 50));
    const closed = _closedAfter(socket);
    h.router.close();
    assert.ok(await closed < 1_000);
    assert.equal(h.router.stats.dropped['router-closed'], 1);
    await h.close();
  });
});
