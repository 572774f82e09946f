import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../cluster/common/logger.ts';
import { FakeClock } from '../../cluster/common/clock.ts';
import { ServiceSupervisor, type ServiceHandle, type ServiceHealth, type ServiceTransition, type SupervisorOptions } from './service-supervisor.ts';
import { SupervisorStateError } from './errors.ts';

/** A service driven by the test: each start takes the next scripted outcome. */
class ScriptedService {
  readonly name: string;
  readonly calls: string[] = [];
  readonly startedAt: number[] = [];
  readonly signals: AbortSignal[] = [];
  handles: ServiceHandle[] = [];
  outcomes: Array<'ok' | 'fail' | 'throw' | 'hang'>;
  /** Resolves the start() of a run whose outcome was 'hang'. */
  finishStart?: () => void;
  stopBehaviour: 'ok' | 'hang' | 'reject' = 'ok';
  healthValue?: ServiceHealth;

  constructor(name: string, outcomes: Array<'ok' | 'fail' | 'throw' | 'hang'> = ['ok']) {
    this.name = name;
    this.outcomes = outcomes;
  }

  start(signal: AbortSignal, handle: ServiceHandle): Promise<void> {
    const outcome = this.outcomes.shift() ?? 'ok';
    this.calls.push(`start:${outcome}`);
    this.startedAt.push(performance.now());
    this.signals.push(signal);
    this.handles.push(handle);
    if (outcome === 'throw') throw new Error(`sync boom ${this.startedAt.length}`);
    if (outcome === 'fail') return Promise.reject(new Error(`boom ${this.startedAt.length}`));
    if (outcome === 'hang') return new Promise((resolve) => (this.finishStart = resolve));
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.calls.push('stop');
    if (this.stopBehaviour === 'hang') return new Promise(() => {});
    if (this.stopBehaviour === 'reject') return Promise.reject(new Error('stop broke'));
    return Promise.resolve();
  }

  health(): ServiceHealth {
    return this.healthValue ?? { ok: true };
  }
}

function supervisor(options: Partial<SupervisorOptions> = {}): ServiceSupervisor {
  return new ServiceSupervisor({ logger: silentLogger(), backoff: { baseMs: 40, maxMs: 1000 }, random: () => 0.999, ...options });
}

/** Resolves with the first transition matching `match`. */
function transition(sup: ServiceSupervisor, match: Partial<ServiceTransition>): Promise<ServiceTransition> {
  return new Promise((resolve) => {
    const listener = (event: ServiceTransition): void => {
      if (Object.entries(match).every(([key, value]) => event[key as keyof ServiceTransition] === value)) {
        sup.off('transition', listener);
        resolve(event);
      }
    };
    sup.on('transition', listener);
  });
}

function record(sup: ServiceSupervisor): ServiceTransition[] {
  const events: ServiceTransition[] = [];
  sup.on('transition', (event) => events.push(event));
  return events;
}

test('a service that fails to start twice is restarted after growing delays, then runs', async () => {
  const sup = supervisor();
  const events = record(sup);
  const service = new ScriptedService('ssh', ['fail', 'fail', 'ok']);
  const running = transition(sup, { name: 'ssh', to: 'running' });
  sup.run(service);
  await running;
  assert.deepEqual(
    events.map((e) => `${e.to}${e.delayMs === undefined ? '' : ` ${e.delayMs}`}`),
    ['starting', 'backoff 39', 'starting', 'backoff 79', 'starting', 'running'],
  );
  const [t0 = 0, t1 = 0, t2 = 0] = service.startedAt;
  assert.ok(t1 - t0 >= 38, `first delay ${t1 - t0} ms`);
  assert.ok(t2 - t1 >= 78, `second delay ${t2 - t1} ms`);
  assert.ok(t2 - t1 > t1 - t0, 'the second delay is longer');
  assert.deepEqual(service.calls, ['start:fail', 'stop', 'start:fail', 'stop', 'start:ok'], 'stop() cleans up after each failed start');
  const [row] = sup.status();
  assert.equal(row?.state, 'running');
  assert.equal(row?.restarts, 2);
  assert.equal(row?.lastError, 'boom 2');
  await sup.stopAll(1000);
});

test('a running service that reports a failure is stopped and restarted', async () => {
  const sup = supervisor();
  const service = new ScriptedService('postgres', ['ok', 'ok']);
  sup.run(service);
  await transition(sup, { to: 'running' });
  const first = service.handles[0]!;
  const backoff = transition(sup, { to: 'backoff' });
  const again = transition(sup, { to: 'running', restarts: 1 });
  first.fail(new Error('listener closed'));
  assert.equal((await backoff).error, 'listener closed');
  assert.equal(service.signals[0]?.aborted, true, 'the failed run is aborted');
  await again;
  assert.deepEqual(service.calls, ['start:ok', 'stop', 'start:ok']);

  first.fail(new Error('late report from the old run'));
  assert.equal(sup.status()[0]?.state, 'running', 'a stale handle is ignored');
  assert.equal(service.handles[1]?.restarts, 1);
  await sup.stopAll(1000);
});

test('a failure reported while start() is pending ends that run; its late success is ignored', async () => {
  const sup = supervisor();
  const service = new ScriptedService('app', ['hang', 'ok']);
  sup.run(service);
  const backoff = transition(sup, { to: 'backoff' });
  service.handles[0]!.fail(new Error('upstream gone'));
  await backoff;
  service.finishStart?.();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(sup.status()[0]?.state, 'backoff');
  await transition(sup, { to: 'running', restarts: 1 });
  await sup.stopAll(1000);
});

test('a start that throws synchronously counts as a failed start', async () => {
  const sup = supervisor();
  const service = new ScriptedService('kube', ['throw', 'ok']);
  const running = transition(sup, { to: 'running' });
  sup.run(service);
  await running;
  assert.equal(sup.status()[0]?.lastError, 'sync boom 1');
  await sup.stopAll(1000);
});

test('stopAll stops services in parallel and returns by its deadline when one hangs', async () => {
  const sup = supervisor();
  const quick = new ScriptedService('quick');
  const stuck = new ScriptedService('stuck');
  stuck.stopBehaviour = 'hang';
  sup.run(quick);
  sup.run(stuck);
  await Promise.all([transition(sup, { name: 'quick', to: 'running' }), transition(sup, { name: 'stuck', to: 'running' })]);
  const started = performance.now();
  const report = await sup.stopAll(150);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 140 && elapsed < 1000, `stopAll took ${elapsed} ms`);
  assert.deepEqual(report, { stopped: ['quick'], timedOut: ['stuck'] });
  assert.equal(quick.signals[0]?.aborted, true);
  assert.equal(stuck.signals[0]?.aborted, true);
  const [quickRow, stuckRow] = sup.status();
  assert.equal(quickRow?.state, 'stopped');
  assert.notEqual(stuckRow?.state, 'stopped');
  assert.match(stuckRow?.lastError ?? '', /stuck did not stop within 150 ms/);
  assert.throws(() => sup.run(new ScriptedService('late')), SupervisorStateError);
});

test('stopAll during back-off cancels the restart; a service still starting is stopped', async () => {
  const sup = supervisor({ backoff: { baseMs: 200, maxMs: 200 } });
  const flaky = new ScriptedService('flaky', ['fail', 'ok']);
  const slow = new ScriptedService('slow', ['hang']);
  const inBackoff = transition(sup, { name: 'flaky', to: 'backoff' });
  sup.run(flaky);
  sup.run(slow);
  await inBackoff;
  assert.deepEqual(sup.status().map((row) => row.state), ['backoff', 'starting']);
  const report = await sup.stopAll(500);
  assert.deepEqual(report, { stopped: ['flaky', 'slow'], timedOut: [] });
  assert.equal(slow.signals[0]?.aborted, true);
  assert.deepEqual(slow.calls, ['start:hang', 'stop']);
  slow.finishStart?.();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(flaky.calls, ['start:fail', 'stop'], 'no restart after stopAll');
  assert.deepEqual(sup.status().map((row) => row.state), ['stopped', 'stopped'], 'a start finishing after stopAll changes nothing');
});

test('status reports state, since, restarts and health; ready() needs all running and healthy', async () => {
  const clock = new FakeClock(new Date('2026-05-01T00:00:00Z'));
  const sup = supervisor({ clock });
  const web = new ScriptedService('web');
  sup.run(web);
  assert.deepEqual(sup.status(), [{ name: 'web', state: 'starting', restarts: 0, since: '2026-05-01T00:00:00.000Z' }]);
  assert.equal(sup.ready(), false);
  clock.advance(5000);
  await transition(sup, { to: 'running' });
  assert.deepEqual(sup.status(), [{ name: 'web', state: 'running', restarts: 0, since: '2026-05-01T00:00:05.000Z', health: { ok: true } }]);
  assert.equal(sup.ready(), true);
  web.healthValue = { ok: false, detail: 'upstream refused' };
  assert.deepEqual(sup.status()[0]?.health, { ok: false, detail: 'upstream refused' });
  assert.equal(sup.ready(), false);
  assert.throws(() => sup.run(new ScriptedService('web')), /service web is supervised already/);
  await sup.stopAll(1000);
  assert.equal(sup.status()[0]?.state, 'stopped');
  assert.equal(sup.status()[0]?.health, undefined);
});

test('a run that stayed up for stableAfterMs resets the back-off', async () => {
  const clock = new FakeClock();
  const sup = supervisor({ clock, stableAfterMs: 60_000 });
  const service = new ScriptedService('ssh', ['ok', 'ok', 'ok', 'ok']);
  sup.run(service);
  const delays: number[] = [];
  for (const [i, upFor] of [0, 0, 60_000].entries()) {
    await transition(sup, { to: 'running', restarts: i });
    clock.advance(upFor);
    const backoff = transition(sup, { to: 'backoff' });
    service.handles[i]!.fail(new Error(`crash ${i}`));
    delays.push((await backoff).delayMs!);
  }
  assert.deepEqual(delays, [39, 79, 39]);
  await sup.stopAll(1000);
});

test('after maxConsecutiveFailures the service is failed and not restarted', async () => {
  const sup = supervisor({ maxConsecutiveFailures: 2 });
  const service = new ScriptedService('rdp', ['fail', 'fail', 'ok']);
  const failed = transition(sup, { to: 'failed' });
  sup.run(service);
  const event = await failed;
  assert.equal(event.error, 'boom 2');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(service.calls, ['start:fail', 'stop', 'start:fail', 'stop']);
  assert.equal(sup.status()[0]?.state, 'failed');
  assert.equal(sup.ready(), false);
  assert.deepEqual(await sup.stopAll(1000), { stopped: ['rdp'], timedOut: [] });
});

test('a stop() that rejects or hangs after a failure does not block the restart', async () => {
  const sup = supervisor({ stopTimeoutMs: 50 });
  const broken = new ScriptedService('broken', ['fail', 'ok']);
  broken.stopBehaviour = 'reject';
  const stuck = new ScriptedService('stuck', ['fail', 'ok']);
  stuck.stopBehaviour = 'hang';
  const both = Promise.all([transition(sup, { name: 'broken', to: 'running' }), transition(sup, { name: 'stuck', to: 'running' })]);
  sup.run(broken);
  sup.run(stuck);
  await both;
  assert.deepEqual(sup.status().map((row) => row.restarts), [1, 1]);
  stuck.stopBehaviour = 'ok';
  await sup.stopAll(1000);
});
