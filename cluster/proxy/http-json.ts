/**
 * JSON in and out for the web API, over HTTP/1.1 or HTTP/2 (Node's compatibility API
 * gives both the same request/response shape). Errors always look like
 * `{ "error": { "code": "PST_...", "message": "..." } }` with a 4xx/5xx status.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import type { z } from 'zod';
import { BadInputError, PosternError } from '../../protocols/errors.ts';
import { parseWith } from '../common/validation.ts';
import { RateLimitedError, RequestTooLargeError } from './errors.ts';

export type WebRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type WebResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Largest request body the web API reads. */
export const maxBodyBytes = 64 * 1024;

/** HTTP status for a PosternError code; codes not listed are client errors (400). */
const statusByCode: Record<string, number> = {
  PST_BAD_INPUT: 400,
  PST_PASSWORD_POLICY: 400,
  PST_UNAUTHENTICATED: 401,
  PST_LOGIN_FAILED: 401,
  PST_ACCOUNT_LOCKED: 401,
  PST_TOKEN_INVALID: 401,
  PST_TOKEN_EXPIRED: 401,
  PST_TOKEN_USED: 401,
  PST_RESET_TOKEN_INVALID: 401,
  PST_TOTP_INVALID: 401,
  PST_ACCESS_DENIED: 403,
  PST_TOKEN_ROLE: 403,
  PST_NOT_FOUND: 404,
  PST_METHOD_NOT_ALLOWED: 405,
  PST_ALREADY_EXISTS: 409,
  PST_COMPARE_FAILED: 409,
  PST_TOKEN_BUSY: 409,
  PST_USER_BUSY: 409,
  PST_REQUEST_TOO_LARGE: 413,
  PST_UNSUPPORTED_MEDIA_TYPE: 415,
  PST_RATE_LIMITED: 429,
  PST_INTERNAL: 502,
  PST_RPC: 502,
  PST_UNAVAILABLE: 503,
};

/** The status an error is answered with. */
export function statusOf(error: unknown): number {
  if (!(error instanceof PosternError)) return 500;
  return statusByCode[error.code] ?? 400;
}

/** Sends `body` as JSON with `status`. */
export function sendJson(res: WebResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  (res as http.ServerResponse).writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** Answers with the error body; unexpected errors say only that they were internal. */
export function sendError(res: WebResponse, error: unknown): void {
  const status = statusOf(error);
  const body = error instanceof PosternError
    ? { error: { code: error.code, message: error.message } }
    : { error: { code: 'PST_INTERNAL', message: 'internal error in the proxy; see its log' } };
  const headers: Record<string, string> = error instanceof RateLimitedError ? { 'retry-after': String(error.retryAfterSeconds) } : {};
  if (res.headersSent) {
    res.destroy?.();
    return;
  }
  sendJson(res, status, body, headers);
}

/** Reads the body up to {@link maxBodyBytes}; RequestTooLargeError beyond, without reading the rest. */
export async function readBody(req: WebRequest, limit = maxBodyBytes): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new RequestTooLargeError(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new RequestTooLargeError(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON body and validates it; BadInputError names the field and the expectation. */
export async function readJson<S extends z.ZodType>(req: WebRequest, schema: S, what: string): Promise<z.output<S>> {
  const type = String(req.headers['content-type'] ?? '');
  if (type !== '' && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new PosternError('PST_UNSUPPORTED_MEDIA_TYPE', `${what}: send the body as application/json, not ${type.slice(0, 64)}`);
  }
  const body = await readBody(req);
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadInputError(`${what}: the body is not valid JSON`);
  }
  return parseWith(schema, raw, what);
}
