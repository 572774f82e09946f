/**
 * The web session cookie and the checks on requests that change state. The cookie is
 * `__Host-` prefixed (Secure, Path=/, no Domain: a sibling host cannot set or shadow
 * it), HttpOnly and SameSite=Strict; its value is the session id auth generated.
 * State-changing calls must carry the session's CSRF token in `X-CSRF-Token`
 * (compared in constant time) and, when the browser sends one, an Origin of this host.
 */
import { timingSafeEqual } from 'node:crypto';
import { AccessDeniedError } from '../../protocols/errors.ts';
import type { WebRequest } from './http-json.ts';
import { cookieValue } from './cookie-header.ts';

export const sessionCookieName = '__Host-postern_session';

/** The session id from the request's cookies, or undefined. */
export function sessionIdOf(req: WebRequest): string | undefined {
  return cookieValue(req.headers.cookie, sessionCookieName) || undefined;
}

/** Set-Cookie for a new session that lives `maxAgeSeconds`. */
export function sessionCookie(id: string, maxAgeSeconds: number): string {
  return `${sessionCookieName}=${id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
}

/** Set-Cookie that removes the session cookie. */
export function clearedSessionCookie(): string {
  return `${sessionCookieName}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`;
}

/** The host the request was sent to (HTTP/1.1 Host or HTTP/2 :authority). */
export function hostOf(req: WebRequest): string {
  const host = req.headers.host ?? req.headers[':authority'];
  return typeof host === 'string' ? host : '';
}

/** Refuses a request whose Origin (when present) is not this host over https. */
export function checkOrigin(req: WebRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  const expected = `https://${hostOf(req)}`;
  if (origin !== expected) throw new AccessDeniedError(`cross-site request refused: Origin ${String(origin).slice(0, 128)} is not ${expected}`);
}

/** Refuses a state-changing request without the session's CSRF token. */
export function checkCsrf(req: WebRequest, expected: string): void {
  checkOrigin(req);
  const sent = req.headers['x-csrf-token'];
  const given = Buffer.from(typeof sent === 'string' ? sent : '');
  const want = Buffer.from(expected);
  if (expected === '' || given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new AccessDeniedError('missing or wrong CSRF token: send the X-CSRF-Token header the session gave you (reload the page if it is old)');
  }
}
