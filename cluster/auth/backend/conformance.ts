import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FakeClock } from '../../common/clock.ts';
import type { Backend, BackendEvent, Item, Watcher } from './backend.ts';

/**
 * The behaviour every Backend must have, as node:test cases. A backend's test file
 * calls `runBackendConformance('sqlite', open)`; `open` gives a fresh, empty store
 * driven by the FakeClock it returns, whose expiry sweep runs at least every second
 * (the expiry-watch case waits up to 10 s for it).
 */

export interface ConformanceSubject {
  backend: Backend;
  clock: FakeClock;
  cleanup(): Promise<void>;
}

type Open = () => Promise<ConformanceSubject>;

/** Registers the conformance cases for the backend that `open` creates. */
export function runBackendConformance(name: string, open: Open): void {
  const test = (title: string, body: (s: ConformanceSubject) => Promise<void>) => it(title, () => withSubject(open, body));

  describe(`${name} backend conformance`, () => {
    describe('get, put, create', () => {
      test('get of a missing key is undefined', async ({ backend }) => {
        assert.equal(await backend.get('/nothing/here'), undefined);
      });

      test('put then get returns the item, with its expiry when it has one', async ({ backend, clock }) => {
        const plain = await backend.put({ key: '/a/plain', value: 'one' });
        assert.deepEqual(await backend.get('/a/plain'), plain);
        assert.equal(plain.value, 'one');
        assert.equal('expires' in plain, false);
        const expires = new Date(clock.now().getTime() + 60_000);
        const timed = await backend.put({ key: '/a/timed', value: '{"x":1}', expires });
        assert.deepEqual(timed.expires, expires);
        assert.deepEqual(await backend.get('/a/timed'), timed);
      });

      test('put overwrites and assigns a higher revision', async ({ backend }) => {
        const first = await backend.put({ key: '/k', value: 'v1' });
        const second = await backend.put({ key: '/k', value: 'v2' });
        assert.ok(second.revision > first.revision);
        assert.equal((await backend.get('/k'))?.value, 'v2');
      });

      test('values round-trip exactly, including empty and non-ASCII text', async ({ backend }) => {
        for (const value of ['', 'é\u{1F600}\n\t"\'', 'x'.repeat(100_000)]) {
          await backend.put({ key: '/v', value });
          assert.equal((await backend.get('/v'))?.value, value);
        }
      });

      test('create fails with AlreadyExistsError on an existing key and keeps the value', async ({ backend }) => {
        const created = await backend.create({ key: '/c', value: 'first' });
        await assert.rejects(backend.create({ key: '/c', value: 'second' }), { code: 'PST_ALREADY_EXISTS' });
        assert.deepEqual(await backend.get('/c'), created);
      });

      test('create succeeds over an expired item', async ({ backend, clock }) => {
        await backend.put({ key: '/c', value: 'old', expires: new Date(clock.now().getTime() + 1000) });
        clock.advance(1000);
        const created = await backend.create({ key: '/c', value: 'new' });
        assert.deepEqual(await backend.get('/c'), created);
      });

      test('bad keys and revisions are rejected with BadInputError', async ({ backend }) => {
        for (const key of ['', 'a\0b', 'lone \uD800 surrogate']) {
          await assert.rejects(backend.put({ key, value: 'v' }), { code: 'PST_BAD_INPUT' });
        }
        await assert.rejects(backend.compareAndSwap(0, { key: '/k', value: 'v' }), { code: 'PST_BAD_INPUT' });
        await assert.rejects(backend.put({ key: '/k', value: 'v', expires: new Date(Number.NaN) }), { code: 'PST_BAD_INPUT' });
        await assert.rejects(backend.range('/', { limit: -1 }), { code: 'PST_BAD_INPUT' });
      });
    });

    describe('compare-and-swap and delete', () => {
      test('compare-and-swap replaces when the revision matches', async ({ backend }) => {
        const first = await backend.put({ key: '/cas', value: '1' });
        const second = await backend.compareAndSwap(first.revision, { key: '/cas', value: '2' });
        assert.ok(second.revision > first.revision);
        assert.deepEqual(await backend.get('/cas'), second);
      });

      test('compare-and-swap with a stale revision fails with CompareFailedError and changes nothing', async ({ backend }) => {
        const first = await backend.put({ key: '/cas', value: '1' });
        const second = await backend.put({ key: '/cas', value: '2' });
        await assert.rejects(backend.compareAndSwap(first.revision, { key: '/cas', value: '3' }), { code: 'PST_COMPARE_FAILED' });
        assert.deepEqual(await backend.get('/cas'), second);
      });

      test('compare-and-swap on a missing or expired key fails with NotFoundError', async ({ backend, clock }) => {
        await assert.rejects(backend.compareAndSwap(1, { key: '/missing', value: 'x' }), { code: 'PST_NOT_FOUND' });
        const timed = await backend.put({ key: '/timed', value: 'x', expires: new Date(clock.now().getTime() + 10) });
        clock.advance(10);
        await assert.rejects(backend.compareAndSwap(timed.revision, { key: '/timed', value: 'y' }), { code: 'PST_NOT_FOUND' });
        assert.equal(await backend.get('/timed'), undefined);
      });

      test('delete removes the item; deleting a missing or expired key fails with NotFoundError', async ({ backend, clock }) => {
        await backend.put({ key: '/d', value: 'x' });
        await backend.delete('/d');
        assert.equal(await backend.get('/d'), undefined);
        await assert.rejects(backend.delete('/d'), { code: 'PST_NOT_FOUND' });
        await backend.put({ key: '/e', value: 'x', expires: new Date(clock.now().getTime() + 5) });
        clock.advance(5);
        await assert.rejects(backend.delete('/e'), { code: 'PST_NOT_FOUND' });
      });

      test('revisions strictly increase across keys and kinds of write', async ({ backend }) => {
        const revisions: number[] = [];
        revisions.push((await backend.put({ key: '/r/a', value: '1' })).revision);
        revisions.push((await backend.create({ key: '/r/b', value: '1' })).revision);
        revisions.push((await backend.compareAndSwap(revisions[0]!, { key: '/r/a', value: '2' })).revision);
        await backend.delete('/r/b');
        await backend.deleteRange('/r/');
        revisions.push((await backend.put({ key: '/r/b', value: '3' })).revision);
        revisions.push((await backend.put({ key: '/other', value: '1' })).revision);
        for (let i = 1; i < revisions.length; i++) assert.ok(revisions[i]! > revisions[i - 1]!, `revisions ${revisions.join(',')}`);
        // The delete and deleteRange took revisions too: at least two are missing from the list.
        assert.ok(revisions.at(-2)! - revisions[2]! >= 3);
      });

      test('concurrent compare-and-swap increments from one process lose nothing', async ({ backend }) => {
        await backend.put({ key: '/counter', value: '0' });
        const workers = 20;
        const perWorker = 25;
        let conflicts = 0;
        const increment = async () => {
          for (;;) {
            const current = (await backend.get('/counter'))!;
            try {
              await backend.compareAndSwap(current.revision, { key: '/counter', value: String(Number(current.value) + 1) });
              return;
            } catch (err) {
              if ((err as { code?: string }).code !== 'PST_COMPARE_FAILED') throw err;
              conflicts++;
            }
          }
        };
        await Promise.all(Array.from({ length: workers }, async () => {
          for (let i = 0; i < perWorker; i++) await increment();
        }));
        assert.equal((await backend.get('/counter'))?.value, String(workers * perWorker));
        assert.ok(conflicts > 0, 'the workers never raced; the test did not exercise compare-and-swap');
      });
    });

    describe('range and deleteRange', () => {
      test('range returns the items under the prefix in key order, and nothing else', async ({ backend }) => {
        for (const key of ['/users/carol', '/users/alice', '/users2/x', '/user', '/users/bob/keys/1', '/roles/admin']) {
          await backend.put({ key, value: key });
        }
        assert.deepEqual(keys(await backend.range('/users/')), ['/users/alice', '/users/bob/keys/1', '/users/carol']);
        assert.deepEqual(keys(await backend.range('/nope/')), []);
        assert.equal((await backend.range('')).length, 6);
      });

      test('range pages with limit and after', async ({ backend }) => {
        const all = Array.from({ length: 25 }, (_, i) => `/p/${String(i).padStart(2, '0')}`);
        for (const key of [...all].reverse()) await backend.put({ key, value: 'x' });
        await backend.put({ key: '/q/00', value: 'x' });
        assert.deepEqual(keys(await backend.range('/p/', { limit: 3 })), all.slice(0, 3));
        assert.deepEqual(await backend.range('/p/', { limit: 0 }), []);
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await backend.range('/p/', { limit: 10, ...(after === undefined ? {} : { after }) });
          if (page.length === 0) break;
          seen.push(...keys(page));
          after = page.at(-1)!.key;
        }
        assert.deepEqual(seen, all);
        assert.deepEqual(keys(await backend.range('/p/', { after: '/a' })), all, 'after before the prefix');
        assert.deepEqual(keys(await backend.range('/p/', { after: '/p/23' })), ['/p/24']);
        assert.deepEqual(keys(await backend.range('/p/', { after: '/p/24' })), []);
      });

      test('prefixes holding %, _ and backslash match literally', async ({ backend }) => {
        for (const key of ['/a%/1', '/ab/1', '/a_/1', '/aX/1', '/a\\/1', '/a\\\\/1', '/a%b', '/a%%/1']) {
          await backend.put({ key, value: 'x' });
        }
        assert.deepEqual(keys(await backend.range('/a%/')), ['/a%/1']);
        assert.deepEqual(keys(await backend.range('/a_/')), ['/a_/1']);
        assert.deepEqual(keys(await backend.range('/a\\/')), ['/a\\/1']);
        assert.deepEqual(keys(await backend.range('/a%')), ['/a%%/1', '/a%/1', '/a%b']);
        assert.equal(await backend.deleteRange('/a_/'), 1);
        assert.ok(await backend.get('/aX/1'));
      });

      test('keys are ordered by code point and prefixes with high code points select exactly', async ({ backend }) => {
        const under = ['/u/\u00e9', '/u/\uE000', '/u/\uFFFD', '/u/\uFFFF', '/u/\uFFFFx', '/u/\u{1F600}', '/u/\u{10FFFF}'];
        for (const key of [...under, '/v', '/u0']) await backend.put({ key, value: 'x' });
        assert.deepEqual(keys(await backend.range('/u/')), under);
        assert.deepEqual(keys(await backend.range('/u/\uFFFF')), ['/u/\uFFFF', '/u/\uFFFFx']);
        assert.deepEqual(keys(await backend.range('/u/\u{10FFFF}')), ['/u/\u{10FFFF}']);
        assert.deepEqual(keys(await backend.range('/u/\u{1F600}')), ['/u/\u{1F600}']);
      });

      test('deleteRange removes the items under the prefix and returns how many', async ({ backend }) => {
        for (const key of ['/t/1', '/t/2', '/t/3/x', '/t2', '/s']) await backend.put({ key, value: 'x' });
        assert.equal(await backend.deleteRange('/t/'), 3);
        assert.deepEqual(keys(await backend.range('')), ['/s', '/t2']);
        assert.equal(await backend.deleteRange('/t/'), 0);
      });
    });

    describe('expiry', () => {
      test('an item is visible until its expiry and invisible from then on', async ({ backend, clock }) => {
        const expires = new Date(clock.now().getTime() + 30_000);
        await backend.put({ key: '/ttl/a', value: 'x', expires });
        await backend.put({ key: '/ttl/b', value: 'y' });
        clock.advance(29_999);
        assert.ok(await backend.get('/ttl/a'));
        assert.equal((await backend.range('/ttl/')).length, 2);
        clock.advance(1);
        assert.equal(await backend.get('/ttl/a'), undefined);
        assert.deepEqual(keys(await backend.range('/ttl/')), ['/ttl/b']);
        assert.equal(await backend.deleteRange('/ttl/'), 1);
      });
    });

    describe('watch', () => {
      test('a watcher sees puts and deletes under its prefix, in order, and only those made after the call', async ({ backend }) => {
        await backend.put({ key: '/w/before', value: 'old' });
        const watcher = backend.watch('/w/');
        try {
          const a = await backend.put({ key: '/w/a', value: '1' });
          await backend.put({ key: '/x/a', value: 'elsewhere' });
          await backend.put({ key: '/w', value: 'not under /w/' });
          const b = await backend.compareAndSwap(a.revision, { key: '/w/a', value: '2' });
          await backend.delete('/w/before');
          const events = await take(watcher, 3);
          assert.deepEqual(events.slice(0, 2), [{ type: 'put', item: a }, { type: 'put', item: b }]);
          assert.equal(events[2]!.type, 'delete');
          assert.equal(keyOf(events[2]!), '/w/before');
          assert.ok(revisionOf(events[2]!) > b.revision);
          await backend.deleteRange('/w/');
          assert.deepEqual(await take(watcher, 1).then((e) => e.map(keyOf)), ['/w/a']);
        } finally {
          watcher.close();
        }
      });

      test('watchers on different prefixes each see their own changes', async ({ backend }) => {
        const users = backend.watch('/users/');
        const roles = backend.watch('/roles/');
        try {
          await backend.put({ key: '/roles/r1', value: 'x' });
          await backend.put({ key: '/users/u1', value: 'x' });
          await backend.put({ key: '/roles/r2', value: 'x' });
          assert.deepEqual((await take(users, 1)).map(keyOf), ['/users/u1']);
          assert.deepEqual((await take(roles, 2)).map(keyOf), ['/roles/r1', '/roles/r2']);
        } finally {
          users.close();
          roles.close();
        }
      });

      test('a watcher sees an expired item deleted by the sweep', async ({ backend, clock }) => {
        const watcher = backend.watch('/exp/');
        try {
          const item = await backend.put({ key: '/exp/a', value: 'x', expires: new Date(clock.now().getTime() + 1000) });
          assert.deepEqual(await take(watcher, 1), [{ type: 'put', item }]);
          clock.advance(1000);
          const [event] = await take(watcher, 1, 10_000);
          assert.equal(event!.type, 'delete');
          assert.equal(keyOf(event!), '/exp/a');
          assert.ok(revisionOf(event!) > item.revision);
        } finally {
          watcher.close();
        }
      });

      test('close ends the iteration, also of a pending next()', async ({ backend }) => {
        const watcher = backend.watch('/c/');
        const pending = watcher[Symbol.asyncIterator]().next();
        watcher.close();
        assert.deepEqual(await pending, { done: true, value: undefined });
        await backend.put({ key: '/c/after', value: 'x' });
        const seen: BackendEvent[] = [];
        for await (const event of watcher) seen.push(event);
        assert.deepEqual(seen, []);
      });

      test('breaking out of for-await closes the watcher', async ({ backend }) => {
        const watcher = backend.watch('/b/');
        await backend.put({ key: '/b/1', value: 'x' });
        for await (const event of watcher) {
          assert.equal(keyOf(event), '/b/1');
          break;
        }
        assert.deepEqual(await watcher[Symbol.asyncIterator]().next(), { done: true, value: undefined });
      });

      test('closing the backend ends its watchers and later calls fail', async ({ backend }) => {
        const watcher = backend.watch('/');
        const pending = watcher[Symbol.asyncIterator]().next();
        await backend.close();
        assert.deepEqual(await pending, { done: true, value: undefined });
        await assert.rejects(backend.get('/k'), { code: 'PST_BACKEND_CLOSED' });
        await assert.rejects(backend.put({ key: '/k', value: 'v' }), { code: 'PST_BACKEND_CLOSED' });
      });
    });
  });
}

async function withSubject(open: Open, body: (s: ConformanceSubject) => Promise<void>): Promise<void> {
  const subject = await open();
  try {
    await body(subject);
  } finally {
    await subject.cleanup();
  }
}

function keys(items: Item[]): string[] {
  return items.map((item) => item.key);
}

function keyOf(event: BackendEvent): string {
  return event.type === 'put' ? event.item.key : event.key;
}

function revisionOf(event: BackendEvent): number {
  return event.type === 'put' ? event.item.revision : event.revision;
}

/** The next `count` events from the watcher, or a failure naming what arrived after `timeoutMs`. */
export async function take(watcher: Watcher, count: number, timeoutMs = 5000): Promise<BackendEvent[]> {
  const iterator = watcher[Symbol.asyncIterator]();
  const events: BackendEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watcher gave ${events.length} of ${count} events in ${timeoutMs} ms: ${JSON.stringify(events)}`)), timeoutMs);
  });
  try {
    while (events.length < count) {
      const result = await Promise.race([iterator.next(), timeout]);
      if (result.done) throw new Error(`watcher ended after ${events.length} of ${count} events`);
      events.push(result.value);
    }
    return events;
  } finally {
    clearTimeout(timer);
  }
}
