/**
 * The single binary (installers/build.ts, `npm run build`): built once here into
 * dist/, then run with an empty environment (`env -i`): `postern version` carries the
 * build stamp, the multi-call names pick their program (`dist/psh` is a symlink),
 * `postern start` serves /healthz. A second, throw-away binary whose entry uses
 * node-pty checks the SEA asset path for native addons: pty.node is written once to
 * the cache directory (0700, content-hash name) and a command runs in a pty. The
 * proxy of the binary serves the web UI from its SEA assets.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildBinary } from '../installers/build.ts';
import { repoRoot } from './fixtures/auth.ts';
import { ensureBinary } from './fixtures/binary.ts';
import { freePort } from './fixtures/processes.ts';

const dist = path.join(repoRoot, 'dist');
const binary = path.join(dist, 'postern');
const scratch = mkdtempSync(path.join(tmpdir(), 'postern-binary-'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file` as `env -i` would: no environment but `env`. */
function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  await ensureBinary();
});

after(() => rmSync(scratch, { recursive: true, force: true }));

test('dist/postern version prints the build stamp, without any environment', async () => {
  const result = await run(binary, ['version']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^postern 0\.\d+\.\d+ \(commit [0-9a-f]{4,}(-dirty)?, v24\.\d+\.\d+, built \d{4}-\d\d-\d\dT[\d:.]+Z; ssh ciphers native\)\n$/);
  assert.equal(result.stderr, '');
});

test('multi-call: dist/psh (a symlink) runs psh, dist/postern pctl runs pctl', async () => {
  assert.ok(statSync(path.join(dist, 'psh')).isFile());
  const psh = await run(path.join(dist, 'psh'), ['--help']);
  assert.equal(psh.code, 0, psh.stderr);
  assert.match(psh.stdout, /^psh — /);
  assert.match(psh.stdout, /psh login/);
  const pctl = await run(binary, ['pctl', '--help']);
  assert.equal(pctl.code, 0, pctl.stderr);
  assert.match(pctl.stdout, /^pctl — /);
});

test('dist/postern start serves /healthz', async () => {
  const dir = mkdtempSync(path.join(scratch, 'start-'));
  const config = path.join(dir, 'postern.yaml');
  writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\ndiag_addr: 127.0.0.1:0\nauth:\n  cluster_name: binary\n  listen_addr: 127.0.0.1:0\n`);
  const child = spawn(binary, ['start', '-c', config], { env: {}, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no diagnostics port logged:\n${stderr}`)), 20_000);
      child.once('exit', (code) => reject(new Error(`postern start exited (${code}):\n${stderr}`)));
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /"port":(\d+)[^\n]*"msg":"diagnostics listening/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
    });
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /"status":"ok"/);
    // A SIGTERM before start-up finishes takes the default action (start.ts installs its handler last).
    for (let i = 0; i < 100 && !stderr.includes('"msg":"postern started"'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /"msg":"postern started"/);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null]);
  } finally {
    child.kill('SIGKILL');
  }
});

test('dist/postern serves the embedded web UI (SEA assets) from its proxy', async () => {
  const dir = mkdtempSync(path.join(scratch, 'web-'));
  const config = path.join(dir, 'postern.yaml');
  const proxyPort = await freePort();
  writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\ndiag_addr: 127.0.0.1:0\nauth:\n  cluster_name: binary\n  listen_addr: 127.0.0.1:0\nproxy:\n  listen_addr: 127.0.0.1:${proxyPort}\n`);
  // From /, so nothing near the binary could stand in for the embedded files.
  const child = spawn(binary, ['start', '-c', config], { env: {}, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    for (let i = 0; i < 200 && !stderr.includes('"msg":"proxy listening"'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /"msg":"proxy listening"/);
    const get = (urlPath: string) => new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: proxyPort, path: urlPath, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      }).on('error', reject);
    });
    const index = await get('/');
    assert.equal(index.status, 200, index.body);
    assert.match(index.type, /text\/html/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
    assert.ok(script, index.body);
    const asset = await get(script);
    assert.equal(asset.status, 200);
    assert.match(asset.type, /text\/javascript/);
    assert.ok(asset.body.length > 10_000);
  } finally {
    child.kill('SIGKILL');
  }
});

test('node-pty in a single binary: pty.node is written once to the cache directory and works', async () => {
  const out = path.join(scratch, 'probe');
  const probe = await buildBinary({ entry: path.join(repoRoot, 'test', 'fixtures', 'sea-pty-probe.ts'), outDir: out, name: 'probe', links: [], verbose: false });
  const cache = path.join(scratch, 'cache');
  const expected = /^isSea=true\n\/dev\/pts\/\d+\nprobe-42\nexit=0\n$/;
  const first = await run(probe, [], { POSTERN_CACHE_DIR: cache });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, expected);
  assert.equal(statSync(cache).mode & 0o777, 0o700);
  const [file, ...others] = readdirSync(cache);
  assert.match(file ?? '', /^pty-[0-9a-f]{16}\.node$/);
  assert.deepEqual(others, []);
  const written = statSync(path.join(cache, file!)).mtimeMs;
  rmSync(path.join(out, 'probe.cjs'));
  const second = await run(probe, [], { POSTERN_CACHE_DIR: cache });
  assert.match(second.stdout, expected);
  assert.equal(statSync(path.join(cache, file!)).mtimeMs, written);
  rmSync(out, { recursive: true, force: true });
});
