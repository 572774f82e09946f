/**
 * Browser sessions at the proxy. Login: the proxy makes an SSH and a TLS key pair,
 * logs the person in through auth's Login (password + TOTP, audited there), and
 * stores the session at auth (CreateWebSession) so every proxy of the cluster can
 * serve its cookie. Each request: the cookie's id -> the session (cached here a few
 * seconds, then asked of auth again, which counts the activity and ends idle
 * sessions) -> a gRPC connection to auth with the session's own certificate, so
 * auth applies the person's roles to every call.
 */
import { generateKeyPairSync } from 'node:crypto';
import { connectAuth, type AuthClient, type AuthConnection } from '../api/auth-client.ts';
import type { WebSession } from '../api/gen/postern/auth/v1/auth_pb.ts';
import { AuthenticationError, PosternError } from '../../protocols/errors.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';
import type { Logger } from '../common/logger.ts';

/** A session as the proxy uses it. */
export interface ActiveWebSession {
  id: string;
  record: WebSession;
  /** auth, as this person. */
  auth: AuthClient;
}

export interface WebSessionsOptions {
  /** auth as the proxy (Login, the web-session rpcs). */
  proxyAuth: () => AuthClient;
  authAddr: string;
  /** The host CA certificates that sign auth's certificate. */
  hostCaPems: () => readonly string[];
  logger: Logger;
  /** How long a lookup is trusted before auth is asked again. Default 5 s. */
  cacheMs?: number;
  /** Idle timeout of new sessions. Default 30 min. */
  idleTimeoutSeconds?: number;
  /** Certificate lifetime asked for at login. Default 8 h (roles may cap it lower). */
  ttlSeconds?: number;
  now?: () => number;
}

interface _Cached {
  session: ActiveWebSession;
  connection: AuthConnection;
  checkedAt: number;
  usedAt: number;
}

/** Codes auth answers for a session that is gone. */
const goneCodes = new Set(['PST_WEB_SESSION_NOT_FOUND', 'PST_WEB_SESSION_IDLE']);

export class WebSessions {
  readonly #options: WebSessionsOptions;
  readonly #cache = new Map<string, _Cached>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: WebSessionsOptions) {
    this.#options = options;
    this.#sweeper = setInterval(() => this.#sweep(), 30_000);
    this.#sweeper.unref();
  }

  /** Logs a person in and stores the new session at auth. */
  async login(credentials: { user: string; password: string; totpCode: string }): Promise<ActiveWebSession> {
    const ssh = generateKeyPairSync('ed25519');
    const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const auth = this.#options.proxyAuth();
    const issued = await auth.login({
      user: credentials.user,
      password: credentials.password,
      totpCode: credentials.totpCode,
      sshPublicKey: formatAuthorizedKey(ssh.publicKey, `${credentials.user}@web`),
      tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string,
      ttlSeconds: BigInt(this.#options.ttlSeconds ?? 8 * 3600),
    });
    const record = await auth.createWebSession({
      session: {
        user: issued.username,
        tlsKeyPem: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        tlsCertificatePem: issued.tlsCertificatePem,
        sshPrivateKey: formatOpenSshPrivateKey(ssh.privateKey, { comment: `${issued.username}@web` }),
        sshCertificate: issued.sshCertificate,
        sshHostCaKeys: issued.sshHostCaKeys,
        idleTimeoutSeconds: BigInt(this.#options.idleTimeoutSeconds ?? 30 * 60),
      },
    });
    return this.#remember(record.id, record).session;
  }

  /** The session of a cookie's id; AuthenticationError (401) when there is none. */
  async get(id: string | undefined): Promise<ActiveWebSession> {
    if (!id) throw new AuthenticationError('not signed in: this call needs a web session; sign in at /login');
    // Not the shape auth issues: refused here, without a call to auth.
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) throw new AuthenticationError('your web session ended: the session cookie is not one this cluster issued; sign in again');
    const now = this.#now();
    const cached = this.#cache.get(id);
    if (cached && Date.parse(cached.session.record.expires) <= now) this.#forget(id);
    else if (cached && now - cached.checkedAt < (this.#options.cacheMs ?? 5_000)) {
      cached.usedAt = now;
      return cached.session;
    }
    let record: WebSession;
    try {
      record = await this.#options.proxyAuth().getWebSession({ id, touch: true }, { deadlineMs: 5_000 });
    } catch (error) {
      if (error instanceof PosternError && goneCodes.has(error.code)) {
        this.#forget(id);
        throw new AuthenticationError(`your web session ended: ${error.message}`);
      }
      throw error;
    }
    return this.#remember(id, record).session;
  }

  /** Ends the session at auth and here. */
  async logout(id: string, reason = 'logout'): Promise<void> {
    this.#forget(id);
    await this.#options.proxyAuth().deleteWebSession({ id, reason });
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const id of [...this.#cache.keys()]) this.#forget(id);
  }

  #remember(id: string, record: WebSession): _Cached {
    const now = this.#now();
    const existing = this.#cache.get(id);
    if (existing) {
      // Concurrent first requests of one session share one connection.
      existing.session.record = record;
      existing.checkedAt = now;
      existing.usedAt = now;
      return existing;
    }
    const connection = connectAuth(this.#options.authAddr, { key_pem: record.tlsKeyPem, cert_pem: record.tlsCertificatePem, ca_pems: [...this.#options.hostCaPems()] });
    const entry: _Cached = { session: { id, record, auth: connection.client }, connection, checkedAt: now, usedAt: now };
    this.#cache.set(id, entry);
    return entry;
  }

  #forget(id: string): void {
    const entry = this.#cache.get(id);
    if (!entry) return;
    this.#cache.delete(id);
    entry.connection.close();
  }

  /** Drops sessions unused for a minute and those past their certificates' expiry. */
  #sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#cache) {
      if (now - entry.usedAt > 60_000 || Date.parse(entry.session.record.expires) <= now) this.#forget(id);
    }
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }
}
