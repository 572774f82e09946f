import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { TunnelRejectedError, type IncomingDial } from '../../protocols/tunnel/index.ts';
import { ServiceRegistry } from './service-registry.ts';

function dial(service: string): IncomingDial {
  return { service, identity: 'alice', headers: {}, stream: new PassThrough() };
}

test('dials go to the handler registered under their service name', async () => {
  const registry = new ServiceRegistry();
  const seen: string[] = [];
  registry.register('ssh', (d) => void seen.push(`ssh:${d.identity}`));
  registry.register('db:orders', (d) => void seen.push(`db:${d.identity}`));
  await registry.onStream(dial('db:orders'));
  await registry.onStream(dial('ssh'));
  assert.deepEqual(seen, ['db:alice', 'ssh:alice']);
  assert.deepEqual(registry.names(), ['db:orders', 'ssh']);
});

test('a service the agent does not have is refused with 404 and what it serves', () => {
  const registry = new ServiceRegistry();
  assert.throws(() => registry.onStream(dial('ssh')), (error: unknown) => {
    assert.ok(error instanceof TunnelRejectedError);
    assert.deepEqual([error.status, error.reason], [404, 'this agent does not serve ssh; it serves nothing yet']);
    return true;
  });
  const remove = registry.register('echo', () => {});
  assert.throws(() => registry.onStream(dial('ssh')), { reason: 'this agent does not serve ssh; it serves echo' });
  remove();
  assert.deepEqual(registry.names(), []);
});

test('duplicate and malformed names are refused; changes are announced', () => {
  const registry = new ServiceRegistry();
  let changes = 0;
  const unsubscribe = registry.onChange(() => changes++);
  const remove = registry.register('echo', () => {});
  assert.throws(() => registry.register('echo', () => {}), { code: 'PST_SERVICE_REGISTRATION', message: 'service echo is registered already' });
  assert.throws(() => registry.register('../x', () => {}), /a service name is 1-255 characters/);
  remove();
  remove();
  unsubscribe();
  registry.register('ssh', () => {});
  assert.equal(changes, 2);
});

test('served resources are registered as kind:name, listed for the heartbeat, and validated', async () => {
  const registry = new ServiceRegistry();
  let changes = 0;
  registry.onChange(() => void changes++);
  const seen: string[] = [];
  const remove = registry.registerServed({ kind: 'db', name: 'orders', labels: { env: 'prod' }, spec: { protocol: 'postgres' } }, (d) => void seen.push(d.service));
  assert.deepEqual(registry.names(), ['db:orders']);
  assert.deepEqual(registry.served(), [{ kind: 'db', name: 'orders', labels: { env: 'prod' }, spec: { protocol: 'postgres' } }]);
  await registry.onStream(dial('db:orders'));
  assert.deepEqual(seen, ['db:orders']);
  assert.throws(() => registry.registerServed({ kind: 'db', name: 'bad name', labels: {}, spec: {} }, () => {}), /cannot register db "bad name": name: /);
  assert.throws(() => registry.registerServed({ kind: 'db', name: 'orders', labels: {}, spec: {} }, () => {}), /service db:orders is registered already/);
  assert.equal(registry.served().length, 1, 'a refused duplicate leaves the first one announced');
  remove();
  assert.deepEqual([registry.names(), registry.served(), changes], [[], [], 2]);
});
