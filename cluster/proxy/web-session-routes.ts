/**
 * The web UI's API, `/v1/webapi/...` (docs/web-ui.md). Every call but login needs the
 * session cookie; every state-changing one also the session's CSRF token. Calls run
 * against auth with the session's certificate: auth's roles decide, auth audits.
 * Paths name the cluster (`/clusters/NAME/...`): this one, or a leaf the person's
 * roles reach (auth's remote_cluster listing as the person, as `psh clusters` shows).
 * A leaf's resources come through the ServiceDialer (the leaf lists what its rules
 * show); the admin pages, audit log and recordings are this cluster's only.
 */
import { z } from 'zod';
import type { AuthClient } from '../api/auth-client.ts';
import type { WebSession } from '../api/gen/postern/auth/v1/auth_pb.ts';
import { AccessDeniedError, BadInputError, NotFoundError, PosternError } from '../../protocols/errors.ts';
import { TunnelRejectedError } from '../../protocols/tunnel/index.ts';
import { readJson, sendJson, type WebRequest, type WebResponse } from './http-json.ts';
import { checkCsrf, checkOrigin, clearedSessionCookie, sessionCookie, sessionIdOf } from './web-cookies.ts';
import type { ActiveWebSession, WebSessions } from './web-sessions.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { RateLimitedError, ServiceDialError } from './errors.ts';
import type { ServiceDialer } from './service-dialer.ts';
import type { RequestContext } from './web-routes.ts';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One endpoint: a path pattern (`:name` segments) and what it does with the session. */
interface _Endpoint {
  method: Method;
  pattern: string;
  /** Login is the one call without a session. */
  anonymous?: boolean;
  /** Served for leaf clusters too (else only for this cluster). */
  leaf?: boolean;
  handle(call: _Call): Promise<unknown>;
}

interface _Call {
  req: WebRequest;
  res: WebResponse;
  ctx: RequestContext;
  params: Record<string, string>;
  query: URLSearchParams;
  session: ActiveWebSession;
  /** auth (this cluster's) as the signed-in person. */
  auth: AuthClient;
  /** True when the path names a leaf, not this cluster. */
  isLeaf: boolean;
}

/** A refused state-changing call by a signed-in person (CSRF token or Origin). */
export interface WebRefusalAuditEvent {
  user: string;
  roles: string[];
  clientIp: string;
  method: string;
  path: string;
  reason: string;
}

export interface WebSessionRouteDeps {
  sessions: WebSessions;
  clusterName: () => string;
  loginLimiter: RateLimiter;
  /** Audits refusals the proxy makes for a known person (auth audits its own). */
  audit?: (event: WebRefusalAuditEvent) => void;
  /** Reaches leaf clusters (listing their resources); without it only this cluster is served. */
  dialer?: ServiceDialer;
}

/** One cluster in the picker. */
export interface WebCluster {
  name: string;
  local: boolean;
  status?: string;
  labels?: Record<string, string>;
}

/** The base64 PEM of the session's X.509 certificate: the `identity` the dialer forwards. */
export function sessionIdentity(session: ActiveWebSession): string {
  return Buffer.from(session.record.tlsCertificatePem).toString('base64');
}

const loginSchema = z.strictObject({
  user: z.string().min(1, 'a user name is required').max(253),
  password: z.string().min(1, 'a password is required').max(1_024),
  totp_code: z.string().max(16).default(''),
});
const createSchema = z.strictObject({ text: z.string().min(1).max(60_000), upsert: z.boolean().default(false) });
const userSchema = z.strictObject({
  name: z.string().min(1).max(253),
  roles: z.array(z.string().min(1).max(253)).min(1, 'give the user at least one role').max(64),
  logins: z.array(z.string().min(1).max(253)).max(64).default([]),
});
const tokenSchema = z.strictObject({
  roles: z.array(z.string().min(1).max(32)).min(1).max(8),
  ttl_seconds: z.number().int().min(0).max(30 * 86_400).default(0),
  labels: z.record(z.string().max(253), z.string().max(253)).default({}),
});
const kindPattern = /^[a-z_]{1,32}$/;

/** What the UI learns about its session (never the keys or certificates). */
export function sessionView(record: WebSession) {
  return {
    user: record.user,
    roles: record.roles,
    logins: record.logins,
    cluster: record.cluster,
    expires: record.expires,
    idle_timeout_seconds: Number(record.idleTimeoutSeconds),
    csrf_token: record.csrfToken,
  };
}

/** What a binary answer needs of an HTTP/1.1 or HTTP/2 response. */
interface _RawResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(data: Uint8Array): boolean;
  end(): void;
  once(event: 'drain', listener: () => void): unknown;
}

function _kind(params: Record<string, string>): string {
  const kind = params.kind ?? '';
  if (!kindPattern.test(kind)) throw new BadInputError(`resource kind "${kind.slice(0, 64)}" is not a kind name (lower case and _)`);
  return kind;
}

function _endpoints(deps: WebSessionRouteDeps): _Endpoint[] {
  return [
    {
      method: 'POST', pattern: '/v1/webapi/sessions', anonymous: true,
      async handle({ req, res, ctx }) {
        checkOrigin(req);
        // A cross-site form or no-cors fetch cannot send this type without a preflight.
        if (!/^application\/json\s*(;|$)/i.test(String(req.headers['content-type'] ?? ''))) {
          throw new PosternError('PST_UNSUPPORTED_MEDIA_TYPE', 'login: send the body as application/json');
        }
        const wait = deps.loginLimiter.take(ctx.clientIp);
        if (wait > 0) throw new RateLimitedError('login', wait);
        const body = await readJson(req, loginSchema, 'login request');
        ctx.log.user = body.user;
        const session = await deps.sessions.login({ user: body.user, password: body.password, totpCode: body.totp_code });
        const maxAge = (Date.parse(session.record.expires) - Date.now()) / 1000;
        sendJson(res, 200, sessionView(session.record), { 'set-cookie': sessionCookie(session.id, maxAge) });
        return undefined;
      },
    },
    { method: 'GET', pattern: '/v1/webapi/sessions/current', handle: async ({ session }) => sessionView(session.record) },
    {
      method: 'DELETE', pattern: '/v1/webapi/sessions/current',
      async handle({ res, session }) {
        await deps.sessions.logout(session.id);
        sendJson(res, 200, {}, { 'set-cookie': clearedSessionCookie() });
        return undefined;
      },
    },
    { method: 'GET', pattern: '/v1/webapi/clusters', handle: async ({ auth }) => ({ clusters: await reachableClusters(auth, deps.clusterName()) }) },
    {
      method: 'GET', pattern: '/v1/webapi/clusters/:cluster/resources/:kind', leaf: true,
      async handle({ auth, params, session, isLeaf }) {
        const kind = _kind(params);
        if (!isLeaf) return { items: JSON.parse((await auth.getResources({ kind })).resourcesJson) as unknown[] };
        try {
          return { items: await deps.dialer!.list(params.cluster, kind, sessionIdentity(session)) };
        } catch (error) {
          throw dialRefusal(error);
        }
      },
    },
    {
      method: 'POST', pattern: '/v1/webapi/clusters/:cluster/resources',
      async handle({ req, auth }) {
        const body = await readJson(req, createSchema, 'resources');
        return { created: (await auth.createResources({ text: body.text, upsert: body.upsert, source: 'web UI' })).created };
      },
    },
    {
      method: 'DELETE', pattern: '/v1/webapi/clusters/:cluster/resources/:kind/:name',
      async handle({ auth, params }) {
        await auth.deleteResource({ kind: _kind(params), name: params.name ?? '' });
        return {};
      },
    },
    {
      method: 'POST', pattern: '/v1/webapi/clusters/:cluster/users',
      async handle({ req, auth }) {
        const body = await readJson(req, userSchema, 'new user');
        const done = await auth.createUser({ name: body.name, roles: body.roles, logins: body.logins });
        return { signup_token: done.signupToken, expires: done.expires };
      },
    },
    {
      method: 'POST', pattern: '/v1/webapi/clusters/:cluster/users/:name/reset',
      async handle({ auth, params }) {
        const done = await auth.resetUser({ name: params.name ?? '' });
        return { reset_token: done.resetToken, expires: done.expires };
      },
    },
    {
      method: 'POST', pattern: '/v1/webapi/clusters/:cluster/tokens',
      async handle({ req, auth }) {
        const body = await readJson(req, tokenSchema, 'new token');
        const done = await auth.addToken({ roles: body.roles, ttlSeconds: BigInt(body.ttl_seconds), labels: body.labels, singleUse: false });
        return { token: done.token, id: done.id, expires: done.expires };
      },
    },
    {
      // SSH and desktop recordings: auth lists the person's own, or everyone's with a role allowing list on session_recording.
      method: 'GET', pattern: '/v1/webapi/clusters/:cluster/recordings', leaf: true,
      async handle({ auth, query, isLeaf, params, session }) {
        const limit = Number(query.get('limit') ?? 200);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) throw new BadInputError('recordings limit: a whole number from 1 to 1000');
        // In a leaf: the person's own sessions there, which the leaf serves after checking their certificate.
        if (isLeaf) return { recordings: (JSON.parse((await _readAll(await _leafStream(deps, params.cluster!, 'recordings:list', session))).toString('utf8')) as unknown[]).slice(0, limit) };
        const found = await auth.listRecordings({ user: query.get('user') ?? '', limit });
        return { recordings: found.recordingsJson.map((line) => JSON.parse(line) as unknown) };
      },
    },
    {
      // The recording's bytes (asciicast v2, or PSTDREC1 for desktops), streamed from auth in its pieces.
      method: 'GET', pattern: '/v1/webapi/clusters/:cluster/recordings/:id', leaf: true,
      async handle({ auth, params, res: response, isLeaf, session }) {
        const res = response as unknown as _RawResponse;
        const sessionId = params.id ?? '';
        if (isLeaf) {
          const stream = await _leafStream(deps, params.cluster!, `recording:${sessionId}`, session);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
          for await (const chunk of stream) {
            if (!res.write(chunk as Buffer)) await new Promise<void>((resolve) => res.once('drain', () => resolve()));
          }
          res.end();
          return undefined;
        }
        let chunk = await auth.getRecording({ sessionId, offset: 0n }, { deadlineMs: 30_000 });
        const size = Number(chunk.size);
        const kind = (JSON.parse(chunk.metadataJson) as { kind?: string }).kind ?? '';
        res.writeHead(200, {
          'content-type': kind === 'desktop' ? 'application/octet-stream' : 'application/x-asciicast',
          'content-length': String(size),
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        });
        let offset = 0;
        for (;;) {
          offset += chunk.data.length;
          const more = res.write(chunk.data);
          if (offset >= size || chunk.data.length === 0) break;
          if (!more) await new Promise<void>((resolve) => res.once('drain', () => resolve()));
          chunk = await auth.getRecording({ sessionId, offset: BigInt(offset) }, { deadlineMs: 30_000 });
        }
        res.end();
        return undefined;
      },
    },
    {
      method: 'GET', pattern: '/v1/webapi/clusters/:cluster/audit',
      async handle({ auth, query }) {
        const limit = Number(query.get('limit') ?? 200);
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new BadInputError('audit limit: a whole number from 1 to 10000');
        const order = query.get('order') === 'asc' ? 'asc' : 'desc';
        const found = await auth.searchAudit({ from: query.get('from') ?? '', to: query.get('to') ?? '', types: query.getAll('type'), user: query.get('user') ?? '', limit, order });
        return { events: found.eventsJson.map((line) => JSON.parse(line) as unknown) };
      },
    },
  ];
}

/** A stream to a leaf proxy's service for the person (`recordings:list`, `recording:ID`). */
async function _leafStream(deps: WebSessionRouteDeps, cluster: string, service: string, session: ActiveWebSession): Promise<AsyncIterable<unknown>> {
  try {
    // No host: the leaf proxy serves these itself.
    return await deps.dialer!.dial({ cluster, host: '-', service, identity: sessionIdentity(session) });
  } catch (error) {
    throw dialRefusal(error);
  }
}

/** All of a stream, up to 16 MiB. */
async function _readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024 * 1024) throw new PosternError('PST_UNAVAILABLE', 'the leaf sent more than 16 MiB of recording list');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A ServiceDialError as the web API answers it: 403 refused, 404 unknown, 503 unreachable. */
export function dialRefusal(error: unknown): unknown {
  if (!(error instanceof ServiceDialError)) return error;
  const refused = error.cause instanceof TunnelRejectedError && (error.cause.status === 401 || error.cause.status === 403);
  if (error.reason === 'cluster-denied' || refused) return new AccessDeniedError(error.message);
  if (error.reason === 'unknown-cluster' || error.reason === 'unknown-host') return new NotFoundError(error.message);
  return new PosternError('PST_UNAVAILABLE', error.message);
}

/** This cluster and the leaves the person may reach (auth lists only those their roles' cluster_labels match). */
export async function reachableClusters(auth: AuthClient, local: string): Promise<WebCluster[]> {
  const leaves = JSON.parse((await auth.getResources({ kind: 'remote_cluster', name: '' }, { deadlineMs: 5_000 })).resourcesJson) as Array<{ metadata: { name: string; labels?: Record<string, string> }; status?: { state?: string } }>;
  return [
    { name: local, local: true, status: 'online' },
    ...leaves.map((l) => ({ name: l.metadata.name, local: false, status: l.status?.state ?? 'offline', labels: l.metadata.labels ?? {} })),
  ];
}

/** Matches `pattern` (with `:name` segments) against a path; the decoded parameters, or undefined. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const have = path.split('/');
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const h = have[i]!;
    if (w.startsWith(':')) {
      if (h === '') return undefined;
      try {
        params[w.slice(1)] = decodeURIComponent(h);
      } catch {
        throw new BadInputError(`path segment "${h.slice(0, 64)}" is not valid percent-encoding`);
      }
    } else if (w !== h) return undefined;
  }
  return params;
}

/** The web UI API: `handle` serves any `/v1/webapi/` request. */
export class WebSessionRoutes {
  readonly #deps: WebSessionRouteDeps;
  readonly #endpoints: _Endpoint[];

  constructor(deps: WebSessionRouteDeps) {
    this.#deps = deps;
    this.#endpoints = _endpoints(deps);
  }

  /** The signed-in session of a request, for the cluster named (refuses clusters the person cannot reach). */
  async sessionFor(req: WebRequest, cluster?: string): Promise<ActiveWebSession> {
    const session = await this.#deps.sessions.get(sessionIdOf(req));
    if (cluster !== undefined) await this.checkCluster(session, cluster);
    return session;
  }

  /** True when `cluster` is this proxy's own. */
  isLocal(cluster: string): boolean {
    return cluster === this.#deps.clusterName();
  }

  /** Refuses clusters that are neither this one nor a leaf the person's roles reach. */
  async checkCluster(session: ActiveWebSession, cluster: string): Promise<void> {
    if (this.isLocal(cluster)) return;
    const name = cluster.slice(0, 253);
    if (!this.#deps.dialer) throw new NotFoundError(`cluster "${name}" is not known here; this proxy serves cluster "${this.#deps.clusterName()}"`);
    const reachable = await reachableClusters(session.auth, this.#deps.clusterName());
    if (!reachable.some((c) => c.name === cluster)) {
      throw new NotFoundError(`cluster "${name}" is not reachable for you: it is neither "${this.#deps.clusterName()}" nor a leaf your roles reach (cluster_labels); pick one in the cluster list`);
    }
  }

  async handle(req: WebRequest, res: WebResponse, ctx: RequestContext, path: string, query: URLSearchParams): Promise<void> {
    let allowed: Method[] = [];
    for (const endpoint of this.#endpoints) {
      const params = matchPath(endpoint.pattern, path);
      if (!params) continue;
      allowed.push(endpoint.method);
      if (endpoint.method !== req.method) continue;
      const call = { req, res, ctx, params, query } as _Call;
      if (!endpoint.anonymous) {
        call.session = await this.sessionFor(req, params.cluster);
        call.auth = call.session.auth;
        call.isLeaf = params.cluster !== undefined && !this.isLocal(params.cluster);
        if (call.isLeaf && !endpoint.leaf) {
          throw new BadInputError(`cluster "${params.cluster}" is a leaf: from here the web UI lists its resources and opens terminals and desktops there; its ${path.split('/')[5] ?? 'pages'} are served by its own proxy`);
        }
        ctx.log.user = call.session.record.user;
        if (endpoint.method !== 'GET') {
          try {
            checkCsrf(req, call.session.record.csrfToken);
          } catch (error) {
            const { user, roles } = call.session.record;
            this.#deps.audit?.({ user, roles, clientIp: ctx.clientIp, method: String(req.method), path: path.slice(0, 256), reason: (error as Error).message });
            throw error;
          }
        }
      }
      const body = await endpoint.handle(call);
      if (body !== undefined) sendJson(res, 200, body);
      return;
    }
    allowed = [...new Set(allowed)];
    if (allowed.length > 0) throw new PosternError('PST_METHOD_NOT_ALLOWED', `${path.slice(0, 128)} takes ${allowed.join(' or ')}, not ${req.method}`);
    throw new NotFoundError(`no such endpoint ${req.method} ${path.slice(0, 128)}`);
  }
}
