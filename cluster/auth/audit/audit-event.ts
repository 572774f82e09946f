/**
 * The audit event: one security-relevant fact (a login, a join, a session, a denial),
 * written once and never changed.
 *
 * ```json
 * {"id":"001767268800000-000001-9f2c41aa","time":"2026-01-01T12:00:00.000Z",
 *  "type":"user.login.failed","cluster":"root.example.com",
 *  "identity":{"user":"alice","addr":"203.0.113.7:51234"},
 *  "outcome":"failure","reason":"wrong password","fields":{"method":"password"}}
 * ```
 *
 * The id starts with the event's time in milliseconds, zero-padded to 15 digits, so
 * ids sort by time and a time range is a key range; a per-process sequence and a
 * random part follow, so events of one millisecond keep their order within a process
 * and never collide across processes.
 *
 * `fields` never carry secrets: values under secret-sounding keys (password, token,
 * secret, totp, …) are replaced by "[redacted]" before the event is written, and
 * values that JSON cannot hold (bigint, buffers, cycles) are turned into text.
 */
import crypto from 'node:crypto';
import { z } from 'zod';

/** Event types Postern emits; others are allowed if they follow the `area.action[.detail]` form. */
export const auditEventTypes = [
  'user.login',
  'user.login.failed',
  'user.create',
  'user.update',
  'user.delete',
  'user.password.change',
  'user.password.reset',
  'user.locked',
  'user.mfa.add',
  'user.mfa.remove',
  'token.create',
  'token.consume',
  'token.consume.failed',
  'token.delete',
  'cert.issue',
  'session.start',
  'session.end',
  'session.join',
  'web.session.start',
  'web.session.end',
  'db.session.query',
  'app.session.start',
  'access.denied',
  'resource.create',
  'resource.update',
  'resource.delete',
  'trusted_cluster.create',
  'trusted_cluster.delete',
] as const;

export const auditOutcomes = ['allow', 'deny', 'success', 'failure'] as const;
export type AuditOutcome = (typeof auditOutcomes)[number];

const typePattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const idPattern = /^\d{15}-[0-9a-f]{6}-[0-9a-f]{8}$/;
/** Serialized `fields` larger than this are replaced by a note of their size. */
export const maxFieldsBytes = 16 * 1024;
const maxDepth = 8;
const shortText = z.string().min(1).max(253);

export const auditIdentitySchema = z.strictObject({
  user: shortText.optional(),
  host: shortText.optional(),
  roles: z.array(z.string().max(253)).max(256).optional(),
  /** The client's address, `ip:port`. */
  addr: z.string().max(64).optional(),
});

export const auditEventSchema = z.strictObject({
  id: z.string().regex(idPattern, { error: 'expected a time-sortable audit id' }),
  time: z.iso.datetime(),
  type: z.string().max(64).regex(typePattern, { error: "expected 'area.action', lower-case, e.g. user.login" }),
  cluster: shortText,
  identity: auditIdentitySchema,
  resource: z.strictObject({ kind: shortText, name: z.string().min(1).max(1024) }).optional(),
  outcome: z.enum(auditOutcomes),
  reason: z.string().max(1024).optional(),
  fields: z.record(z.string(), z.unknown()),
});
export type AuditEvent = z.output<typeof auditEventSchema>;

/** What a host sends (EmitAudit): the event without the parts the log assigns (id, time, cluster). */
export const auditInputSchema = auditEventSchema.omit({ id: true, time: true, cluster: true }).partial({ fields: true });

/** What an emitter gives; the log adds id, time and cluster. */
export type AuditEventInput = Omit<AuditEvent, 'id' | 'time' | 'cluster' | 'fields'> & { fields?: Record<string, unknown> };

let _sequence = 0;
/** Random bytes drawn 4 KiB at a time: one draw per event cost ~7 us under the database query audit. */
let _pool = Buffer.alloc(0);
let _poolOffset = 0;

function _random4(): string {
  if (_poolOffset + 4 > _pool.length) {
    _pool = crypto.randomBytes(4096);
    _poolOffset = 0;
  }
  _poolOffset += 4;
  return _pool.toString('hex', _poolOffset - 4, _poolOffset);
}

/** A new id for an event at `time` (see the file comment). */
export function newAuditId(time: Date): string {
  _sequence = (_sequence + 1) % 0x1000000;
  const ms = String(time.getTime()).padStart(15, '0');
  return `${ms}-${_sequence.toString(16).padStart(6, '0')}-${_random4()}`;
}

/** The first id any event at or after `time` can have is greater than this key part. */
export function auditIdFloor(time: Date): string {
  return String(Math.max(0, time.getTime())).padStart(15, '0');
}

const secretKeys = new Set([
  'password', 'newpassword', 'oldpassword', 'passwd', 'secret', 'clientsecret', 'token', 'jointoken', 'resettoken',
  'accesstoken', 'refreshtoken', 'totp', 'totpcode', 'otp', 'privatekey', 'authorization', 'cookie', 'apikey',
]);

/** `fields` made safe to store: secrets redacted, non-JSON values as text, bounded in depth and size. */
export function sanitizeFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (fields === undefined) return {};
  const clean = _sanitize(fields, 0, new WeakSet()) as Record<string, unknown>;
  const bytes = Buffer.byteLength(JSON.stringify(clean));
  return bytes > maxFieldsBytes ? { truncated: true, bytes } : clean;
}

function _sanitize(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return undefined; // functions, symbols, undefined: dropped
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? value.toISOString() : 'Invalid Date';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  if (seen.has(value)) return '[circular]';
  if (depth >= maxDepth) return '[too deep]';
  seen.add(value);
  const out = Array.isArray(value) ? _sanitizeArray(value, depth, seen) : _sanitizeObject(value, depth, seen);
  seen.delete(value);
  return out;
}

function _sanitizeArray(value: unknown[], depth: number, seen: WeakSet<object>): unknown[] {
  return value.map((item) => _sanitize(item, depth + 1, seen) ?? null);
}

/** Whether a key names a secret, by key: the same few keys come with every event (a database query's). */
const _secretKeyCache = new Map<string, boolean>();

function _isSecretKey(key: string): boolean {
  let secret = _secretKeyCache.get(key);
  if (secret === undefined) {
    secret = secretKeys.has(key.toLowerCase().replace(/[-_]/g, ''));
    if (_secretKeyCache.size >= 1024) _secretKeyCache.clear();
    _secretKeyCache.set(key, secret);
  }
  return secret;
}

function _sanitizeObject(value: object, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (_isSecretKey(key)) {
      out[key] = '[redacted]';
      continue;
    }
    const clean = _sanitize(item, depth + 1, seen);
    if (clean !== undefined) out[key] = clean;
  }
  return out;
}
