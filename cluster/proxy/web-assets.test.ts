import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { WebAssets } from './web-assets.ts';

/** Serves `assets` on a loopback HTTP server (the proxy uses the same handler on TLS). */
async function serve(t: { after(fn: () => void): void }, assets: WebAssets): Promise<(urlPath: string, headers?: Record<string, string>, method?: string) => Promise<{ status: number; headers: Record<string, string>; body: string; url: string }>> {
  const server = http.createServer((req, res) => assets.serve(req, res, (req.url ?? '/').split('?')[0]!));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  return async (urlPath, headers = {}, method = 'GET') => {
    const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, { headers, method });
    return { status: response.status, headers: Object.fromEntries(response.headers), body: await response.text(), url: response.url };
  };
}

function distDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-web-dist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('index.html for app paths (no-cache), hashed assets for a year, strict headers on both', async (t) => {
  const dir = distDir(t);
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/app-abc.js"></script>');
  writeFileSync(path.join(dir, 'assets', 'app-abc.js'), 'console.log(1);\n'.repeat(500));
  const get = await serve(t, new WebAssets({ kind: 'dir', dir }));
  for (const urlPath of ['/', '/login', '/clusters/one/resources']) {
    const page = await get(urlPath);
    assert.equal(page.status, 200);
    assert.match(page.body, /app-abc\.js/);
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.match(page.headers['content-security-policy'] ?? '', /^default-src 'self'; script-src 'self';/);
  }
  const script = await get('/assets/app-abc.js');
  assert.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(script.headers['content-type'] ?? '', /text\/javascript/);
  assert.equal((await get('/assets/app-abc.js', { 'if-none-match': String(script.headers.etag) })).status, 304);
  // fetch asks for gzip and inflates: the text arrives whole, compressed on the wire.
  assert.equal(script.headers['content-encoding'], 'gzip');
  assert.equal(script.body, 'console.log(1);\n'.repeat(500));
  assert.ok(Number(script.headers['content-length']) < 200, `gzipped length ${script.headers['content-length']}`);
  const plain = await new Promise<{ encoding?: string; length: number }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: Number(new URL(script.url).port), path: '/assets/app-abc.js' }, (res) => {
      let length = 0;
      res.on('data', (chunk: Buffer) => (length += chunk.length));
      res.on('end', () => resolve({ encoding: res.headers['content-encoding'], length }));
    }).on('error', reject);
  });
  assert.deepEqual(plain, { encoding: undefined, length: 8000 }, 'a client that does not ask for gzip gets the plain file');
  const head = await get('/assets/app-abc.js', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  const stale = await get('/assets/app-old.js');
  assert.equal(stale.status, 404, 'an asset of another build is not answered with the page');
  // A raw request line (fetch would normalize it): files come from memory by exact name, never from a path.
  const port = Number(new URL(stale.url).port);
  const traversal = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/assets/../../../etc/passwd' }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
  assert.equal(traversal.status, 404);
  assert.doesNotMatch(traversal.body, /root:/);
});

test('a proxy without a built UI says how to build it, and picks up a later build', async (t) => {
  const dir = distDir(t);
  const get = await serve(t, new WebAssets({ kind: 'dir', dir: path.join(dir, 'missing') }));
  const missing = await get('/');
  assert.equal(missing.status, 503);
  assert.match(missing.body, /npm run build:web/);
  mkdirSync(path.join(dir, 'missing'));
  writeFileSync(path.join(dir, 'missing', 'index.html'), '<p>built</p>');
  assert.match((await get('/')).body, /built/);
});
