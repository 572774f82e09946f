/**
 * Watches what a MySQL client sends after the handshake, without holding it up, and
 * reports the statements: a command is the first packet (sequence 0) of an exchange,
 *
 * ```
 * 0x03 COM_QUERY         sql text            -> { kind: 'query', sql }
 * 0x16 COM_STMT_PREPARE  sql text            -> { kind: 'prepare', sql }
 * 0x17 COM_STMT_EXECUTE  int<4> statement id -> { kind: 'execute', statementId }
 * ```
 *
 * Packets with a later sequence number (LOAD DATA contents, the rest of a 16 MiB split)
 * are not commands and are not reported. Only the first {@link maxAuditedBytes} of a
 * statement are kept. Never throws.
 */
export const maxAuditedBytes = 64 * 1024;

export type MysqlCommandEvent =
  | { kind: 'query'; sql: string; truncated: boolean }
  | { kind: 'prepare'; sql: string; truncated: boolean }
  | { kind: 'execute'; statementId: number };

export class MysqlCommandAudit {
  readonly #onEvent: (event: MysqlCommandEvent) => void;
  readonly #header = Buffer.alloc(4);
  #headerFill = 0;
  #remaining = 0;
  #length = 0;
  #command = -1;
  #kept: Buffer[] = [];
  #keptBytes = 0;

  constructor(onEvent: (event: MysqlCommandEvent) => void) {
    this.#onEvent = onEvent;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === 0 && this.#headerFill < 4) {
        const take = Math.min(4 - this.#headerFill, chunk.length - offset);
        chunk.copy(this.#header, this.#headerFill, offset, offset + take);
        this.#headerFill += take;
        offset += take;
        if (this.#headerFill < 4) return;
        this.#length = this.#header.readUIntLE(0, 3);
        this.#remaining = this.#length;
        this.#command = this.#header[3] === 0 ? -2 : -1; // -2: the next byte is the command
        this.#kept = [];
        this.#keptBytes = 0;
        if (this.#remaining === 0) this.#complete();
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      let start = offset;
      if (this.#command === -2) {
        this.#command = chunk[offset]!;
        start++;
      }
      if ((this.#command === 0x03 || this.#command === 0x16 || this.#command === 0x17) && this.#keptBytes < maxAuditedBytes) {
        const keep = Math.min(offset + take - start, maxAuditedBytes - this.#keptBytes);
        this.#kept.push(chunk.subarray(start, start + keep));
        this.#keptBytes += keep;
      }
      offset += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#complete();
    }
  }

  #complete(): void {
    this.#headerFill = 0;
    const body = this.#kept.length === 1 ? this.#kept[0]! : Buffer.concat(this.#kept);
    this.#kept = [];
    const truncated = this.#length - 1 > body.length;
    switch (this.#command) {
      case 0x03:
        return this.#onEvent({ kind: 'query', sql: body.toString('utf8'), truncated });
      case 0x16:
        return this.#onEvent({ kind: 'prepare', sql: body.toString('utf8'), truncated });
      case 0x17:
        return this.#onEvent({ kind: 'execute', statementId: body.length >= 4 ? body.readUInt32LE(0) : -1 });
      default:
    }
  }
}
