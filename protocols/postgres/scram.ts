/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as a PostgreSQL client: the agent logs in to an
 * upstream database with a configured password. No channel binding (the agent's
 * upstream TLS is verified by its CA instead).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export class ScramClient {
  readonly #password: string;
  readonly #nonce = randomBytes(18).toString('base64');
  #authMessage = '';
  #serverSignature: Buffer | undefined;

  constructor(password: string) {
    this.#password = password.normalize('NFKC');
  }

  /** client-first-message. */
  first(): Buffer {
    return Buffer.from(`n,,${this.#bare()}`);
  }

  #bare(): string {
    return `n=*,r=${this.#nonce}`;
  }

  /** client-final-message for the server-first-message. */
  final(serverFirst: string): Buffer {
    const attributes = _attributes(serverFirst);
    const nonce = attributes.get('r');
    const salt = attributes.get('s');
    const iterations = Number(attributes.get('i'));
    if (!nonce?.startsWith(this.#nonce) || !salt || !Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000) {
      throw new Error('the database sent an invalid SCRAM server-first-message');
    }
    const salted = pbkdf2Sync(this.#password, Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    this.#authMessage = `${this.#bare()},${serverFirst},${withoutProof}`;
    const signature = createHmac('sha256', storedKey).update(this.#authMessage).digest();
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    this.#serverSignature = createHmac('sha256', serverKey).update(this.#authMessage).digest();
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }

  /** Checks the server-final-message: the server knew the password too. */
  verify(serverFinal: string): void {
    const given = Buffer.from(_attributes(serverFinal).get('v') ?? '', 'base64');
    if (!this.#serverSignature || given.length !== this.#serverSignature.length || !timingSafeEqual(given, this.#serverSignature)) {
      throw new Error('the database\'s SCRAM server signature does not match: it does not know the password');
    }
  }
}

function _attributes(message: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) map.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return map;
}
