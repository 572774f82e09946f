/**
 * Password hashing and policy. Hashes are scrypt (node:crypto) with a per-password
 * random salt; the cost parameters travel with the hash, so raising them later only
 * needs `needsRehash` at the next successful login. Comparisons are constant-time.
 *
 * ```ts
 * checkPasswordPolicy(password, { username: 'alice' });
 * const stored = await hashPassword(password);
 * if (await verifyPassword(password, stored)) { … }
 * ```
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import { PasswordPolicyError } from './errors.ts';

/** scrypt cost parameters: N (CPU/memory cost, a power of two), r (block size), p (parallelism), keylen (bytes). */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  keylen: number;
}

/**
 * 2^15 x 8 x 1 costs 32 MiB and ~50-100 ms per hash on this class of machine (OWASP's
 * minimum for scrypt is 2^17 x 8 x 1 at 128 MiB; 32 MiB keeps a 512 MiB auth host safe
 * from a burst of parallel logins). Raise it here; old hashes keep their own parameters.
 */
export const defaultScryptParams: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 1, keylen: 32 });

/** A stored password hash; salt and hash are base64. */
export const passwordHashSchema = z.strictObject({
  algorithm: z.literal('scrypt'),
  N: z.number().int().min(2).max(2 ** 22).refine((n) => (n & (n - 1)) === 0, { error: 'N must be a power of two' }),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  keylen: z.number().int().min(16).max(128),
  salt: z.base64(),
  hash: z.base64(),
});
export type PasswordHash = z.infer<typeof passwordHashSchema>;

/** Shortest password accepted (NIST SP 800-63B asks for at least 8; length beats composition rules). */
export const minPasswordLength = 12;
/** Longest password accepted, so a request cannot make the server hash megabytes. */
export const maxPasswordLength = 1024;

const saltBytes = 16;

/** Throws PasswordPolicyError, naming the rule, unless `password` may be set as a new password. */
export function checkPasswordPolicy(password: string, context: { username?: string } = {}): void {
  if (typeof password !== 'string') throw new PasswordPolicyError('password must be a string');
  const length = [...password].length;
  if (length < minPasswordLength) {
    throw new PasswordPolicyError(
      `password is too short (${length} characters); use at least ${minPasswordLength}, a passphrase of a few words works well`,
    );
  }
  if (length > maxPasswordLength) {
    throw new PasswordPolicyError(`password is too long (${length} characters); use at most ${maxPasswordLength}`);
  }
  if (new Set(password).size === 1) {
    throw new PasswordPolicyError('password repeats a single character; choose one that is hard to guess');
  }
  if (context.username !== undefined && password.toLowerCase().includes(context.username.toLowerCase())) {
    throw new PasswordPolicyError('password contains the user name; choose one that does not');
  }
}

/** Hashes `password` with a fresh random salt. Does not check the policy (call checkPasswordPolicy first). */
export async function hashPassword(password: string, params: ScryptParams = defaultScryptParams): Promise<PasswordHash> {
  const salt = crypto.randomBytes(saltBytes);
  const hash = await _scrypt(password, salt, params);
  return {
    algorithm: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    keylen: params.keylen,
    salt: salt.toString('base64'),
    hash: hash.toString('base64'),
  };
}

/** Whether `password` matches `stored`, compared in constant time. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (typeof password !== 'string' || password.length > maxPasswordLength * 4) return false;
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await _scrypt(password, Buffer.from(stored.salt, 'base64'), stored);
  // Derived with the stored keylen, so the lengths match unless the record is damaged.
  if (actual.length !== expected.length) return false;
  return crypto.timingSafeEqual(actual, expected);
}

/** Whether `stored` was made with weaker parameters than `params` and should be re-hashed after a successful login. */
export function needsRehash(stored: PasswordHash, params: ScryptParams = defaultScryptParams): boolean {
  return stored.N < params.N || stored.r < params.r || stored.p < params.p || stored.keylen < params.keylen;
}

/**
 * A hash of a random password, to verify against when the user does not exist or has
 * no password, so that the answer takes as long as a real one. Make it once and keep it.
 */
export function dummyPasswordHash(params: ScryptParams = defaultScryptParams): Promise<PasswordHash> {
  return hashPassword(crypto.randomBytes(16).toString('hex'), params);
}

function _scrypt(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes; node refuses above maxmem (32 MiB by default), so allow it plus slack.
  const maxmem = 128 * params.N * params.r * params.p + 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFKC'), salt, params.keylen, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}
