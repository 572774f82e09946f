import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import type { Logger } from '../common/logger.ts';
import { AppWeb } from './app-web.ts';

const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

/** An AppWeb for apps under apps.localhost behind a TLS listener offering h2; no agent behind it. */
function appServer(http2IdleMs: number): { port: Promise<number>; close: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-app-web-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'k'), '-out', path.join(dir, 'c'), '-days', '1', '-subj', '/CN=web.apps.localhost'], { stdio: 'ignore' });
  const apps = new AppWeb({
    appDomain: () => 'apps.localhost', userCaPems: () => [], http2IdleMs, logger: silent as unknown as Logger,
    dialer: { dial: () => Promise.reject(new Error('no agent here')) },
  });
  const server = tls.createServer({ key: readFileSync(path.join(dir, 'k')), cert: readFileSync(path.join(dir, 'c')), ALPNProtocols: ['h2', 'http/1.1'] }, apps.accept);
  rmSync(dir, { recursive: true, force: true });
  const port = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  return { port, close: () => { apps.close(); server.close(); } };
}

test('an idle HTTP/2 session is closed with GOAWAY after http2IdleMs; one in use is not', async () => {
  const app = appServer(400);
  try {
    const port = await app.port;
    const client = http2.connect(`https://web.apps.localhost:${port}`, { host: '127.0.0.1', servername: 'web.apps.localhost', rejectUnauthorized: false });
    client.on('error', () => {});
    const started = performance.now();
    // Busy for a while: a request every 100 ms (answered 401: no credentials) keeps it open past the limit.
    for (let i = 0; i < 8; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        const request = client.request({ ':path': '/' });
        request.on('response', (headers) => resolve(Number(headers[':status'])));
        request.on('error', reject);
        request.resume();
        request.end();
      });
      assert.equal(status, 401);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(!client.closed && !client.destroyed, 'a session in use stays open');
    const idleFrom = performance.now();
    await new Promise<void>((resolve, reject) => {
      const late = setTimeout(() => reject(new Error('the idle session was not closed within 3 s')), 3_000);
      client.once('goaway', () => resolve(clearTimeout(late)));
    });
    const idle = performance.now() - idleFrom;
    assert.ok(idle >= 250 && idle < 2_000, `closed after ${idle.toFixed(0)} ms idle`);
    assert.ok(performance.now() - started > 800);
    client.close();
  } finally {
    app.close();
  }
});
