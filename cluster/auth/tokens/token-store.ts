/**
 * Join tokens: the secret an agent, proxy, bot or leaf cluster presents once to get its
 * first identity. `pctl tokens add --type=node,db --ttl=30m` -> `TokenStore.add`;
 * `postern join --token` -> the auth server calls `consume(secret, { role })`.
 *
 * The secret (32 random bytes, 64 hex characters) is returned once by `add` and never
 * stored: the record lives at `/tokens/<sha256 hex of the secret>`, and people see the
 * first 12 hex characters of that hash as the token's id. A lookup by hash needs no
 * constant-time compare: timing can only reveal hash prefixes, and finding a secret
 * for a hash prefix is a pre-image search.
 *
 * Expiry (decision): the backend item outlives the token by `tombstoneMs` (default one
 * day) through its TTL, so a join with an expired or used-up token is told "expired at
 * 12:03 UTC" or "already used at …" rather than "unknown"; after that the backend
 * removes it and the answer becomes "not valid". An expired or used record grants
 * nothing, and `list` shows it with its status until it is gone.
 *
 * Uses are counted with compare-and-swap: of two joins racing on one single-use token,
 * exactly one wins; the other re-reads and is told the token was used.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Backend, Item } from '../backend/backend.ts';
import { BadInputError, CompareFailedError, NotFoundError } from '../../../protocols/errors.ts';
import { systemClock, type Clock } from '../../common/clock.ts';
import { parseWith } from '../../common/validation.ts';
import type { SystemRole } from '../pki/identity.ts';
import { labelsSchema } from '../../access/resources/resource.ts';
import {
  TokenAmbiguousError,
  TokenBusyError,
  TokenExpiredError,
  TokenInvalidError,
  TokenRoleError,
  TokenUsedError,
} from './errors.ts';

/**
 * What a token may admit: the system roles an agent or proxy joins with, a bot, or a
 * leaf cluster (`trusted_cluster`). `auth` and `admin` are not joinable on purpose.
 */
export const tokenRoles = ['node', 'proxy', 'db', 'app', 'kube', 'desktop', 'bot', 'trusted_cluster'] as const satisfies readonly (
  | SystemRole
  | 'trusted_cluster'
)[];
export type TokenRole = (typeof tokenRoles)[number];

export const tokenPrefix = '/tokens/';
/** Characters of the secret's SHA-256 (hex) shown as the token's id. */
export const tokenIdLength = 12;
export const defaultTokenTtlMs = 30 * 60_000;
export const maxTokenTtlMs = 365 * 24 * 60 * 60_000;
export const defaultTombstoneMs = 24 * 60 * 60_000;
const secretPattern = /^[0-9a-f]{64}$/;
const maxCasAttempts = 16;

const addOptionsSchema = z.strictObject({
  roles: z
    .array(z.enum(tokenRoles, { error: `expected one of ${tokenRoles.join(', ')}` }))
    .min(1, { error: 'give at least one role, e.g. --type=node' })
    .refine((roles) => new Set(roles).size === roles.length, { error: 'roles must not repeat' }),
  ttlMs: z
    .number()
    .int()
    .min(60_000, { error: 'must be at least one minute' })
    .max(maxTokenTtlMs, { error: 'must be at most 365 days' })
    .default(defaultTokenTtlMs),
  labels: labelsSchema.default({}),
  singleUse: z.boolean().default(false),
  name: z.string().min(1).max(128).regex(/^[\x20-\x7e]+$/, { error: 'must be printable ASCII' }).optional(),
});
export type AddTokenOptions = z.input<typeof addOptionsSchema>;

const recordSchema = z.strictObject({
  roles: z.array(z.enum(tokenRoles)).min(1),
  labels: z.record(z.string(), z.string()),
  name: z.string().optional(),
  singleUse: z.boolean(),
  createdAt: z.iso.datetime(),
  expires: z.iso.datetime(),
  uses: z.number().int().nonnegative(),
  lastUsedAt: z.iso.datetime().optional(),
  lastUsedBy: z.string().optional(),
});
type TokenRecord = z.output<typeof recordSchema>;

/** A join token as people see it: never the secret. */
export interface JoinToken {
  /** First 12 hex characters of the secret's SHA-256. */
  id: string;
  name?: string;
  roles: TokenRole[];
  labels: Record<string, string>;
  singleUse: boolean;
  createdAt: Date;
  expires: Date;
  uses: number;
  lastUsedAt?: Date;
  lastUsedBy?: string;
  status: 'active' | 'expired' | 'used';
}

export interface TokenStoreOptions {
  clock?: Clock;
  /** How long an expired token's record stays to explain refusals (default one day). */
  tombstoneMs?: number;
}

/** Join tokens over the Backend; see the file comment. */
export class TokenStore {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #tombstoneMs: number;

  constructor(backend: Backend, options: TokenStoreOptions = {}) {
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#tombstoneMs = options.tombstoneMs ?? defaultTombstoneMs;
  }

  /** Creates a token; `secret` is in this answer only, keep it safe and hand it to the joining host. */
  async add(options: AddTokenOptions): Promise<{ secret: string; token: JoinToken }> {
    const parsed = parseWith(addOptionsSchema, options, 'join token');
    const now = this.#clock.now();
    const expires = new Date(now.getTime() + parsed.ttlMs);
    const record: TokenRecord = {
      roles: parsed.roles,
      labels: parsed.labels,
      singleUse: parsed.singleUse,
      createdAt: now.toISOString(),
      expires: expires.toISOString(),
      uses: 0,
    };
    if (parsed.name !== undefined) record.name = parsed.name;
    const secret = crypto.randomBytes(32).toString('hex');
    const hash = hashTokenSecret(secret);
    await this.#backend.create({ key: tokenPrefix + hash, value: JSON.stringify(record), expires: this.#removeAt(expires) });
    return { secret, token: _view(hash, record, now) };
  }

  /** Every token still on record (active, and expired or used ones until they are cleaned up), oldest first. */
  async list(): Promise<JoinToken[]> {
    const items = await this.#backend.range(tokenPrefix);
    const now = this.#clock.now();
    return items
      .map((item) => _view(_hashOf(item), _parse(item), now))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
  }

  /** Removes a token by id (or a longer prefix of its hash, or its secret); NotFoundError or TokenAmbiguousError. */
  async remove(idOrSecret: string): Promise<void> {
    const hashPrefix = _hashPrefixOf(idOrSecret);
    const matches = await this.#backend.range(tokenPrefix + hashPrefix, { limit: 2 });
    const shown = hashPrefix.slice(0, tokenIdLength);
    if (matches.length === 0) throw new NotFoundError(`join token ${shown} not found; list tokens with pctl tokens ls`);
    if (matches.length > 1) throw new TokenAmbiguousError(shown, matches.length);
    try {
      await this.#backend.delete(matches[0]!.key);
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`join token ${shown} not found; list tokens with pctl tokens ls`);
      throw err;
    }
  }

  /**
   * Checks a presented secret for joining as `role` and counts the use; returns the
   * token (its labels go on the joined host), or throws TokenInvalidError,
   * TokenExpiredError, TokenUsedError or TokenRoleError. `consumer` (a host id or
   * cluster name) is kept to explain a later refusal of a single-use token.
   */
  async consume(secret: string, options: { role: TokenRole; consumer?: string }): Promise<JoinToken> {
    const normalized = typeof secret === 'string' ? secret.trim().toLowerCase() : '';
    if (!secretPattern.test(normalized)) throw new TokenInvalidError(options.role);
    const hash = hashTokenSecret(normalized);
    for (let attempt = 0; attempt < maxCasAttempts; attempt++) {
      const item = await this.#backend.get(tokenPrefix + hash);
      if (!item) throw new TokenInvalidError(options.role);
      const now = this.#clock.now();
      const record = _parse(item);
      _check(hash, record, options.role, now);
      const next: TokenRecord = { ...record, uses: record.uses + 1, lastUsedAt: now.toISOString() };
      if (options.consumer !== undefined) next.lastUsedBy = options.consumer.slice(0, 253);
      try {
        await this.#backend.compareAndSwap(item.revision, { key: item.key, value: JSON.stringify(next), expires: this.#removeAt(new Date(record.expires)) });
        return _view(hash, next, now);
      } catch (err) {
        // Lost a race (or the sweeper removed it): re-read and decide again.
        if (!(err instanceof CompareFailedError) && !(err instanceof NotFoundError)) throw err;
      }
    }
    throw new TokenBusyError(hash.slice(0, tokenIdLength));
  }

  #removeAt(expires: Date): Date {
    return new Date(expires.getTime() + this.#tombstoneMs);
  }
}

/** Hex SHA-256 of a token secret: the key the token is stored under. */
export function hashTokenSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret, 'utf8').digest('hex');
}

function _check(hash: string, record: TokenRecord, role: TokenRole, now: Date): void {
  const id = hash.slice(0, tokenIdLength);
  if (record.singleUse && record.uses > 0) {
    throw new TokenUsedError(id, record.lastUsedAt ? new Date(record.lastUsedAt) : undefined, record.lastUsedBy, role);
  }
  const expires = new Date(record.expires);
  if (expires.getTime() <= now.getTime()) throw new TokenExpiredError(id, expires, role);
  if (!record.roles.includes(role)) throw new TokenRoleError(id, role, record.roles);
}

function _view(hash: string, record: TokenRecord, now: Date): JoinToken {
  const expires = new Date(record.expires);
  const status = record.singleUse && record.uses > 0 ? 'used' : expires.getTime() <= now.getTime() ? 'expired' : 'active';
  const token: JoinToken = {
    id: hash.slice(0, tokenIdLength),
    roles: [...record.roles],
    labels: { ...record.labels },
    singleUse: record.singleUse,
    createdAt: new Date(record.createdAt),
    expires,
    uses: record.uses,
    status,
  };
  if (record.name !== undefined) token.name = record.name;
  if (record.lastUsedAt !== undefined) token.lastUsedAt = new Date(record.lastUsedAt);
  if (record.lastUsedBy !== undefined) token.lastUsedBy = record.lastUsedBy;
  return token;
}

function _parse(item: Item): TokenRecord {
  return parseWith(recordSchema, JSON.parse(item.value), `stored join token ${_hashOf(item).slice(0, tokenIdLength)}`);
}

function _hashOf(item: Item): string {
  return item.key.slice(tokenPrefix.length);
}

/** A secret (64 hex) becomes its hash; an id or longer hash prefix (6-63 hex) is used as is. */
function _hashPrefixOf(idOrSecret: string): string {
  const text = typeof idOrSecret === 'string' ? idOrSecret.trim().toLowerCase() : '';
  if (secretPattern.test(text)) return hashTokenSecret(text);
  if (/^[0-9a-f]{6,63}$/.test(text)) return text;
  throw new BadInputError(`join token id must be 6 to ${tokenIdLength} hex characters as shown by pctl tokens ls`);
}
