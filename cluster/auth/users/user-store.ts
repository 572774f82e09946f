/**
 * Local users over the Backend: records at `/users/<name>` (see user-record.ts),
 * password logins with TOTP and lockout, TOTP enrolment, and reset/invite tokens.
 *
 * Every change is a compare-and-swap on the user's one record, retried on a lost race
 * with the decision re-made on the fresh record: concurrent failed logins all count,
 * a TOTP code is accepted at most once, a reset token works at most once.
 *
 * ```ts
 * const users = new UserStore(backend, { clock });
 * await users.create('alice', { roles: ['access'] });
 * const { token } = await users.createResetToken('alice', { purpose: 'invite' }); // shown once
 * await users.useResetToken(token, 'correct horse battery staple');
 * const alice = await users.authenticate('alice', 'correct horse battery staple');
 * ```
 */
import type { Backend, Item } from '../backend/backend.ts';
import { AlreadyExistsError, CompareFailedError, NotFoundError } from '../../../protocols/errors.ts';
import { systemClock, type Clock } from '../../common/clock.ts';
import { parseWith } from '../../common/validation.ts';
import {
  AccountLockedError,
  LoginFailedError,
  ResetTokenInvalidError,
  TotpInvalidError,
  TotpStateError,
  UserBusyError,
  type LoginFailureReason,
} from './errors.ts';
import { applyFailure, clearFailures, defaultLockoutPolicy, type LockoutPolicy } from './lockout.ts';
import {
  checkPasswordPolicy,
  defaultScryptParams,
  dummyPasswordHash,
  hashPassword,
  needsRehash,
  verifyPassword,
  type PasswordHash,
  type ScryptParams,
} from './password.ts';
import { generateTotpSecret, totpUri, verifyTotp } from './totp.ts';
import {
  lockedUntilOf,
  toUser,
  userNameSchema,
  userRecordSchema,
  userSpecSchema,
  type User,
  type UserRecord,
  type UserSpecInput,
} from './user-record.ts';
import { ResetTokens, sameHash, type ResetTokenInfo, type ResetTokenOptions } from './reset-tokens.ts';

export const userPrefix = '/users/';
const maxCasAttempts = 16;
const pendingTotpMs = 10 * 60_000;

export interface UserStoreOptions {
  clock?: Clock;
  lockout?: Partial<LockoutPolicy>;
  /** Cost of new password hashes (tests lower it). */
  scrypt?: ScryptParams;
  /** Shown by authenticator apps above the code. */
  totpIssuer?: string;
}

/** What a mutation returns: a new record to write, or the same object for "no change". */
type Mutation = (record: UserRecord, now: Date) => UserRecord;

/** Typed access to local users; see the file comment. */
export class UserStore {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #lockout: LockoutPolicy;
  readonly #scrypt: ScryptParams;
  readonly #issuer: string;
  readonly #resetTokens: ResetTokens;
  #dummy: Promise<PasswordHash> | undefined;

  constructor(backend: Backend, options: UserStoreOptions = {}) {
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#lockout = { ...defaultLockoutPolicy, ...options.lockout };
    this.#scrypt = options.scrypt ?? defaultScryptParams;
    this.#issuer = options.totpIssuer ?? 'Postern';
    this.#resetTokens = new ResetTokens(backend, this.#clock);
  }

  /** Creates a user without a password (give them an invite token to set one); AlreadyExistsError if the name is taken. */
  async create(name: string, spec: UserSpecInput = {}): Promise<User> {
    _checkName(name);
    const record: UserRecord = {
      name,
      spec: parseWith(userSpecSchema, spec, `user ${name}: spec`),
      createdAt: this.#clock.now().toISOString(),
      lockout: { failures: 0 },
    };
    try {
      const item = await this.#backend.create({ key: _key(name), value: JSON.stringify(record) });
      return toUser(record, item.revision, this.#clock.now());
    } catch (err) {
      if (err instanceof AlreadyExistsError) {
        throw new AlreadyExistsError(`user ${name} already exists; change it with pctl users update ${name}, or remove it first: pctl users rm ${name}`);
      }
      throw err;
    }
  }

  /** The user, or NotFoundError. */
  async get(name: string): Promise<User> {
    _checkName(name);
    const { record, item } = await this.#read(name);
    return toUser(record, item.revision, this.#clock.now());
  }

  /** Every user, by name. */
  async list(): Promise<User[]> {
    const items = await this.#backend.range(userPrefix);
    const now = this.#clock.now();
    return items.map((item) => toUser(_parse(item), item.revision, now));
  }

  /** Replaces roles and traits; with `expectedRevision`, only if nobody changed the user since that read. */
  async update(name: string, spec: UserSpecInput, options: { expectedRevision?: number } = {}): Promise<User> {
    _checkName(name);
    const parsed = parseWith(userSpecSchema, spec, `user ${name}: spec`);
    return this.#mutateUser(name, (record) => ({ ...record, spec: parsed }), options.expectedRevision);
  }

  /** Removes the user and any reset token of theirs; NotFoundError if absent. */
  async delete(name: string): Promise<void> {
    _checkName(name);
    const { record } = await this.#read(name);
    try {
      await this.#backend.delete(_key(name));
    } catch (err) {
      if (err instanceof NotFoundError) throw _notFound(name);
      throw err;
    }
    if (record.resetTokenHash) await this.#resetTokens.remove(record.resetTokenHash);
  }

  /** Sets a new password (policy checked); clears the failure count and voids any reset token. */
  async setPassword(name: string, password: string): Promise<void> {
    _checkName(name);
    checkPasswordPolicy(password, { username: name });
    const hash = await hashPassword(password, this.#scrypt);
    const { record: before } = await this.#read(name);
    await this.#mutate(name, (record, now) => {
      const { resetTokenHash: _voided, ...rest } = clearFailures(record);
      return { ...rest, password: hash, passwordChangedAt: now.toISOString() };
    });
    if (before.resetTokenHash) await this.#resetTokens.remove(before.resetTokenHash);
  }

  /** Lifts a lock and clears the failure count (what `pctl users unlock` does). */
  async unlock(name: string): Promise<void> {
    _checkName(name);
    await this.#mutate(name, (record) => clearFailures(record));
  }

  /**
   * Starts a TOTP enrolment: returns the secret and its `otpauth://` URI (show them as
   * a QR code, once); the current factor, if any, stays until confirmTotp.
   */
  async enrollTotp(name: string): Promise<{ secret: string; uri: string; expires: Date }> {
    _checkName(name);
    const secret = generateTotpSecret();
    const expires = new Date(this.#clock.now().getTime() + pendingTotpMs);
    await this.#mutate(name, (record) => ({ ...record, pendingTotp: { secret, expires: expires.toISOString() } }));
    return { secret, uri: totpUri({ secret, account: name, issuer: this.#issuer }), expires };
  }

  /** Finishes an enrolment with a code from the new authenticator; TotpInvalidError if it is wrong. */
  async confirmTotp(name: string, code: string): Promise<void> {
    _checkName(name);
    await this.#mutate(name, (record, now) => {
      const pending = record.pendingTotp;
      if (!pending || Date.parse(pending.expires) <= now.getTime()) {
        throw new TotpStateError(`user ${name} has no TOTP enrolment in progress (or it expired after 10 minutes); start again: psh mfa add`);
      }
      const result = verifyTotp(code, { secret: pending.secret, clock: this.#clock });
      if (!result.ok) throw new TotpInvalidError(`one-time code for ${name} is wrong; enter the current code from the authenticator app you just set up`);
      const { pendingTotp: _done, ...rest } = record;
      return { ...rest, totp: { secret: pending.secret, enrolledAt: now.toISOString(), lastTimeStep: result.timeStep } };
    });
  }

  /** Removes the user's second factor (admin action, e.g. a lost phone). */
  async removeTotp(name: string): Promise<void> {
    _checkName(name);
    await this.#mutate(name, (record) => {
      if (!record.totp && !record.pendingTotp) return record;
      const { totp: _t, pendingTotp: _p, ...rest } = record;
      return rest;
    });
  }

  /**
   * Checks a password login (and the TOTP code when the user has one). Returns the user,
   * or throws LoginFailedError (same message whichever part was wrong; `auditReason` says
   * which, for the audit log) or AccountLockedError.
   */
  async authenticate(name: string, password: string, totpCode?: string): Promise<User> {
    const now = this.#clock.now();
    const found = userNameSchema.safeParse(name).success ? await this.#tryRead(name) : undefined;
    if (!found) {
      await verifyPassword(String(password), await this.#dummyHash());
      throw new LoginFailedError(_displayName(name), 'unknown_user');
    }
    const locked = lockedUntilOf(found.record, now);
    if (locked) throw new AccountLockedError(name, locked, found.record.lockout.failures);
    const check = await this.#checkCredentials(found.record, password, totpCode);
    if (check.failure) return this.#failLogin(name, check.failure);
    const rehash = found.record.password && needsRehash(found.record.password, this.#scrypt)
      ? await hashPassword(password, this.#scrypt)
      : undefined;
    return this.#mutateUser(name, (record, at) => this.#acceptLogin(record, at, check.timeStep, found.record.password, rehash));
  }

  /**
   * Issues a reset (or invite) token for the user, replacing any earlier one, and lifts
   * a lock (an admin asked for it: this is `pctl users reset`). See reset-tokens.ts.
   * The token is in this answer only.
   */
  async createResetToken(name: string, options: ResetTokenOptions = {}): Promise<{ token: string; expires: Date }> {
    _checkName(name);
    const { record: before } = await this.#read(name);
    const issued = await this.#resetTokens.issue(name, options);
    await this.#mutate(name, (record) => ({ ...clearFailures(record), resetTokenHash: issued.hash }));
    if (before.resetTokenHash) await this.#resetTokens.remove(before.resetTokenHash);
    return { token: issued.token, expires: issued.expires };
  }

  /** Who a reset token is for and whether it will ask for a TOTP code; ResetTokenInvalidError if it is not usable. */
  async inspectResetToken(token: string): Promise<ResetTokenInfo & { totpRequired: boolean }> {
    const { found, record } = await this.#findResetToken(token);
    return { ...found.info, totpRequired: !found.info.resetTotp && record.totp !== undefined };
  }

  /**
   * Sets a new password with a reset or invite token (single use), clears the lock, and
   * returns the user. A user with TOTP must give a current code unless the token was
   * issued with `resetTotp`, which removes the factor instead.
   */
  async useResetToken(token: string, newPassword: string, totpCode?: string): Promise<User> {
    const { found, record } = await this.#findResetToken(token);
    const name = record.name;
    checkPasswordPolicy(newPassword, { username: name });
    let timeStep: number | undefined;
    if (!found.info.resetTotp && record.totp) timeStep = await this.#checkResetTotp(name, record, totpCode);
    const hash = await hashPassword(newPassword, this.#scrypt);
    const user = await this.#mutateUser(name, (current, now) => {
      // Single use: whoever swaps first clears the hash, a racing second use fails here.
      if (!sameHash(current.resetTokenHash, found.hash)) throw new ResetTokenInvalidError();
      const { resetTokenHash: _used, ...rest } = clearFailures(current);
      const next: UserRecord = { ...rest, password: hash, passwordChangedAt: now.toISOString() };
      if (found.info.resetTotp) {
        delete next.totp;
        delete next.pendingTotp;
      } else if (next.totp && timeStep !== undefined) {
        if ((next.totp.lastTimeStep ?? -1) >= timeStep) throw new TotpInvalidError(`one-time code for ${name} was already used; wait for the next code`);
        next.totp = { ...next.totp, lastTimeStep: timeStep };
      }
      return next;
    });
    await this.#resetTokens.remove(found.hash);
    return user;
  }

  /** The token and its user, if the user record still names this token as the current one. */
  async #findResetToken(token: string) {
    const found = await this.#resetTokens.find(token);
    const current = await this.#tryRead(found.info.user);
    if (!current || !sameHash(current.record.resetTokenHash, found.hash)) throw new ResetTokenInvalidError();
    return { found, record: current.record };
  }

  async #checkResetTotp(name: string, record: UserRecord, code: string | undefined): Promise<number> {
    const locked = lockedUntilOf(record, this.#clock.now());
    if (locked) throw new AccountLockedError(name, locked, record.lockout.failures);
    const result = verifyTotp(code ?? '', { secret: record.totp!.secret, clock: this.#clock, lastTimeStep: record.totp!.lastTimeStep });
    if (result.ok) return result.timeStep;
    const { locked: nowLocked, record: after } = await this.#recordFailure(name);
    if (nowLocked) throw new AccountLockedError(name, lockedUntilOf(after, this.#clock.now())!, after.lockout.failures);
    throw new TotpInvalidError(`resetting the password of ${name} needs a current one-time code from their authenticator app; ` +
      `without it, ask an admin for a reset that removes the second factor: pctl users reset ${name} --reset-mfa`);
  }

  async #checkCredentials(
    record: UserRecord,
    password: string,
    totpCode: string | undefined,
  ): Promise<{ failure?: LoginFailureReason; timeStep?: number }> {
    const passwordOk = await verifyPassword(String(password), record.password ?? (await this.#dummyHash()));
    if (!record.password) return { failure: 'no_password' };
    if (!passwordOk) return { failure: 'bad_password' };
    if (!record.totp) return {};
    if (totpCode === undefined || totpCode === '') return { failure: 'totp_missing' };
    const result = verifyTotp(totpCode, { secret: record.totp.secret, clock: this.#clock, lastTimeStep: record.totp.lastTimeStep });
    if (!result.ok) return { failure: result.reason === 'replayed' ? 'totp_replayed' : 'bad_totp' };
    return { timeStep: result.timeStep };
  }

  /** The success write: refuses if a concurrent failure locked the account or used the same TOTP step. */
  #acceptLogin(record: UserRecord, now: Date, timeStep: number | undefined, checkedHash: PasswordHash | undefined, rehash: PasswordHash | undefined): UserRecord {
    const locked = lockedUntilOf(record, now);
    if (locked) throw new AccountLockedError(record.name, locked, record.lockout.failures);
    if (record.password?.hash !== checkedHash?.hash) throw new LoginFailedError(record.name, 'bad_password');
    let next = clearFailures(record);
    if (timeStep !== undefined && next.totp) {
      if ((next.totp.lastTimeStep ?? -1) >= timeStep) throw new LoginFailedError(record.name, 'totp_replayed');
      next = { ...next, totp: { ...next.totp, lastTimeStep: timeStep } };
    }
    if (rehash) next = { ...next, password: rehash };
    return next;
  }

  async #failLogin(name: string, reason: LoginFailureReason): Promise<never> {
    const { locked, record } = await this.#recordFailure(name);
    if (locked) throw new AccountLockedError(name, lockedUntilOf(record, this.#clock.now())!, record.lockout.failures);
    throw new LoginFailedError(name, reason);
  }

  async #recordFailure(name: string): Promise<{ locked: boolean; record: UserRecord }> {
    let locked = false;
    const { record } = await this.#mutate(name, (current, now) => {
      const applied = applyFailure(current, now, this.#lockout);
      locked = applied.locked;
      return applied.record;
    });
    return { locked, record };
  }

  #dummyHash(): Promise<PasswordHash> {
    this.#dummy ??= dummyPasswordHash(this.#scrypt);
    return this.#dummy;
  }

  async #mutateUser(name: string, mutation: Mutation, expectedRevision?: number): Promise<User> {
    const { record, revision } = await this.#mutate(name, mutation, expectedRevision);
    return toUser(record, revision, this.#clock.now());
  }

  /** Read, apply, compare-and-swap; on a lost race, again on the fresh record. */
  async #mutate(name: string, mutation: Mutation, expectedRevision?: number): Promise<{ record: UserRecord; revision: number }> {
    for (let attempt = 0; attempt < maxCasAttempts; attempt++) {
      const { record, item } = await this.#read(name);
      if (expectedRevision !== undefined && item.revision !== expectedRevision) throw _changedSince(name, expectedRevision);
      const next = mutation(record, this.#clock.now());
      if (next === record) return { record, revision: item.revision };
      const value = JSON.stringify(parseWith(userRecordSchema, next, `user ${name}`));
      try {
        const written = await this.#backend.compareAndSwap(item.revision, { key: _key(name), value });
        return { record: next, revision: written.revision };
      } catch (err) {
        if (err instanceof NotFoundError) throw _notFound(name);
        if (!(err instanceof CompareFailedError)) throw err;
        if (expectedRevision !== undefined) throw _changedSince(name, expectedRevision);
      }
    }
    throw new UserBusyError(name);
  }

  async #read(name: string): Promise<{ record: UserRecord; item: Item }> {
    const found = await this.#tryRead(name);
    if (!found) throw _notFound(name);
    return found;
  }

  async #tryRead(name: string): Promise<{ record: UserRecord; item: Item } | undefined> {
    const item = await this.#backend.get(_key(name));
    return item ? { record: _parse(item), item } : undefined;
  }
}

function _key(name: string): string {
  return userPrefix + name;
}

function _checkName(name: string): void {
  parseWith(userNameSchema, name, 'user name');
}

function _parse(item: Item): UserRecord {
  return parseWith(userRecordSchema, JSON.parse(item.value), `stored user ${item.key}`);
}

function _notFound(name: string): NotFoundError {
  return new NotFoundError(`user ${name} not found; list users with pctl users ls, or add one: pctl users add ${name}`);
}

function _changedSince(name: string, revision: number): CompareFailedError {
  return new CompareFailedError(`user ${name} changed since revision ${revision}; read it again (pctl get user/${name}) and re-apply the change`);
}

/** A name to quote in an error: the caller's own input, but bounded and printable. */
function _displayName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) return '(no user name)';
  const printable = name.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
}
