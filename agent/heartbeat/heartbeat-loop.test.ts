import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import { silentLogger } from '../../cluster/common/logger.ts';
import type { InventorySnapshot } from '../inventory/inventory.ts';
import { HeartbeatLoop, type HeartbeatOptions } from './heartbeat-loop.ts';

class FakeTunnels extends EventEmitter<{ up: [] }> {
  connected = 0;
  bringUp(): void {
    this.connected++;
    this.emit('up');
  }
}

interface Sent {
  at: number;
  inventoryJson: string;
  services: string[];
}

function harness(overrides: Partial<HeartbeatOptions> = {}, callMs = 0) {
  const sent: Sent[] = [];
  const failures: Error[] = [];
  const labelListeners = new Set<() => void>();
  let labels: Record<string, string> = { env: 'dev' };
  const client = {
    heartbeat: async (request: { inventoryJson: string; services: string[]; publicAddr: string }) => {
      const failure = failures.shift();
      if (failure) throw failure;
      if (callMs > 0) await new Promise((resolve) => setTimeout(resolve, callMs));
      sent.push({ at: performance.now(), inventoryJson: request.inventoryJson, services: request.services });
      return { intervalSeconds: 1n };
    },
  } as unknown as AuthClient;
  const tunnels = new FakeTunnels();
  const loop = new HeartbeatLoop({
    auth: () => client,
    inventory: {
      snapshot: () => ({ nodeName: 'n1', labels }) as unknown as InventorySnapshot,
      onChange: (listener) => {
        labelListeners.add(listener);
        return () => labelListeners.delete(listener);
      },
    },
    services: () => ['echo', 'ssh'],
    tunnels,
    logger: silentLogger(),
    debounceMs: 30,
    random: () => 0,
    ...overrides,
  });
  const setLabels = (next: Record<string, string>): void => {
    labels = next;
    for (const listener of labelListeners) listener();
  };
  return { loop, sent, failures, tunnels, setLabels };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('the first heartbeat waits for a tunnel, then they follow the interval the server gives', async (t) => {
  const { loop, sent, tunnels } = harness();
  t.after(() => loop.stop());
  await loop.start();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(sent.length, 0, 'nothing before a tunnel is up');
  assert.deepEqual(loop.health(), { ok: false, detail: 'waiting for the first tunnel to announce the node' });
  const upAt = performance.now();
  tunnels.bringUp();
  await until('the first heartbeat', () => sent.length === 1);
  assert.ok(sent[0]!.at - upAt < 50, `first heartbeat ${sent[0]!.at - upAt} ms after the tunnel`);
  assert.deepEqual(JSON.parse(sent[0]!.inventoryJson), { nodeName: 'n1', labels: { env: 'dev' } });
  assert.deepEqual(sent[0]!.services, ['echo', 'ssh']);
  assert.equal(loop.health().ok, true);
  await until('the second heartbeat', () => sent.length === 2);
  const gap = sent[1]!.at - sent[0]!.at;
  assert.ok(gap >= 990 && gap < 1500, `second heartbeat ${gap} ms later (server said 1 s)`);
  assert.equal(loop.status().intervalMs, 1000);
});

test('label changes send one early heartbeat', async (t) => {
  const { loop, sent, tunnels, setLabels } = harness();
  t.after(() => loop.stop());
  tunnels.bringUp();
  await loop.start();
  await until('the first heartbeat', () => sent.length === 1);
  setLabels({ env: 'dev', kernel: '6.1' });
  setLabels({ env: 'dev', kernel: '6.2' });
  setLabels({ env: 'prod', kernel: '6.2' });
  await until('the early heartbeat', () => sent.length === 2, 500);
  assert.ok(sent[1]!.at - sent[0]!.at < 500, 'early, not at the interval');
  assert.deepEqual(JSON.parse(sent[1]!.inventoryJson).labels, { env: 'prod', kernel: '6.2' });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(sent.length, 2, 'three changes, one heartbeat');
});

test('a label change while a heartbeat is under way is sent right after it', async (t) => {
  // The call outlasts the change's debounce window, so only the in-flight handling can send it promptly.
  const { loop, sent, tunnels, setLabels } = harness({ debounceMs: 300 }, 150);
  t.after(() => loop.stop());
  tunnels.bringUp();
  await loop.start();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(sent.length, 0, 'the first heartbeat is still under way');
  setLabels({ env: 'changed-during-the-call' });
  await until('the follow-up heartbeat', () => sent.length === 2, 600);
  assert.deepEqual(JSON.parse(sent[0]!.inventoryJson).labels, { env: 'dev' }, 'the first carried the snapshot taken before the change');
  assert.deepEqual(JSON.parse(sent[1]!.inventoryJson).labels, { env: 'changed-during-the-call' });
});

test('a failed heartbeat makes the loop unhealthy and is retried soon', async (t) => {
  const { loop, sent, failures, tunnels } = harness({ defaultIntervalMs: 3000 });
  t.after(() => loop.stop());
  failures.push(new Error('the auth service cannot be reached: connection refused'));
  tunnels.bringUp();
  await loop.start();
  await until('the failure', () => loop.status().failures === 1);
  assert.deepEqual(loop.health(), { ok: false, detail: 'the auth service cannot be reached: connection refused' });
  const failedAt = performance.now();
  await until('the retry', () => sent.length === 1, 2000);
  const retryMs = performance.now() - failedAt;
  assert.ok(retryMs >= 450 && retryMs < 1500, `retried after ${retryMs} ms`);
  assert.equal(loop.health().ok, true);
});

test('stop cancels the schedule', async () => {
  const { loop, sent, tunnels } = harness();
  tunnels.bringUp();
  await loop.start();
  await until('the first heartbeat', () => sent.length === 1);
  await loop.stop();
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(sent.length, 1);
});
