/**
 * Browser sessions for HTTP apps, served on the app's own host under `/.postern/`:
 *
 * ```
 * GET  /any/path  (no session, Accept text/html) ── 302 /.postern/login?redirect=/any/path
 * GET  /.postern/login[?cluster=LEAF]   a minimal form: user, password, one-time code
 * POST /.postern/login   Login at auth (a key pair made here; the user never sees it;
 *                        routed to LEAF when the form names one: auth checks cluster_labels),
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
 *
 * A session routed to a leaf is dialled like `psh apps login --cluster LEAF`: through the
 * leaf's tunnel with the certificate as the identity, so the leaf's agent verifies it
 * against the root's user CA and maps its roles (a routed identity vouched for by this
 * proxy means nothing to a leaf).
 */
import { generateKeyPairSync } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceNameSchema } from '../access/resources/resource.ts';
import type { AuthClient } from '../api/auth-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import type { UserIdentity } from '../auth/pki/identity.ts';
import { verifyCertificateChain } from '../auth/pki/verify-certificate.ts';
import type { Logger } from '../common/logger.ts';
import type { AppCaller } from './app-web.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { clusterCookie, sessionCookie } from './app-session-cookie.ts';
import { cookieValue } from './cookie-header.ts';

export { clusterCookie, sessionCookie, withoutSessionCookie } from './app-session-cookie.ts';

const maxFormBytes = 8 * 1024;

export interface AppSessionsOptions {
  auth: () => AuthClient;
  userCaPems: () => readonly string[];
  limiter: RateLimiter;
  logger: Logger;
  cacheMs?: number;
}

function _cookie(req: Pick<IncomingMessage, 'headers'>, wanted = sessionCookie): string | undefined {
  return cookieValue(req.headers.cookie, wanted);
}

/** The login page's address, routed to the cluster the browser last logged in to on this host (a valid name only). */
function _loginPath(req: Pick<IncomingMessage, 'headers'>, redirect?: string): string {
  const remembered = loginCluster(_cookie(req, clusterCookie));
  const cluster = 'cluster' in remembered && remembered.cluster !== '' ? remembered.cluster : undefined;
  const query = [...(cluster ? [`cluster=${encodeURIComponent(cluster)}`] : []), ...(redirect !== undefined ? [`redirect=${encodeURIComponent(safeRedirect(redirect))}`] : [])];
  return `/.postern/login${query.length > 0 ? `?${query.join('&')}` : ''}`;
}

function _escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A same-host path to return to; anything else (//evil, https://...) becomes `/`. */
export function safeRedirect(target: string | null | undefined): string {
  if (!target || !target.startsWith('/') || target.startsWith('//') || target.startsWith('/\\') || /[\r\n]/.test(target)) return '/';
  return target;
}

/** The cluster a login form asks for: '' for this cluster, a leaf's name, or why the value is refused. */
export type LoginCluster = { cluster: string } | { refused: string };

/** Checks the `cluster` of a login URL or form: a leaf is named as its remote_cluster resource is. */
export function loginCluster(value: string | null | undefined): LoginCluster {
  if (value === null || value === undefined || value === '') return { cluster: '' };
  const parsed = resourceNameSchema.safeParse(value);
  if (parsed.success) return { cluster: parsed.data };
  return { refused: `"${value.slice(0, 64)}" is not a cluster name: it ${parsed.error.issues[0]?.message ?? 'does not parse'}` };
}

/**
 * The caller of a session whose certificate `pem` verified as `identity`: routed to a
 * leaf, it carries the certificate (dialled there as a certificate holder); for this
 * cluster, the identity alone (dialled with a routed identity this proxy vouches for).
 */
export function sessionCaller(identity: UserIdentity, pem: string): AppCaller {
  const leaf = identity.routeToCluster !== '' && identity.routeToCluster !== identity.cluster;
  return leaf ? { identity, via: 'app-session', certificate: { pem, routeToCluster: identity.routeToCluster } } : { identity, via: 'app-session' };
}

/**
 * What the form says when auth refuses a login. A refused route to a leaf comes only
 * after the password and code were accepted (auth authenticates first), so it may be
 * precise; anything else stays generic, never saying which of user, password or code
 * was wrong, nor that the account is locked.
 */
export function loginRefusal(error: unknown, cluster: string): { message: string; status: number } {
  if (cluster !== '' && error instanceof PosternError && error.code === 'PST_ACCESS_DENIED') {
    return { message: `Your roles do not reach cluster ${cluster}: ${error.message}`, status: 403 };
  }
  return { message: 'Login failed: check your user name, password and one-time code.', status: 401 };
}

/** What one rendering of the login form shows. */
interface _FormView {
  app: string;
  redirect: string;
  /** The leaf the login is routed to; '' for this cluster. */
  cluster: string;
  message?: string;
  status?: number;
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
      caller = sessionCaller(identity, session.tlsCertificatePem);
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
  readonly loginUrl = (req: Pick<IncomingMessage, 'headers'>, path: string): string => _loginPath(req, path);

  /** Answers `/.postern/login` and `/.postern/logout`; false for other paths. */
  readonly routes = async (req: IncomingMessage, res: ServerResponse, app: string): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'https://app.invalid');
    if (url.pathname === '/.postern/login' && req.method === 'GET') {
      const asked = loginCluster(url.searchParams.get('cluster'));
      if ('refused' in asked) this.#refusedCluster(res, app, asked.refused);
      else this.#form(res, { app, redirect: safeRedirect(url.searchParams.get('redirect')), cluster: asked.cluster });
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
      res.writeHead(303, { location: _loginPath(req), 'set-cookie': `${sessionCookie}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`, 'cache-control': 'no-store' }).end();
      return true;
    }
    return false;
  };

  async #login(req: IncomingMessage, res: ServerResponse, app: string): Promise<void> {
    const body = await this.#readForm(req);
    // Checked before anything reaches auth: the value goes back into the page and into the certificate request.
    const asked = loginCluster(body.get('cluster'));
    if ('refused' in asked) return this.#refusedCluster(res, app, asked.refused);
    const view: _FormView = { app, redirect: safeRedirect(body.get('redirect')), cluster: asked.cluster };
    const ip = req.socket.remoteAddress ?? 'unknown';
    if (this.#options.limiter.take(ip) > 0) return this.#form(res, { ...view, message: 'Too many attempts; wait a minute and try again.', status: 429 });
    const user = (body.get('user') ?? '').slice(0, 253);
    const password = (body.get('password') ?? '').slice(0, 1_024);
    if (!user || !password) return this.#form(res, { ...view, message: 'Enter your user name and password.', status: 400 });
    let session: { sessionId: string; expires: string };
    try {
      session = await this.#startSession({ user, password, totpCode: (body.get('otp') ?? '').slice(0, 16), app, cluster: view.cluster });
    } catch (error) {
      this.#options.logger.info({ user, app, cluster: view.cluster || undefined, why: (error as Error).message }, 'app login refused');
      return this.#form(res, { ...view, ...loginRefusal(error, view.cluster) });
    }
    const maxAge = Math.max(0, Math.floor((new Date(session.expires).getTime() - Date.now()) / 1000));
    this.#options.logger.info({ user, app, cluster: view.cluster || undefined }, 'app session created');
    // The cluster cookie outlives the session on purpose: the next login page is routed the same way.
    const remembered = view.cluster ? `${clusterCookie}=${view.cluster}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000` : `${clusterCookie}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`;
    res.writeHead(303, { location: view.redirect, 'set-cookie': [`${sessionCookie}=${session.sessionId}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${maxAge}`, remembered], 'cache-control': 'no-store' }).end();
  }

  /** Logs the user in at auth with a key pair made here (routed to `cluster` when set) and stores the certificate as an app session. */
  async #startSession(request: { user: string; password: string; totpCode: string; app: string; cluster: string }): Promise<{ sessionId: string; expires: string }> {
    const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ssh = generateKeyPairSync('ed25519');
    const issued = await this.#options.auth().login({
      user: request.user, password: request.password, totpCode: request.totpCode,
      sshPublicKey: formatAuthorizedKey(ssh.publicKey), tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string, ttlSeconds: 0n, routeToCluster: request.cluster,
    }, { deadlineMs: 10_000 });
    return this.#options.auth().createAppSession({ tlsCertificatePem: issued.tlsCertificatePem, appName: request.app }, { deadlineMs: 5_000 });
  }

  async #readForm(req: IncomingMessage): Promise<URLSearchParams> {
    let text = '';
    for await (const chunk of req) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > maxFormBytes) break;
    }
    return new URLSearchParams(text.slice(0, maxFormBytes));
  }

  #form(res: ServerResponse, view: _FormView): void {
    const where = view.cluster ? ` in cluster ${_escape(view.cluster)}` : '';
    const hiddenCluster = view.cluster ? `\n<input type="hidden" name="cluster" value="${_escape(view.cluster)}">` : '';
    this.#page(res, `Log in to ${_escape(view.app)}${where}`, `${view.message ? `<p id="error" role="alert">${_escape(view.message)}</p>` : ''}
<form method="post" action="/.postern/login">
<input type="hidden" name="redirect" value="${_escape(view.redirect)}">${hiddenCluster}
<label>User <input id="user" name="user" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<label>One-time code <input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code"></label>
<button id="login" type="submit">Log in</button>
</form>`, view.status ?? 200);
  }

  /** A login URL or form naming something that is not a cluster: no form, so nobody logs in to another cluster than they asked for. */
  #refusedCluster(res: ServerResponse, app: string, why: string): void {
    this.#page(res, `Cannot log in to ${_escape(app)}`, `<p id="error" role="alert">${_escape(why)}</p>`, 400);
  }

  /** `heading` and `content` are HTML, escaped by the caller. */
  #page(res: ServerResponse, heading: string, content: string, status: number): void {
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>${heading}</title></head><body>
<h1>${heading}</h1>${content}</body></html>`;
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'; form-action 'self'" }).end(html);
  }
}
