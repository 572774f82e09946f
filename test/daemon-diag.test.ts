/**
 * `postern start` as a real process: JSON logs on stderr, /healthz, /readyz and
 * Prometheus /metrics answered (read with curl), and a clean stop on SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { cliPath } from './fixtures/auth.ts';

test('postern start serves /healthz, /readyz and /metrics, logs JSON and stops on SIGTERM', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-daemon-'));
  const config = path.join(dir, 'postern.yaml');
  writeFileSync(config, `data_dir: ${JSON.stringify(dir)}\ndiag_addr: 127.0.0.1:0\nauth:\n  cluster_name: diag\n  listen_addr: 127.0.0.1:0\n`);
  const child = spawn(process.execPath, [cliPath, 'start', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no diagnostics port logged:\n${stderr}`)), 20_000);
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        for (const line of stderr.split('\n')) {
          if (!line.startsWith('{')) continue;
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg?.startsWith('diagnostics listening') && entry.port) {
            clearTimeout(timer);
            resolve(entry.port);
          }
        }
      });
    });
    const curl = (url: string) => execFileSync('curl', ['-s', '-w', '\n%{http_code}', url], { encoding: 'utf8' });
    assert.match(curl(`http://127.0.0.1:${port}/healthz`), /"status":"ok"[\s\S]*\n200$/);
    let ready = '';
    for (let i = 0; i < 50 && !ready.endsWith('200'); i++) {
      ready = curl(`http://127.0.0.1:${port}/readyz`).trim();
      if (!ready.endsWith('200')) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(ready, /"auth":\{"ready":true\}[\s\S]*200$/);
    const metrics = curl(`http://127.0.0.1:${port}/metrics`);
    assert.match(metrics, /# TYPE postern_process_cpu_seconds_total counter/);
    assert.match(curl(`http://127.0.0.1:${port}/nope`), /404$/);
    // pctl status is one Status call, counted by method and result.
    execFileSync(process.execPath, [cliPath, 'pctl', 'status', '-c', config]);
    assert.match(curl(`http://127.0.0.1:${port}/metrics`), /postern_auth_api_call_seconds_count\{method="Status",code="OK"\} 1/);
    for (const line of stderr.trim().split('\n')) {
      const entry = JSON.parse(line) as { level: string; time: string };
      assert.ok(entry.level && entry.time, `not a structured log line: ${line}`);
    }
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
