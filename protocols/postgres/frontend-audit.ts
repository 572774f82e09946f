/**
 * Watches what a client sends after start-up, without holding it up: bytes are relayed
 * as they come, and the statements in them are reported.
 *
 * ```
 * Q  Query     cstring sql                                   -> { kind: 'query', sql }
 * P  Parse     cstring name, cstring sql, int16 n, int32[n]  -> { kind: 'parse', statement, sql, parameterTypes }
 * B  Bind      cstring portal, cstring statement, int16 nf, int16[nf], int16 np, ...
 *                                                            -> { kind: 'bind', portal, statement, parameters }
 * E  Execute   cstring portal, int32 max rows                -> { kind: 'execute', portal }
 * ```
 *
 * Only the first {@link maxAuditedBytes} of a body are kept for decoding; a longer
 * statement is reported truncated. Anything unreadable is reported as such, never
 * thrown: the database is the judge of the protocol, this is the witness.
 */

/** How much of a Query or Parse body is kept to report. */
export const maxAuditedBytes = 64 * 1024;

export type FrontendEvent =
  | { kind: 'query'; sql: string; truncated: boolean }
  | { kind: 'parse'; statement: string; sql: string; truncated: boolean; parameterTypes: number }
  | { kind: 'bind'; portal: string; statement: string; parameters: number }
  | { kind: 'execute'; portal: string }
  | { kind: 'terminate' };

const audited = new Set([0x51 /* Q */, 0x50 /* P */, 0x42 /* B */, 0x45 /* E */, 0x58 /* X */]);

/** Feed it every chunk the client sends; it calls `onEvent` per statement message. */
export class FrontendAudit {
  readonly #onEvent: (event: FrontendEvent) => void;
  /** Header bytes collected so far (a header may straddle chunks). */
  #header = Buffer.alloc(5);
  #headerFill = 0;
  /** Body bytes still to come for the current message. */
  #remaining = 0;
  #type = 0;
  #length = 0;
  #kept: Buffer[] = [];
  #keptBytes = 0;

  constructor(onEvent: (event: FrontendEvent) => void) {
    this.#onEvent = onEvent;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === 0 && this.#headerFill < 5) {
        const take = Math.min(5 - this.#headerFill, chunk.length - offset);
        chunk.copy(this.#header, this.#headerFill, offset, offset + take);
        this.#headerFill += take;
        offset += take;
        if (this.#headerFill < 5) return;
        this.#type = this.#header[0]!;
        this.#length = this.#header.readUInt32BE(1);
        if (this.#length < 4) {
          // Not a protocol stream we can follow; stop watching rather than guess.
          this.#remaining = Number.POSITIVE_INFINITY;
          return;
        }
        this.#remaining = this.#length - 4;
        this.#kept = [];
        this.#keptBytes = 0;
        if (this.#remaining === 0) this.#complete();
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      if (audited.has(this.#type) && this.#keptBytes < maxAuditedBytes) {
        const keep = Math.min(take, maxAuditedBytes - this.#keptBytes);
        this.#kept.push(chunk.subarray(offset, offset + keep));
        this.#keptBytes += keep;
      }
      offset += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#complete();
    }
  }

  #complete(): void {
    this.#headerFill = 0;
    if (!audited.has(this.#type)) return;
    const body = this.#kept.length === 1 ? this.#kept[0]! : Buffer.concat(this.#kept);
    const truncated = this.#length - 4 > body.length;
    this.#kept = [];
    const event = _decode(this.#type, body, truncated);
    if (event) this.#onEvent(event);
  }
}

function _decode(type: number, body: Buffer, truncated: boolean): FrontendEvent | undefined {
  const reader = new _Reader(body);
  switch (type) {
    case 0x51:
      return { kind: 'query', sql: reader.cstring(), truncated };
    case 0x50: {
      const statement = reader.cstring();
      const sql = reader.cstring();
      return { kind: 'parse', statement, sql, truncated, parameterTypes: reader.int16() };
    }
    case 0x42: {
      const portal = reader.cstring();
      const statement = reader.cstring();
      const formats = reader.int16();
      reader.skip(Math.max(formats, 0) * 2);
      return { kind: 'bind', portal, statement, parameters: reader.int16() };
    }
    case 0x45:
      return { kind: 'execute', portal: reader.cstring() };
    case 0x58:
      return { kind: 'terminate' };
    default:
      return undefined;
  }
}

/** Reads a body leniently: past the end, strings are cut and numbers are -1. */
class _Reader {
  readonly #body: Buffer;
  #offset = 0;

  constructor(body: Buffer) {
    this.#body = body;
  }

  cstring(): string {
    const end = this.#body.indexOf(0, this.#offset);
    const stop = end < 0 ? this.#body.length : end;
    const text = this.#body.toString('utf8', this.#offset, stop);
    this.#offset = stop + 1;
    return text;
  }

  int16(): number {
    if (this.#offset + 2 > this.#body.length) return -1;
    const value = this.#body.readInt16BE(this.#offset);
    this.#offset += 2;
    return value;
  }

  skip(bytes: number): void {
    this.#offset += bytes;
  }
}
