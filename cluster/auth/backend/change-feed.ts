import type { BackendEvent, Watcher } from './backend.ts';
import { WatcherLaggedError } from './errors.ts';

/**
 * Fans a backend's change log out to watchers. One reader per backend polls the log
 * (`revision > lastSeen`, every `pollIntervalMs`, and right after a local write) and
 * hands each change to the watchers whose prefix it falls under. The log lives in the
 * database, so changes made by other processes arrive the same way as our own.
 *
 * Memory is bounded: a watcher whose consumer lets `bufferSize` events pile up is ended
 * with WatcherLaggedError, as are all watchers when the log was pruned past the reader.
 */

/** Where the feed reads changes from. */
export interface ChangeSource {
  /** The newest revision in the store now (0 when nothing was ever written). */
  current(): number;
  /**
   * Up to `limit` changes with revision > `after`, in revision order; `missed` is true
   * when some changes after `after` were pruned from the log before being read.
   */
  since(after: number, limit: number): { events: BackendEvent[]; missed: boolean };
}

export interface ChangeFeedOptions {
  pollIntervalMs: number;
  /** Events a watcher may hold unread before it is ended as lagging. */
  bufferSize: number;
  /** Changes read per query. */
  batchSize: number;
}

/** Changes read per poll before yielding to the event loop. */
const maxBatchesPerPoll = 10;

/** The polling reader behind `Backend.watch`; see the file comment. */
export class ChangeFeed {
  readonly #source: ChangeSource;
  readonly #options: ChangeFeedOptions;
  readonly #watchers = new Set<FeedWatcher>();
  #lastSeen = 0;
  #timer: NodeJS.Timeout | undefined;
  #wakeScheduled = false;

  constructor(source: ChangeSource, options: ChangeFeedOptions) {
    this.#source = source;
    this.#options = options;
  }

  /** A watcher for changes under `prefix` made from now on. */
  watch(prefix: string): Watcher {
    const start = this.#source.current();
    if (this.#watchers.size === 0) {
      this.#lastSeen = start;
      this.#timer = setInterval(() => this.#poll(), this.#options.pollIntervalMs).unref();
    }
    const watcher = new FeedWatcher(prefix, start, this.#options.bufferSize, (w) => this.#remove(w));
    this.#watchers.add(watcher);
    return watcher;
  }

  /** Reads the log soon (after a local write), coalescing bursts into one read. */
  wake(): void {
    if (this.#wakeScheduled || this.#watchers.size === 0) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      this.#poll();
    });
  }

  /** Ends every watcher and stops polling. */
  close(): void {
    for (const watcher of [...this.#watchers]) watcher.close();
  }

  #poll(): void {
    for (let batch = 0; batch < maxBatchesPerPoll; batch++) {
      if (this.#watchers.size === 0) return;
      let page: { events: BackendEvent[]; missed: boolean };
      try {
        page = this.#source.since(this.#lastSeen, this.#options.batchSize);
      } catch (err) {
        this.#failAll(err as Error);
        return;
      }
      if (page.missed) {
        this.#failAll(new WatcherLaggedError('backend watcher fell behind: the change log was pruned before it was read; re-read the range and watch again'));
        return;
      }
      for (const event of page.events) this.#dispatch(event);
      if (page.events.length < this.#options.batchSize) return;
    }
    this.wake(); // more is waiting: continue after other callbacks have had a turn
  }

  #dispatch(event: BackendEvent): void {
    const revision = event.type === 'put' ? event.item.revision : event.revision;
    const key = event.type === 'put' ? event.item.key : event.key;
    this.#lastSeen = revision;
    for (const watcher of this.#watchers) {
      if (revision > watcher.start && key.startsWith(watcher.prefix)) watcher.push(event);
    }
  }

  #failAll(err: Error): void {
    for (const watcher of [...this.#watchers]) watcher.fail(err);
  }

  #remove(watcher: FeedWatcher): void {
    this.#watchers.delete(watcher);
    if (this.#watchers.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** One subscription: a bounded queue and the `next()` calls waiting on it. */
class FeedWatcher implements Watcher {
  readonly prefix: string;
  readonly start: number;
  readonly #bufferSize: number;
  readonly #onEnd: (watcher: FeedWatcher) => void;
  #queue: BackendEvent[] = [];
  #head = 0;
  #waiters: Array<{ resolve(result: IteratorResult<BackendEvent>): void; reject(err: Error): void }> = [];
  #ended = false;
  #error: Error | undefined;

  constructor(prefix: string, start: number, bufferSize: number, onEnd: (watcher: FeedWatcher) => void) {
    this.prefix = prefix;
    this.start = start;
    this.#bufferSize = bufferSize;
    this.#onEnd = onEnd;
  }

  push(event: BackendEvent): void {
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve({ done: false, value: event });
    } else if (this.#queue.length - this.#head >= this.#bufferSize) {
      this.fail(new WatcherLaggedError(`backend watcher fell more than ${this.#bufferSize} events behind (its consumer is too slow); re-read the range and watch again`));
    } else {
      this.#queue.push(event);
    }
  }

  /** Ends the watcher with `err`, delivered after the events already queued. */
  fail(err: Error): void {
    if (this.#ended) return;
    this.#end();
    const [first, ...rest] = this.#waiters.splice(0);
    if (first === undefined) this.#error = err;
    else first.reject(err);
    for (const waiter of rest) waiter.resolve({ done: true, value: undefined });
  }

  /** Ends the iteration now; events not yet read are dropped. */
  close(): void {
    this.#end();
    this.#queue = [];
    this.#head = 0;
    this.#error = undefined;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): AsyncIterator<BackendEvent> {
    return {
      next: () => this.#next(),
      return: async () => {
        this.close();
        return { done: true, value: undefined };
      },
    };
  }

  #next(): Promise<IteratorResult<BackendEvent>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#error !== undefined) {
      const err = this.#error;
      this.#error = undefined;
      return Promise.reject(err);
    }
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd(this);
  }
}
