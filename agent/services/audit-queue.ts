/**
 * Audit events an agent service sends to auth (`emitAudit`), buffered and retried in
 * the background so a session never waits for (or fails on) the audit log. Bounded:
 * beyond `maxEvents` the oldest are dropped and the drop is logged. An event auth
 * refuses as malformed is logged and skipped (it would repeat forever).
 * The same policy as the SSH service's (ssh-wiring.ts), as a reusable part.
 */
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import type { Logger } from '../../cluster/common/logger.ts';

/** What auth's emitAudit takes (audit-event.ts, without id, time and cluster). */
export interface AgentAuditEvent {
  type: string;
  identity: { user?: string; roles?: string[]; addr?: string };
  resource: { kind: string; name: string };
  outcome: 'allow' | 'deny' | 'success' | 'failure';
  reason?: string;
  fields: Record<string, unknown>;
}

export interface AuditQueueOptions {
  auth: () => AuthClient;
  logger: Logger;
  /** Default 10,000. */
  maxEvents?: number;
  /** Longest wait between retries. Default 30 s. */
  maxRetryMs?: number;
}

export class AuditQueue {
  readonly #options: AuditQueueOptions;
  readonly #queue: AgentAuditEvent[] = [];
  #dropped = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #running = false;

  constructor(options: AuditQueueOptions) {
    this.#options = options;
  }

  get pending(): number {
    return this.#queue.length;
  }

  get dropped(): number {
    return this.#dropped;
  }

  start(): void {
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops retrying after one last, short attempt to hand over what is buffered. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.race([this.flush(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  push(event: AgentAuditEvent): void {
    const max = this.#options.maxEvents ?? 10_000;
    this.#queue.push(event);
    while (this.#queue.length > max) {
      this.#queue.shift();
      if (this.#dropped++ % 1000 === 0) this.#options.logger.error({ dropped: this.#dropped }, 'audit buffer full: dropping the oldest audit events');
    }
    if (this.#failures === 0) this.#schedule(0);
  }

  /** Sends buffered events in order until the buffer is empty or a send fails. */
  flush(): Promise<void> {
    this.#flushing ??= (async () => {
      while (this.#queue.length > 0) {
        const event = this.#queue[0]!;
        try {
          await this.#options.auth().emitAudit({ eventJson: JSON.stringify(event) }, { deadlineMs: 5_000 });
        } catch (error) {
          if ((error as { code?: string }).code === 'PST_BAD_INPUT') {
            this.#options.logger.error({ err: error, type: event.type }, 'auth refused an audit event; dropped');
            this.#queue.shift();
            continue;
          }
          if (this.#failures++ === 0) this.#options.logger.warn({ err: error, pending: this.#queue.length }, 'cannot send audit events to auth; retrying');
          return;
        }
        this.#queue.shift();
        this.#failures = 0;
      }
    })().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  #schedule(delayMs: number): void {
    if (!this.#running || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush().then(() => {
        if (this.#queue.length === 0) return;
        const max = this.#options.maxRetryMs ?? 30_000;
        this.#schedule(this.#failures === 0 ? 0 : Math.min(max, 500 * 2 ** Math.min(this.#failures, 10)));
      });
    }, delayMs);
    this.#timer.unref();
  }
}
