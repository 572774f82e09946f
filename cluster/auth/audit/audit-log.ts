/**
 * The audit log over the Backend: append-only events under `/audit/<id>`, where the id
 * begins with the event time (see audit-event.ts), so a search by time is a key range.
 *
 * `emit` writes with `create`, which never overwrites, and resolves only once the
 * backend has committed the write (the SQLite backend runs synchronous=FULL, so the
 * event is on disk). A service that cannot write the audit event for a security
 * decision should fail closed: `emit` throws, and the caller refuses the action.
 *
 * ```ts
 * const audit = new AuditLog(backend, { cluster: 'root.example.com', clock });
 * await audit.emit({ type: 'user.login', identity: { user: 'alice' }, outcome: 'success' });
 * const failed = await audit.search({ from, to, types: ['user.login.failed'], limit: 50, order: 'desc' });
 * await audit.exportJsonl({ from, to }, fs.createWriteStream('audit.jsonl'));
 * for await (const event of audit.subscribe({ types: ['session.*'] })) …
 * ```
 */
import type { Writable } from 'node:stream';
import { z } from 'zod';
import type { Backend, Item } from '../backend/backend.ts';
import { AlreadyExistsError } from '../../../protocols/errors.ts';
import { systemClock, type Clock } from '../../common/clock.ts';
import { parseWith } from '../../common/validation.ts';
import { AuditExportError } from './errors.ts';
import {
  auditEventSchema,
  auditIdFloor,
  newAuditId,
  sanitizeFields,
  type AuditEvent,
  type AuditEventInput,
} from './audit-event.ts';

export const auditPrefix = '/audit/';
/** Events one search returns at most. */
export const maxSearchLimit = 10_000;
const defaultSearchLimit = 1000;
const pageSize = 500;
const maxCreateAttempts = 3;

const filterSchema = z.strictObject({
  /** Exact types, or `area.*` for every type under an area. */
  types: z.array(z.string().regex(/^[a-z0-9_.]+(\.\*)?$/, { error: "expected a type such as user.login or session.*" })).optional(),
  /** Only events whose identity.user is this. */
  user: z.string().min(1).optional(),
});
export type AuditFilter = z.input<typeof filterSchema>;

const querySchema = filterSchema
  .extend({
    /** Inclusive. */
    from: z.date({ error: 'expected a Date' }),
    /** Exclusive. */
    to: z.date({ error: 'expected a Date' }),
    limit: z.number().int().min(1).max(maxSearchLimit, { error: `must be at most ${maxSearchLimit}` }).optional(),
    order: z.enum(['asc', 'desc']).default('asc'),
  })
  .refine((q) => q.from.getTime() < q.to.getTime(), { error: 'from must be before to', path: ['from'] });
export type AuditQuery = z.input<typeof querySchema>;

/** A live tail of new events; iterate it, and close it when done. */
export interface AuditSubscription extends AsyncIterable<AuditEvent> {
  close(): void;
}

export interface AuditLogOptions {
  /** The cluster name written into every event. */
  cluster: string;
  clock?: Clock;
}

/** The cluster's audit log; see the file comment. */
export class AuditLog {
  readonly #backend: Backend;
  readonly #cluster: string;
  readonly #clock: Clock;

  constructor(backend: Backend, options: AuditLogOptions) {
    this.#backend = backend;
    this.#cluster = options.cluster;
    this.#clock = options.clock ?? systemClock;
  }

  /** Validates, redacts and appends an event; resolves with the stored event once the write is durable. */
  async emit(input: AuditEventInput): Promise<AuditEvent> {
    const time = this.#clock.now();
    for (let attempt = 1; ; attempt++) {
      const event = parseWith(
        auditEventSchema,
        { ...input, id: newAuditId(time), time: time.toISOString(), cluster: this.#cluster, fields: sanitizeFields(input.fields) },
        `audit event ${String(input.type)}`,
      );
      try {
        await this.#backend.create({ key: auditPrefix + event.id, value: JSON.stringify(event) });
        return event;
      } catch (err) {
        // An id collision (same millisecond, sequence and 32 random bits) only costs a new id.
        if (!(err instanceof AlreadyExistsError) || attempt >= maxCreateAttempts) throw err;
      }
    }
  }

  /**
   * Stores several events in one backend transaction when the backend can (busy emitters
   * such as the database query audit). `checked`: the caller has parsed every input with
   * `auditInputSchema` (audit-event.ts) already (the EmitAudit API does), so the events are not
   * parsed a second time; the parts the log adds (id, time, cluster) are its own.
   */
  async emitMany(inputs: AuditEventInput[], options: { checked?: boolean } = {}): Promise<AuditEvent[]> {
    const createMany = this.#backend.createMany?.bind(this.#backend);
    if (!createMany || inputs.length <= 1) {
      const out: AuditEvent[] = [];
      for (const input of inputs) out.push(await this.emit(input));
      return out;
    }
    const time = this.#clock.now();
    for (let attempt = 1; ; attempt++) {
      const events = inputs.map((input) => options.checked ? this.#assemble(input, time) : parseWith(
        auditEventSchema,
        { ...input, id: newAuditId(time), time: time.toISOString(), cluster: this.#cluster, fields: sanitizeFields(input.fields) },
        `audit event ${String(input.type)}`,
      ));
      try {
        await createMany(events.map((event) => ({ key: auditPrefix + event.id, value: JSON.stringify(event) })));
        return events;
      } catch (err) {
        if (!(err instanceof AlreadyExistsError) || attempt >= maxCreateAttempts) throw err;
      }
    }
  }

  /** An input parsed already, as the stored event (keys in the schema's order, as a parse gives them). */
  #assemble(input: AuditEventInput, time: Date): AuditEvent {
    return {
      id: newAuditId(time),
      time: time.toISOString(),
      type: input.type,
      cluster: this.#cluster,
      identity: input.identity,
      ...(input.resource !== undefined ? { resource: input.resource } : {}),
      outcome: input.outcome,
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
      fields: sanitizeFields(input.fields),
    };
  }

  /** Events in [from, to) that match the filter, oldest first (or newest first with order 'desc'); at most `limit` (default 1,000). */
  async search(query: AuditQuery): Promise<AuditEvent[]> {
    const parsed = parseWith(querySchema, query, 'audit search');
    const limit = parsed.limit ?? defaultSearchLimit;
    const matches = _matcher(parsed);
    if (parsed.order === 'asc') {
      const out: AuditEvent[] = [];
      for await (const event of this.#scan(parsed.from, parsed.to)) {
        if (!matches(event)) continue;
        out.push(event);
        if (out.length >= limit) break;
      }
      return out;
    }
    // The backend ranges forwards only: keep the newest `limit` while scanning the window.
    let newest: AuditEvent[] = [];
    for await (const event of this.#scan(parsed.from, parsed.to)) {
      if (!matches(event)) continue;
      newest.push(event);
      if (newest.length >= 2 * limit) newest = newest.slice(-limit);
    }
    return newest.slice(-limit).reverse();
  }

  /**
   * Writes the matching events as JSON lines to `out`, oldest first, waiting for
   * 'drain' when the stream asks; returns how many. Without `limit`, the whole window.
   * Leaves `out` open.
   */
  async exportJsonl(query: Omit<AuditQuery, 'order'>, out: Writable): Promise<number> {
    const parsed = parseWith(querySchema, { ...query, order: 'asc' }, 'audit export');
    const matches = _matcher(parsed);
    let count = 0;
    for await (const event of this.#scan(parsed.from, parsed.to)) {
      if (!matches(event)) continue;
      if (!out.write(JSON.stringify(event) + '\n')) await _drained(out);
      if (++count === parsed.limit) break;
    }
    return count;
  }

  /** New events (from now on) that match the filter, as they are written by any process sharing the backend. */
  subscribe(filter: AuditFilter = {}): AuditSubscription {
    const matches = _matcher(parseWith(filterSchema, filter, 'audit subscribe'));
    const watcher = this.#backend.watch(auditPrefix);
    async function* events(): AsyncGenerator<AuditEvent> {
      for await (const change of watcher) {
        if (change.type !== 'put') continue;
        const event = _parse(change.item);
        if (matches(event)) yield event;
      }
    }
    const iterator = events();
    return { [Symbol.asyncIterator]: () => iterator, close: () => watcher.close() };
  }

  /** Every stored event with from <= time < to, in id (time) order, read a page at a time. */
  async *#scan(from: Date, to: Date): AsyncGenerator<AuditEvent> {
    const end = auditPrefix + auditIdFloor(to);
    // Ids at `from` extend this key, so they sort after it: `after` is strict but includes them.
    let after = auditPrefix + auditIdFloor(from);
    for (;;) {
      const items = await this.#backend.range(auditPrefix, { after, limit: pageSize });
      for (const item of items) {
        if (item.key >= end) return;
        yield _parse(item);
      }
      if (items.length < pageSize) return;
      after = items.at(-1)!.key;
    }
  }
}

function _parse(item: Item): AuditEvent {
  return parseWith(auditEventSchema, JSON.parse(item.value), `stored audit event ${item.key}`);
}

function _matcher(filter: z.output<typeof filterSchema>): (event: AuditEvent) => boolean {
  const exact = new Set(filter.types?.filter((t) => !t.endsWith('.*')));
  const areas = filter.types?.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -1)) ?? [];
  return (event) => {
    if (filter.user !== undefined && event.identity.user !== filter.user) return false;
    if (filter.types === undefined) return true;
    return exact.has(event.type) || areas.some((area) => event.type.startsWith(area));
  };
}

/** Resolves on 'drain'; rejects if the stream errors or closes first. */
function _drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new AuditExportError('audit export stopped: the output stream closed before every event was written; run the export again'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}
