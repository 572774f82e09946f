import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { silentLogger } from '../../cluster/common/logger.ts';
import { CommandLabels } from './command-labels.ts';
import { LabelConfigError } from './errors.ts';
import type { HostFacts } from './host-facts.ts';
import { checkLabelConflicts, Inventory, type LabelSource } from './inventory.ts';

const facts: HostFacts = {
  hostname: 'db-7',
  os: { platform: 'linux', distro: 'Debian GNU/Linux', release: '12', codename: 'bookworm' },
  kernel: '6.1.0-18-amd64',
  arch: 'x64',
  cpu: { model: 'AMD EPYC', cores: 2, physicalCores: 2 },
  memoryBytes: 8 * 1024 ** 3,
  addresses: ['192.0.2.7'],
  fallbacks: [],
};
const startedAt = new Date('2026-03-01T10:00:00Z');

/** A label source whose values the test sets. */
class FakeLabels extends EventEmitter implements LabelSource {
  values: Record<string, string> = {};
  keys: string[];
  constructor(keys: string[]) {
    super();
    this.keys = keys;
  }
  names(): string[] {
    return this.keys;
  }
  current(): Record<string, string> {
    return { ...this.values };
  }
}

test('checkLabelConflicts refuses a key set both ways, naming it', () => {
  assert.throws(
    () => checkLabelConflicts({ env: 'prod', team: 'db' }, { team: { command: ['cat', '/etc/team'], period: '1m' } }),
    (error: unknown) => {
      assert.ok(error instanceof LabelConfigError);
      assert.equal(error.code, 'PST_LABEL_CONFIG');
      assert.equal(error.label, 'team');
      assert.equal(error.message, 'label "team" is set both in agent.labels and in agent.command_labels; keep it in one of them');
      return true;
    },
  );
  checkLabelConflicts({ env: 'prod' }, { kernel: {} });
  checkLabelConflicts({}, {});
});

test('the snapshot combines facts, static and command labels, services and version', () => {
  const labels = new FakeLabels(['kernel']);
  labels.values = { kernel: '6.1' };
  const services = new Set(['ssh']);
  const inventory = new Inventory({
    facts,
    version: '0.1.0',
    startedAt,
    staticLabels: { env: 'prod', app: 'billing' },
    commandLabels: labels,
    services: () => services,
  });
  assert.deepEqual(inventory.snapshot(), {
    hostname: 'db-7',
    nodeName: 'db-7',
    addresses: ['192.0.2.7'],
    os: facts.os,
    kernel: '6.1.0-18-amd64',
    arch: 'x64',
    cpu: facts.cpu,
    memoryBytes: 8 * 1024 ** 3,
    version: '0.1.0',
    labels: { app: 'billing', env: 'prod', kernel: '6.1' },
    services: ['ssh'],
    startedAt: '2026-03-01T10:00:00.000Z',
  });
  assert.deepEqual(Object.keys(inventory.snapshot().labels), ['app', 'env', 'kernel'], 'keys sorted');

  labels.values = { kernel: '6.2' };
  services.add('postgres');
  const later = inventory.snapshot();
  assert.equal(later.labels.kernel, '6.2');
  assert.deepEqual(later.services, ['postgres', 'ssh']);
});

test('snapshots are copies: changing one does not change the next', () => {
  const inventory = new Inventory({ facts, version: '0.1.0', startedAt, nodeName: 'billing-db' });
  const first = inventory.snapshot();
  first.addresses.push('203.0.113.9');
  first.labels.x = 'y';
  first.os.distro = 'changed';
  const second = inventory.snapshot();
  assert.equal(second.nodeName, 'billing-db');
  assert.deepEqual(second.addresses, ['192.0.2.7']);
  assert.deepEqual(second.labels, {});
  assert.equal(second.os.distro, 'Debian GNU/Linux');
  assert.deepEqual(second.services, []);
});

test('the constructor refuses a static label that a command label also fills', () => {
  assert.throws(
    () => new Inventory({ facts, version: '0.1.0', startedAt, staticLabels: { kernel: 'x' }, commandLabels: new FakeLabels(['kernel']) }),
    /label "kernel" is set both/,
  );
});

test('onChange follows command label changes until unsubscribed', async () => {
  const commandLabels = new CommandLabels({ v: { command: ['echo', 'v1'], period: '1m' } }, { logger: silentLogger() });
  const inventory = new Inventory({ facts, version: '0.1.0', startedAt, staticLabels: { env: 'dev' }, commandLabels });
  let calls = 0;
  const unsubscribe = inventory.onChange(() => calls++);
  try {
    await commandLabels.start();
    assert.equal(calls, 1);
    assert.deepEqual(inventory.snapshot().labels, { env: 'dev', v: 'v1' });
    unsubscribe();
    assert.equal(commandLabels.listenerCount('change'), 0);
  } finally {
    commandLabels.stop();
  }
});
