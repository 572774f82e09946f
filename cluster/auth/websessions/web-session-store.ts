/**
 * Web sessions in the backend, shared by every proxy of the cluster. The id is the
 * secret a browser holds in its cookie: the store keeps only its SHA-256 in the key
 * (`/web_sessions/<hex>`), so reading the backend does not yield usable cookies. The
 * item expires with the session's certificates; idleness is checked on each lookup.
 */
import { createHash, randomBytes } from 'node:crypto';
import { NotFoundError } from '../../../protocols/errors.ts';
import type { Backend } from '../backend/backend.ts';
import type { Clock } from '../../common/clock.ts';
import { WebSessionIdleError, WebSessionNotFoundError } from './errors.ts';

/** A stored session (everything but its id). */
export interface WebSessionRecord {
  user: string;
  roles: string[];
  logins: string[];
  cluster: string;
  tlsKeyPem: string;
  tlsCertificatePem: string;
  sshPrivateKey: string;
  sshCertificate: string;
  sshHostCaKeys: string[];
  csrfToken: string;
  expires: string;
  idleTimeoutSeconds: number;
  created: string;
  lastActive: string;
}

/** What a caller supplies; the store sets the CSRF token and the times. */
export type WebSessionInput = Omit<WebSessionRecord, 'csrfToken' | 'created' | 'lastActive'>;

const prefix = '/web_sessions/';
/** Lookups closer together than this do not rewrite the record. */
const touchEveryMs = 10_000;
const idPattern = /^[A-Za-z0-9_-]{43}$/;

function _key(id: string): string {
  return prefix + createHash('sha256').update(id).digest('hex');
}

export class WebSessionStore {
  readonly #backend: Backend;
  readonly #clock: Clock;

  constructor(backend: Backend, clock: Clock) {
    this.#backend = backend;
    this.#clock = clock;
  }

  /** Stores a new session; returns its id (32 random bytes, base64url) and the record. */
  async create(input: WebSessionInput): Promise<{ id: string; record: WebSessionRecord }> {
    const id = randomBytes(32).toString('base64url');
    const now = this.#clock.now().toISOString();
    const record: WebSessionRecord = { ...input, csrfToken: randomBytes(32).toString('base64url'), created: now, lastActive: now };
    await this.#backend.create({ key: _key(id), value: JSON.stringify(record), expires: new Date(input.expires) });
    return { id, record };
  }

  /**
   * The session of `id`; WebSessionNotFoundError for an unknown, malformed or expired
   * id, WebSessionIdleError (and removal) when it was idle too long. `touch` counts
   * the lookup as activity.
   */
  async get(id: string, options: { touch?: boolean } = {}): Promise<WebSessionRecord> {
    if (!idPattern.test(id)) throw new WebSessionNotFoundError();
    const item = await this.#backend.get(_key(id));
    if (!item) throw new WebSessionNotFoundError();
    const record = JSON.parse(item.value) as WebSessionRecord;
    const now = this.#clock.now().getTime();
    if (now - Date.parse(record.lastActive) > record.idleTimeoutSeconds * 1000) {
      await this.#remove(id);
      throw new WebSessionIdleError(record.idleTimeoutSeconds);
    }
    if (options.touch && now - Date.parse(record.lastActive) >= touchEveryMs) {
      record.lastActive = new Date(now).toISOString();
      await this.#backend.put({ key: _key(id), value: JSON.stringify(record), expires: item.expires });
    }
    return record;
  }

  /** Removes the session; returns it, or undefined when there was none. */
  async delete(id: string): Promise<WebSessionRecord | undefined> {
    if (!idPattern.test(id)) return undefined;
    const item = await this.#backend.get(_key(id));
    if (!item) return undefined;
    await this.#remove(id);
    return JSON.parse(item.value) as WebSessionRecord;
  }

  async #remove(id: string): Promise<void> {
    try {
      await this.#backend.delete(_key(id));
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }
}
