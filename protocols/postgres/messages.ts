/**
 * PostgreSQL protocol 3.0 messages after start-up: `type byte | int32 length | body`,
 * the length counting itself but not the type. What the Postern database path needs:
 * encoders for the messages it writes itself (ErrorResponse, BackendKeyData,
 * PasswordMessage, SASL responses) and a reader of the ErrorResponse fields.
 */

/** Longest message body decoded for audit or authentication; longer ones are relayed untouched. */
export const maxDecodedMessageBytes = 1024 * 1024;

/** One message: its type byte and body (without the length). */
export interface PgMessage {
  type: string;
  body: Buffer;
}

/** Fields of an ErrorResponse or NoticeResponse. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL';
  /** SQLSTATE, e.g. 28000 invalid_authorization_specification. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** Encodes one message. */
export function encodeMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function _cstring(text: string): Buffer {
  return Buffer.concat([Buffer.from(text.replaceAll('\0', ''), 'utf8'), Buffer.from([0])]);
}

/** An ErrorResponse psql prints as `FATAL:  message` with DETAIL and HINT lines. */
export function encodeErrorResponse(fields: ErrorFields): Buffer {
  const parts = [
    Buffer.from('S'), _cstring(fields.severity),
    Buffer.from('V'), _cstring(fields.severity),
    Buffer.from('C'), _cstring(fields.code),
    Buffer.from('M'), _cstring(fields.message),
    ...(fields.detail ? [Buffer.from('D'), _cstring(fields.detail)] : []),
    ...(fields.hint ? [Buffer.from('H'), _cstring(fields.hint)] : []),
    Buffer.from([0]),
  ];
  return encodeMessage('E', Buffer.concat(parts));
}

/** The fields of an ErrorResponse body, by their one-letter codes. */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const code = String.fromCharCode(body[offset]!);
    const end = body.indexOf(0, offset + 1);
    if (end < 0) break;
    fields[code] = body.toString('utf8', offset + 1, end);
    offset = end + 1;
  }
  return fields;
}

/** BackendKeyData: the process id and secret key a client sends back in a CancelRequest. */
export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return encodeMessage('K', body);
}

/** PasswordMessage (cleartext or md5 form). */
export function encodePasswordMessage(password: string): Buffer {
  return encodeMessage('p', _cstring(password));
}

/** SASLInitialResponse. */
export function encodeSaslInitialResponse(mechanism: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(data.length, 0);
  return encodeMessage('p', Buffer.concat([_cstring(mechanism), length, data]));
}

/** SASLResponse. */
export function encodeSaslResponse(data: Buffer): Buffer {
  return encodeMessage('p', data);
}

/**
 * Splits a byte stream into whole messages (the upstream's replies during start-up).
 * Rejects a length below 4 or above `maxBytes`.
 */
export class MessageSplitter {
  #buffered: Buffer = Buffer.alloc(0);
  readonly #maxBytes: number;

  constructor(maxBytes = maxDecodedMessageBytes) {
    this.#maxBytes = maxBytes;
  }

  /** Adds bytes; returns the messages completed, each with its raw bytes. */
  push(chunk: Buffer): Array<PgMessage & { raw: Buffer }> {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const out: Array<PgMessage & { raw: Buffer }> = [];
    while (this.#buffered.length >= 5) {
      const length = this.#buffered.readUInt32BE(1);
      if (length < 4 || length > this.#maxBytes) throw new Error(`invalid message length ${length} for message type ${JSON.stringify(String.fromCharCode(this.#buffered[0]!))}`);
      if (this.#buffered.length < length + 1) break;
      const raw = this.#buffered.subarray(0, length + 1);
      out.push({ type: String.fromCharCode(raw[0]!), body: raw.subarray(5), raw });
      this.#buffered = this.#buffered.subarray(length + 1);
    }
    return out;
  }

  /** Bytes received after the last whole message. */
  rest(): Buffer {
    const rest = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    return rest;
  }
}
