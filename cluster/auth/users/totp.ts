/**
 * TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, what every authenticator
 * app reads from an `otpauth://` QR code), on otplib v13's functional API with the
 * time taken from an injected clock.
 *
 * A code is accepted one step either side of now (clock drift between phone and
 * server). Replay: the caller stores the time step of the last accepted code and
 * passes it back; a code from that step or an earlier one is refused, so a code seen
 * over a shoulder or in a log cannot be used a second time within its window.
 *
 * ```ts
 * const secret = generateTotpSecret();
 * const uri = totpUri({ secret, account: 'alice', issuer: 'Postern (example.com)' });
 * const result = verifyTotp(code, { secret, clock, lastTimeStep: user.totp.lastTimeStep });
 * if (result.ok) save(result.timeStep);
 * ```
 */
import { generateSecret, generateSync, generateURI, verifySync } from 'otplib';
import type { Clock } from '../../common/clock.ts';

/** Seconds per step. */
export const totpPeriod = 30;
/** Digits per code. */
export const totpDigits = 6;
/** Accepted drift, in seconds either side of now: one step. */
const toleranceSeconds = totpPeriod;
/** 20 random bytes = 160 bits, the RFC 4226 recommendation; 32 base32 characters. */
const secretBytes = 20;
const codePattern = /^[0-9]{6}$/;

export type TotpResult =
  | { ok: true; timeStep: number }
  | { ok: false; reason: 'malformed' | 'invalid' | 'replayed' };

/** A new random secret, base32 (what authenticator apps take). */
export function generateTotpSecret(): string {
  return generateSecret({ length: secretBytes });
}

/** The `otpauth://totp/…` URI to show as a QR code for enrolment. */
export function totpUri(options: { secret: string; account: string; issuer: string }): string {
  return generateURI({
    issuer: options.issuer,
    label: options.account,
    secret: options.secret,
    algorithm: 'sha1',
    digits: totpDigits,
    period: totpPeriod,
  });
}

/** The code an authenticator shows at `at`; for tests and tools that act as the second factor. */
export function totpCode(secret: string, at: Date): string {
  return generateSync({ secret, epoch: _epochSeconds(at), period: totpPeriod, digits: totpDigits });
}

/**
 * Checks `code` against `secret` at the clock's time, one step either side; refuses a
 * code from `lastTimeStep` or earlier (replay). On success returns the code's time
 * step, which the caller must store (atomically with the decision) as the new
 * `lastTimeStep`.
 */
export function verifyTotp(
  code: string,
  options: { secret: string; clock: Clock; lastTimeStep?: number | undefined },
): TotpResult {
  if (typeof code !== 'string' || !codePattern.test(code)) return { ok: false, reason: 'malformed' };
  const result = verifySync({
    secret: options.secret,
    token: code,
    epoch: _epochSeconds(options.clock.now()),
    epochTolerance: toleranceSeconds,
    period: totpPeriod,
    digits: totpDigits,
  });
  if (!result.valid) return { ok: false, reason: 'invalid' };
  // The TOTP strategy always reports the matching step; compute it from the drift otherwise.
  const timeStep = 'timeStep' in result ? result.timeStep : _stepOf(_epochSeconds(options.clock.now())) + result.delta;
  if (options.lastTimeStep !== undefined && timeStep <= options.lastTimeStep) return { ok: false, reason: 'replayed' };
  return { ok: true, timeStep };
}

function _epochSeconds(at: Date): number {
  return Math.floor(at.getTime() / 1000);
}

function _stepOf(epochSeconds: number): number {
  return Math.floor(epochSeconds / totpPeriod);
}
