/**
 * The web API's endpoints: discovery for anyone, and the three calls a person or host
 * makes before it has a certificate (join, login, sign-up), each validated here and
 * relayed to the auth service with the proxy's own identity.
 */
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { PosternError } from '../../protocols/errors.ts';
import type { AuthClient } from '../api/auth-client.ts';
import type { Certificates } from '../api/gen/postern/auth/v1/auth_pb.ts';
import { RateLimitedError } from './errors.ts';
import { readJson, sendJson, type WebRequest, type WebResponse } from './http-json.ts';
import type { RateLimiter } from './rate-limiter.ts';

/** What `GET /v1/discovery` answers. */
export interface Discovery {
  cluster_name: string;
  version: string;
  proxies: Array<{ host_id: string; public_addr: string }>;
  ca_pins: string[];
  /** HTTP apps are at APP.<app_domain> on the proxy's port; absent when apps are off. */
  app_domain?: string;
}

/** Who is asking, as far as the proxy can tell. */
export interface RequestContext {
  clientIp: string;
  /** Fields for the log line of this request (never secrets). */
  log: Record<string, unknown>;
}

/** One endpoint. */
export interface WebRoute {
  method: 'GET' | 'POST';
  handle(req: WebRequest, res: WebResponse, ctx: RequestContext): Promise<void>;
}

/** What the endpoints need. */
export interface WebRouteDeps {
  auth: () => AuthClient;
  discovery: () => Discovery;
  limits: { join: RateLimiter; login: RateLimiter; signup: RateLimiter };
  /** The JWKS (JSON text) app upstreams verify assertions with. */
  jwks?: () => Promise<string>;
  /** Resources of a kind in this cluster or a leaf, for the holder of a user certificate (DER); see service-dialer.ts. */
  listResources?: (certificate: Buffer | undefined, cluster: string, kind: string) => Promise<unknown[]>;
}

const pem = z.string().min(1).max(16_384);
const name = z.string().max(253);

const joinSchema = z.strictObject({
  token: z.string().min(1, 'a join token is required').max(1_024),
  roles: z.array(z.string().max(32)).min(1).max(8),
  node_name: name.default(''),
  ssh_public_key: z.string().max(16_384).default(''),
  tls_public_key: pem,
  addresses: z.array(name).max(64).default([]),
});

const loginSchema = z.strictObject({
  user: z.string().min(1).max(253),
  password: z.string().min(1).max(1_024),
  totp_code: z.string().max(16).default(''),
  ssh_public_key: z.string().min(1).max(16_384),
  tls_public_key: pem,
  ttl_seconds: z.number().int().min(0).max(366 * 86_400).default(0),
});

const trustSchema = z.strictObject({
  token: z.string().min(1, 'a trusted_cluster token is required').max(1_024),
  leaf_cluster: name.min(1),
  host_ca_tls_pems: z.array(pem).min(1).max(8),
  host_ca_ssh_keys: z.array(z.string().min(1).max(8_192)).min(1).max(8),
});

const listSchema = z.strictObject({
  cluster: name.default(''),
  kind: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'expected a resource kind such as node'),
});

const signupSchema = z.strictObject({
  token: z.string().min(1).max(1_024),
  password: z.string().min(1).max(1_024),
  enroll_totp: z.boolean().default(false),
});

/** The end user's `ip:port`, which auth records in the audit events of relayed calls. */
function _clientAddr(req: WebRequest): string {
  const ip = req.socket?.remoteAddress ?? 'unknown';
  return `${ip.includes(':') ? `[${ip}]` : ip}:${req.socket?.remotePort ?? 0}`;
}

function _limit(limiter: RateLimiter, what: string, ctx: RequestContext): void {
  const wait = limiter.take(ctx.clientIp);
  if (wait > 0) throw new RateLimitedError(what, wait);
}

function _certificates(certificates: Certificates | undefined) {
  return {
    ssh_certificate: certificates?.sshCertificate ?? '',
    tls_certificate_pem: certificates?.tlsCertificatePem ?? '',
    tls_ca_pems: certificates?.tlsCaPems ?? [],
    ssh_host_ca_keys: certificates?.sshHostCaKeys ?? [],
    expires: certificates?.expires ?? '',
  };
}

/** The endpoints by path. */
export function webRoutes(deps: WebRouteDeps): Record<string, WebRoute> {
  return {
    '/.well-known/jwks.json': {
      method: 'GET',
      async handle(_req, res) {
        sendJson(res, 200, JSON.parse(deps.jwks ? await deps.jwks() : '{"keys":[]}') as unknown, { 'cache-control': 'max-age=60' });
      },
    },
    '/v1/discovery': {
      method: 'GET',
      handle: async (_req, res) => sendJson(res, 200, deps.discovery()),
    },
    '/v1/join': {
      method: 'POST',
      async handle(req, res, ctx) {
        _limit(deps.limits.join, 'join', ctx);
        const body = await readJson(req, joinSchema, 'join request');
        Object.assign(ctx.log, { nodeName: body.node_name, roles: body.roles });
        const joined = await deps.auth().join({
          token: body.token,
          roles: body.roles,
          nodeName: body.node_name,
          sshPublicKey: body.ssh_public_key,
          tlsPublicKey: body.tls_public_key,
          addresses: body.addresses,
        }, { clientAddr: _clientAddr(req) });
        ctx.log.hostId = joined.hostId;
        sendJson(res, 200, { host_id: joined.hostId, token_labels: joined.tokenLabels, certificates: _certificates(joined.certificates) });
      },
    },
    // A leaf cluster's auth asks this (root) cluster to trust it: token and leaf host CA in, root CAs out.
    '/v1/trusted-clusters/validate': {
      method: 'POST',
      async handle(req, res, ctx) {
        _limit(deps.limits.join, 'trusted cluster join', ctx);
        const body = await readJson(req, trustSchema, 'trusted cluster request');
        ctx.log.leafCluster = body.leaf_cluster;
        const answer = await deps.auth().validateTrustedCluster({
          token: body.token,
          leafCluster: body.leaf_cluster,
          hostCaTlsPems: body.host_ca_tls_pems,
          hostCaSshKeys: body.host_ca_ssh_keys,
        });
        sendJson(res, 200, {
          root_cluster: answer.rootCluster,
          user_ca: { tls_cert_pems: answer.userCaTlsPems, ssh_public_keys: answer.userCaSshKeys },
          host_ca: { tls_cert_pems: answer.hostCaTlsPems, ssh_public_keys: answer.hostCaSshKeys },
        });
      },
    },
    // `psh ls --cluster leaf`: the caller's client certificate names who asks; the leaf decides what it shows.
    '/v1/resources': {
      method: 'POST',
      async handle(req, res, ctx) {
        const body = await readJson(req, listSchema, 'resource list request');
        Object.assign(ctx.log, { cluster: body.cluster, kind: body.kind });
        if (!deps.listResources) throw new PosternError('PST_BAD_INPUT', 'this proxy does not list resources');
        const socket = req.socket as TLSSocket;
        const raw = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate()?.raw : undefined;
        sendJson(res, 200, { resources: await deps.listResources(raw, body.cluster, body.kind) });
      },
    },
    '/v1/login': {
      method: 'POST',
      async handle(req, res, ctx) {
        _limit(deps.limits.login, 'login', ctx);
        const body = await readJson(req, loginSchema, 'login request');
        ctx.log.user = body.user;
        const issued = await deps.auth().login({
          user: body.user,
          password: body.password,
          totpCode: body.totp_code,
          sshPublicKey: body.ssh_public_key,
          tlsPublicKey: body.tls_public_key,
          ttlSeconds: BigInt(body.ttl_seconds),
        }, { clientAddr: _clientAddr(req) });
        // Flat: the certificate fields beside who logged in (psh reads it so).
        sendJson(res, 200, { ..._certificates(issued), username: issued.username, roles: issued.roles, logins: issued.logins });
      },
    },
    '/v1/signup': {
      method: 'POST',
      async handle(req, res, ctx) {
        _limit(deps.limits.signup, 'sign-up', ctx);
        const body = await readJson(req, signupSchema, 'sign-up request');
        const done = await deps.auth().completeSignup({ token: body.token, password: body.password, enrollTotp: body.enroll_totp }, { clientAddr: _clientAddr(req) });
        ctx.log.user = done.username;
        sendJson(res, 200, { username: done.username, ...(done.totpUri ? { totp_uri: done.totpUri } : {}) });
      },
    },
  };
}
