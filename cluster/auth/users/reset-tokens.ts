/**
 * Password reset and invite tokens: 32 random bytes, base64url, shown once (in a link
 * such as `https://proxy.example.com/web/invite/<token>`). `pctl users add` issues an
 * `invite` token (how the first admin sets a password); `pctl users reset` a `reset` one.
 *
 * The backend keeps only the token's SHA-256, as the key `/user-reset-tokens/<hex>`
 * with the token's expiry as its TTL. The user record names the one hash that is
 * currently valid (see UserStore), so a newer token supersedes older ones and a used
 * token cannot be used again even while its item still exists.
 *
 * Looking a token up by its hash leaks nothing useful through timing (an attacker
 * would need SHA-256 pre-images); the match against the user record is constant-time.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Backend } from '../backend/backend.ts';
import { BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import type { Clock } from '../../common/clock.ts';
import { ResetTokenInvalidError } from './errors.ts';

export const resetTokenPrefix = '/user-reset-tokens/';
/** How long a token lasts unless the caller says otherwise. */
export const defaultResetTokenTtlMs = 60 * 60_000;
/** The longest a token may last. */
export const maxResetTokenTtlMs = 7 * 24 * 60 * 60_000;
const tokenBytes = 32;
const tokenPattern = /^[A-Za-z0-9_-]{43}$/;

/** `reset`: an admin reset a password; `invite`: a new user (the first admin included) sets theirs. */
export type ResetPurpose = 'reset' | 'invite';

export interface ResetTokenOptions {
  /** Lifetime (default one hour, at most seven days). */
  ttlMs?: number;
  purpose?: ResetPurpose;
  /** Using the token removes the user's TOTP factor (lost phone) instead of asking for a code. */
  resetTotp?: boolean;
}

/** What a token is for; never the token or its hash. */
export interface ResetTokenInfo {
  user: string;
  purpose: ResetPurpose;
  resetTotp: boolean;
  expires: Date;
}

const recordSchema = z.strictObject({
  user: z.string(),
  purpose: z.enum(['reset', 'invite']),
  resetTotp: z.boolean(),
  createdAt: z.iso.datetime(),
  expires: z.iso.datetime(),
});

/** The token items in the backend; UserStore ties them to user records. */
export class ResetTokens {
  readonly #backend: Backend;
  readonly #clock: Clock;

  constructor(backend: Backend, clock: Clock) {
    this.#backend = backend;
    this.#clock = clock;
  }

  /** Stores a new token for `user`; returns the token (shown once) and its hash (for the user record). */
  async issue(user: string, options: ResetTokenOptions): Promise<{ token: string; hash: string; expires: Date }> {
    const ttlMs = options.ttlMs ?? defaultResetTokenTtlMs;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 60_000 || ttlMs > maxResetTokenTtlMs) {
      throw new BadInputError(`reset token ttl must be between 1 minute and 7 days, got ${ttlMs} ms`);
    }
    const now = this.#clock.now();
    const expires = new Date(now.getTime() + ttlMs);
    const token = _newToken();
    const hash = hashResetToken(token);
    const record = {
      user,
      purpose: options.purpose ?? 'reset',
      resetTotp: options.resetTotp ?? false,
      createdAt: now.toISOString(),
      expires: expires.toISOString(),
    };
    await this.#backend.create({ key: resetTokenPrefix + hash, value: JSON.stringify(record), expires });
    return { token, hash, expires };
  }

  /** The stored token, or ResetTokenInvalidError (malformed, unknown or expired). */
  async find(token: string): Promise<{ hash: string; info: ResetTokenInfo }> {
    if (typeof token !== 'string' || !tokenPattern.test(token)) throw new ResetTokenInvalidError();
    const hash = hashResetToken(token);
    const item = await this.#backend.get(resetTokenPrefix + hash);
    if (!item) throw new ResetTokenInvalidError();
    const parsed = recordSchema.safeParse(JSON.parse(item.value));
    if (!parsed.success) throw new ResetTokenInvalidError();
    const expires = new Date(parsed.data.expires);
    // The backend hides expired items; check against our clock too, in case the two disagree.
    if (expires.getTime() <= this.#clock.now().getTime()) throw new ResetTokenInvalidError();
    const { user, purpose, resetTotp } = parsed.data;
    return { hash, info: { user, purpose, resetTotp, expires } };
  }

  /** Deletes a token item if it is still there. */
  async remove(hash: string): Promise<void> {
    try {
      await this.#backend.delete(resetTokenPrefix + hash);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}

/** Hex SHA-256 of a token: what is stored, never the token. */
export function hashResetToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time equality of two hex hashes (false when `stored` is absent). */
export function sameHash(stored: string | undefined, hash: string): boolean {
  if (stored === undefined) return false;
  const left = Buffer.from(stored, 'hex');
  const right = Buffer.from(hash, 'hex');
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

/**
 * 32 random bytes, base64url, never starting with `-`: people paste the token after
 * `--token`, and an argument starting with a dash reads as an option (1 token in 64 did).
 */
function _newToken(): string {
  for (;;) {
    const token = crypto.randomBytes(tokenBytes).toString('base64url');
    if (!token.startsWith('-')) return token;
  }
}
