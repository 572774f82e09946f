/**
 * The one storage interface under all cluster state, after Teleport's lib/backend:
 * a narrow ordered key-value store with revisions, TTLs and a change stream.
 * Typed stores (users, roles, tokens, audit, …) sit above it and never see SQL.
 *
 * Keys are `/`-separated paths (`/users/alice`). Values are opaque strings (the
 * stores put JSON in them). Every write gets a new, strictly increasing revision
 * across the whole backend; compare-and-swap matches on it. An item whose `expires`
 * has passed is invisible to every read, and its removal is announced to watchers.
 */
export interface Item {
  key: string;
  value: string;
  revision: number;
  expires?: Date;
}

/** What a caller writes: the backend assigns the revision. */
export interface ItemInput {
  key: string;
  value: string;
  expires?: Date;
}

export type BackendEvent =
  | { type: 'put'; item: Item }
  | { type: 'delete'; key: string; revision: number };

/** A live subscription to changes under a prefix; iterate it, close it when done. */
export interface Watcher extends AsyncIterable<BackendEvent> {
  close(): void;
}

export interface RangeOptions {
  /** At most this many items, in key order. */
  limit?: number;
  /** Only keys strictly after this one (for paging). */
  after?: string;
}

export interface Backend {
  get(key: string): Promise<Item | undefined>;
  /** Creates or overwrites. */
  put(input: ItemInput): Promise<Item>;
  /** Creates only if absent (or expired); otherwise AlreadyExistsError. */
  create(input: ItemInput): Promise<Item>;
  /** Creates several items in one transaction (all or none); AlreadyExistsError if any exists. Optional: callers fall back to create(). */
  createMany?(inputs: ItemInput[]): Promise<Item[]>;
  /** Replaces only if the stored revision equals `expectedRevision`; otherwise CompareFailedError (NotFoundError if absent). */
  compareAndSwap(expectedRevision: number, input: ItemInput): Promise<Item>;
  /** Removes; NotFoundError if absent. */
  delete(key: string): Promise<void>;
  /** Removes every item under the prefix; returns how many. */
  deleteRange(prefix: string): Promise<number>;
  /** Items whose key starts with `prefix`, in key order. */
  range(prefix: string, options?: RangeOptions): Promise<Item[]>;
  /**
   * Changes under `prefix` made after the call, by this process or any other sharing
   * the store, in revision order.
   */
  watch(prefix: string): Watcher;
  close(): Promise<void>;
}
