/**
 * Browser sessions for HTTP apps, served on the app's own host under `/.postern/`:
 *
 * ```
 * GET  /any/path  (no session, Accept text/html) ── 302 /.postern/login?redirect=/any/path
 * GET  /.postern/login   a minimal form: user, password, one-time code
 * POST /.postern/login   Login at auth (a key pair made here; the user never sees it),
 *                        CreateAppSession(certificate) ── Set-Cookie __Host-postern_app=<id>
 *                        (Secure, HttpOnly, SameSite=Lax, Path=/, until the certificate expires)
 *                        ── 303 back to redirect (a same-host path only)
 * POST /.postern/logout  DeleteAppSession, cookie cleared
 * ```
 *
 * The cookie's host-only `__Host-` prefix keeps it on this app's host; the session at
 * auth names its app too, so a cookie never opens another app. Lookups are cached
 * 10 s per id (a logout on this proxy drops the entry at once; on another, within 10 s).
 * The cookie is removed from requests before they reach the app.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthClient } from '../api/auth-client.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { Logger } from '../common/logger.ts';
import type { AppCaller } from './app-web.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { sessionCookie } from './app-session-cookie.ts';

export { sessionCookie, withoutSessionCookie } from './app-session-cookie.ts';

const maxFormBytes = 8 * 1024;

export interface AppSessionsOptions {
  auth: () => AuthClient;
  userCaPems: () => readonly string[];
  limiter: RateLimiter;
  logger: Logger;
  cacheMs?: number;
}

function _cookie(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of (Array.isArray(header) ? header.join('; ') : header).split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === sessionCookie) return rest.join('=');
  }
  return undefined;
}

function _escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A same-host path to return to; anything else (//evil, https://...) becomes `/`. */
export function safeRedirect(target: string | null | undefined): string {
  if (!target || !target.startsWith('/') || target.startsWith('//') || target.startsWith('/\\') || /[\r\n]/.test(target)) return '/';
  return target;
}

export class AppSessions {
  readonly #options: AppSessionsOptions;
  readonly #cache = new Map<string, { at: number; caller: AppCaller | undefined; app: string }>();
  readonly #inflight = new Map<string, Promise<{ caller: AppCaller | undefined; app: string }>>();

  constructor(options: AppSessionsOptions) {
    this.#options = options;
  }

  /** The caller of a request with a valid session cookie for `app`. */
  readonly lookup = async (req: Pick<IncomingMessage, 'headers'>, app: string): Promise<AppCaller | undefined> => {
    const known = this.cached(req, app);
    if (known !== 'miss') return known;
    const id = _cookie(req)!;
    // Every connection of a browser misses at the same moment when the entry ages out: one call to auth for all of them.
    let pending = this.#inflight.get(id);
    if (!pending) {
      pending = this.#fetch(id).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, pending);
    }
    const found = await pending;
    return found.app === app && found.caller && found.caller.identity.expires.getTime() > Date.now() ? found.caller : undefined;
  };

  async #fetch(id: string): Promise<{ caller: AppCaller | undefined; app: string }> {
    const now = Date.now();
    let caller: AppCaller | undefined;
    let sessionApp = '';
    try {
      const session = await this.#options.auth().getAppSession({ sessionId: id }, { deadlineMs: 5_000 });
      sessionApp = session.appName;
      const identity = verifyCertificateChain(session.tlsCertificatePem, { trustedCaCerts: [...this.#options.userCaPems()], expectedKind: 'user', usage: 'client' }) as UserIdentity;
      caller = { identity, via: 'app-session' };
    } catch (error) {
      this.#options.logger.debug({ why: (error as Error).message }, 'app session cookie not accepted');
    }
    if (this.#cache.size > 50_000) this.#cache.clear();
    const entry = { at: now, caller, app: sessionApp };
    // A logout while this call was out must not be undone by its answer.
    if (this.#inflight.has(id)) this.#cache.set(id, entry);
    return entry;
  }

  /**
   * The answer for a request's cookie without asking auth: the caller, undefined (no
   * valid session for `app`), or 'miss' when auth must be asked (lookup does).
   * Expiry is checked on every call, not only when the entry is made.
   */
  readonly cached = (req: Pick<IncomingMessage, 'headers'>, app: string): AppCaller | undefined | 'miss' => {
    const id = _cookie(req);
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const cached = this.#cache.get(id);
    const now = Date.now();
    if (!cached || now - cached.at >= (this.#options.cacheMs ?? 10_000)) return 'miss';
    return cached.app === app && cached.caller && cached.caller.identity.expires.getTime() > now ? cached.caller : undefined;
  };

  /** Where a browser without a session goes. */
  readonly loginUrl = (_host: string, path: string): string => `/.postern/login?redirect=${encodeURIComponent(safeRedirect(path))}`;

  /** Answers `/.postern/login` and `/.postern/logout`; false for other paths. */
  readonly routes = async (req: IncomingMessage, res: ServerResponse, app: string): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'https://app.invalid');
    if (url.pathname === '/.postern/login' && req.method === 'GET') {
      this.#form(res, app, safeRedirect(url.searchParams.get('redirect')), '');
      return true;
    }
    if (url.pathname === '/.postern/login' && req.method === 'POST') {
      await this.#login(req, res, app);
      return true;
    }
    // POST only: a cross-site GET (sent with SameSite=Lax cookies) must not log anyone out.
    if (url.pathname === '/.postern/logout' && req.method === 'POST') {
      const id = _cookie(req);
      if (id && /^[A-Za-z0-9_-]{43}$/.test(id)) {
        this.#cache.delete(id);
        this.#inflight.delete(id);
        await this.#options.auth().deleteAppSession({ sessionId: id }, { deadlineMs: 5_000 }).catch((error: unknown) => this.#options.logger.warn({ err: error }, 'cannot delete an app session at auth'));
      }
      res.writeHead(303, { location: '/.postern/login', 'set-cookie': `${sessionCookie}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`, 'cache-control': 'no-store' }).end();
      return true;
    }
    return false;
  };

  async #login(req: IncomingMessage, res: ServerResponse, app: string): Promise<void> {
    const body = await this.#readForm(req);
    const redirect = safeRedirect(body.get('redirect'));
    const ip = req.socket.remoteAddress ?? 'unknown';
    if (this.#options.limiter.take(ip) > 0) return this.#form(res, app, redirect, 'Too many attempts; wait a minute and try again.', 429);
    const user = (body.get('user') ?? '').slice(0, 253);
    const password = (body.get('password') ?? '').slice(0, 1_024);
    if (!user || !password) return this.#form(res, app, redirect, 'Enter your user name and password.', 400);
    const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ssh = generateKeyPairSync('ed25519');
    let sessionId: string;
    let expires: string;
    try {
      const issued = await this.#options.auth().login({
        user, password, totpCode: (body.get('otp') ?? '').slice(0, 16),
        sshPublicKey: formatAuthorizedKey(ssh.publicKey), tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string, ttlSeconds: 0n, routeToCluster: '',
      }, { deadlineMs: 10_000 });
      const session = await this.#options.auth().createAppSession({ tlsCertificatePem: issued.tlsCertificatePem, appName: app }, { deadlineMs: 5_000 });
      sessionId = session.sessionId;
      expires = session.expires;
    } catch (error) {
      this.#options.logger.info({ user, app, why: (error as Error).message }, 'app login refused');
      return this.#form(res, app, redirect, 'Login failed: check your user name, password and one-time code.', 401);
    }
    const maxAge = Math.max(0, Math.floor((new Date(expires).getTime() - Date.now()) / 1000));
    this.#options.logger.info({ user, app }, 'app session created');
    res.writeHead(303, { location: redirect, 'set-cookie': `${sessionCookie}=${sessionId}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${maxAge}`, 'cache-control': 'no-store' }).end();
  }

  async #readForm(req: IncomingMessage): Promise<URLSearchParams> {
    let text = '';
    for await (const chunk of req) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > maxFormBytes) break;
    }
    return new URLSearchParams(text.slice(0, maxFormBytes));
  }

  #form(res: ServerResponse, app: string, redirect: string, message: string, status = 200): void {
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>Log in to ${_escape(app)}</title></head><body>
<h1>Log in to ${_escape(app)}</h1>${message ? `<p id="error" role="alert">${_escape(message)}</p>` : ''}
<form method="post" action="/.postern/login">
<input type="hidden" name="redirect" value="${_escape(redirect)}">
<label>User <input id="user" name="user" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<label>One-time code <input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code"></label>
<button id="login" type="submit">Log in</button>
</form></body></html>`;
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'; form-action 'self'" }).end(html);
  }
}
