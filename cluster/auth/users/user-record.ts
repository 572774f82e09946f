/**
 * What the user store keeps per local user, and the public view of it.
 *
 * One JSON record per user at `/users/<name>` holds the spec (roles, traits) and the
 * login state (password hash, TOTP, failure counter, pending reset), so every login
 * decision and its bookkeeping is one compare-and-swap on one item. The record holds
 * secrets: only `User` (from `toUser`) leaves this directory.
 *
 * As a YAML resource the spec part reads:
 *
 * ```yaml
 * kind: user
 * version: v1
 * metadata: { name: alice@example.com }
 * spec:
 *   roles: [access, editor]
 *   traits: { logins: [alice, ubuntu] }
 * ```
 */
import { z } from 'zod';
import { defineKind } from '../../access/resources/registry.ts';
import { passwordHashSchema } from './password.ts';

const userNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._@+-]*[A-Za-z0-9])?$/;
/** Longest user name (an e-mail address can be 254 characters). */
export const maxUserNameLength = 254;

/**
 * A user name: 1-254 characters, letters, digits, `.`, `_`, `@`, `+`, `-`, starting and
 * ending with a letter or digit, so e-mail addresses are user names. Never `/`, so it is
 * one backend key segment. Pass it as `name` to `defineKind` for `kind: user`.
 */
export const userNameSchema = z
  .string({ error: 'expected a string' })
  .min(1, { error: 'must not be empty' })
  .max(maxUserNameLength, { error: `must be at most ${maxUserNameLength} characters` })
  .regex(userNamePattern, {
    error: "must be letters, digits, '.', '_', '@', '+' or '-', starting and ending with a letter or digit",
  });

const roleNameSchema = z
  .string({ error: 'expected a role name' })
  .min(1, { error: 'role names must not be empty' })
  .max(63, { error: 'role names must be at most 63 characters' });

/** A trait: name -> list of values (`logins: [alice, ubuntu]`). */
export const traitsSchema = z.record(
  z.string().min(1, { error: 'trait names must not be empty' }).max(128),
  z.array(z.string().max(1024), { error: 'trait values must be a list of strings' }).max(256),
);

/** The `spec` of a `kind: user` resource. */
export const userSpecSchema = z.strictObject({
  roles: z.array(roleNameSchema).max(256).default([]),
  traits: traitsSchema.default({}),
});
export type UserSpec = z.output<typeof userSpecSchema>;
/** What callers may pass (both fields optional). */
export type UserSpecInput = z.input<typeof userSpecSchema>;

/** `kind: user` for the resource registry (resources/kinds.ts); names follow userNameSchema. */
export const userKind = defineKind({
  kind: 'user',
  spec: userSpecSchema,
  name: userNameSchema,
  summarize: (user) => `roles=${user.spec.roles.join(',')}`,
});

const isoDate = z.iso.datetime();

/** The stored record; holds secrets, never returned from the store. */
export const userRecordSchema = z.strictObject({
  name: userNameSchema,
  spec: userSpecSchema,
  createdAt: isoDate,
  password: passwordHashSchema.optional(),
  passwordChangedAt: isoDate.optional(),
  /** A confirmed second factor; `lastTimeStep` is the step of the last code accepted (replay guard). */
  totp: z.strictObject({ secret: z.string().min(16), enrolledAt: isoDate, lastTimeStep: z.number().int().optional() }).optional(),
  /** An enrolment started by enrollTotp, waiting for confirmTotp. */
  pendingTotp: z.strictObject({ secret: z.string().min(16), expires: isoDate }).optional(),
  /** Consecutive failed logins since the last success; `lockedUntil` once they reached the limit. */
  lockout: z.strictObject({
    failures: z.number().int().nonnegative(),
    lastFailureAt: isoDate.optional(),
    lockedUntil: isoDate.optional(),
  }),
  /** SHA-256 (hex) of the one reset token that is currently valid; a newer token replaces it. */
  resetTokenHash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type UserRecord = z.output<typeof userRecordSchema>;

/** A user as the store returns it: no hashes, no TOTP secret, no token hashes. */
export interface User {
  name: string;
  roles: string[];
  traits: Record<string, string[]>;
  createdAt: Date;
  hasPassword: boolean;
  totpEnabled: boolean;
  /** Set while the account is locked. */
  lockedUntil?: Date;
  /** The backend revision this copy was read at. */
  revision: number;
}

/** The public view of a record, as of `now` (a lock that has run out is not shown). */
export function toUser(record: UserRecord, revision: number, now: Date): User {
  const user: User = {
    name: record.name,
    roles: [...record.spec.roles],
    traits: structuredClone(record.spec.traits),
    createdAt: new Date(record.createdAt),
    hasPassword: record.password !== undefined,
    totpEnabled: record.totp !== undefined,
    revision,
  };
  const lockedUntil = lockedUntilOf(record, now);
  if (lockedUntil) user.lockedUntil = lockedUntil;
  return user;
}

/** When the account's lock ends, if it is locked at `now`. */
export function lockedUntilOf(record: UserRecord, now: Date): Date | undefined {
  const until = record.lockout.lockedUntil;
  if (until === undefined) return undefined;
  const date = new Date(until);
  return date.getTime() > now.getTime() ? date : undefined;
}
