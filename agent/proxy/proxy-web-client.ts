/**
 * The agent's client for the proxy's web API: JSON over HTTPS (ALPN http/1.1) to one
 * proxy address, trusting only the cluster's host CA and only a proxy certificate.
 * Bodies are bounded both ways; a refusal comes back as the proxy's own error code.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { ProxyApiError, ProxyIdentityError, ProxyResponseError, ProxyUnreachableError } from './errors.ts';
import { proxyTlsOptions, type ProxyTrust } from './proxy-peer.ts';

/** Options for {@link proxyRequest}. */
export interface ProxyRequestOptions {
  method?: 'GET' | 'POST';
  /** Sent as JSON. */
  body?: unknown;
  trust: ProxyTrust;
  /** For the whole request. Default 10 s. */
  timeoutMs?: number;
  /** Largest response body accepted. Default 1 MiB. */
  maxBytes?: number;
}

const defaultTimeoutMs = 10_000;
const defaultMaxBytes = 1024 * 1024;
/** OpenSSL verification codes and Node's own certificate errors: the peer is not who it must be. */
const certificateErrorCode = /CERT|SIGNATURE|ISSUER|ERR_TLS_CERT_ALTNAME/;

/** Sends one JSON request to the proxy at `address` ("host:port") and resolves with its parsed JSON answer. */
export function proxyRequest(address: string, path: string, options: ProxyRequestOptions): Promise<unknown> {
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const maxBytes = options.maxBytes ?? defaultMaxBytes;
  return new Promise((resolve, reject) => {
    const request = https.request({
      ...proxyTlsOptions(address, options.trust, ['http/1.1']),
      agent: false,
      method: options.method ?? 'GET',
      path,
      headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
    });
    const timer = setTimeout(() => request.destroy(new ProxyUnreachableError(address, `no answer within ${options.timeoutMs ?? defaultTimeoutMs} ms`)), options.timeoutMs ?? defaultTimeoutMs);
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(_classify(address, error));
    });
    request.once('response', (response) => {
      _readBody(response, maxBytes).then(
        (text) => {
          clearTimeout(timer);
          try {
            resolve(_answer(address, path, response.statusCode ?? 0, text));
          } catch (error) {
            reject(error);
          }
        },
        (error: unknown) => {
          clearTimeout(timer);
          request.destroy();
          reject(error instanceof ProxyResponseError ? error : _classify(address, error as Error));
        },
      );
    });
    request.end(payload);
  });
}

function _readBody(response: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        response.destroy();
        reject(new ProxyResponseError(`the proxy's answer is larger than ${maxBytes} bytes; is the address a Postern proxy?`));
        return;
      }
      chunks.push(chunk);
    });
    response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.once('error', reject);
  });
}

function _answer(address: string, path: string, status: number, text: string): unknown {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProxyResponseError(`the proxy at ${address} answered ${path} with HTTP ${status} and a body that is not JSON; is the address a Postern proxy?`);
  }
  if (status >= 200 && status < 300) return body;
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (typeof error?.code === 'string' && typeof error.message === 'string') throw new ProxyApiError(error.code, error.message, status);
  throw new ProxyResponseError(`the proxy at ${address} answered ${path} with HTTP ${status} and no Postern error`);
}

function _classify(address: string, error: Error & { code?: string }): Error {
  if (error instanceof ProxyUnreachableError || error instanceof ProxyIdentityError) return error;
  // Our checkServerIdentity's error comes back as the request's error.
  if (error.cause instanceof ProxyIdentityError) return error.cause;
  if (error.code && certificateErrorCode.test(error.code)) {
    return new ProxyIdentityError(`the proxy at ${address} presented a certificate this cluster's host CA does not vouch for (${error.code}: ${error.message})`, { cause: error });
  }
  return new ProxyUnreachableError(address, error.message || error.code || 'connection failed', { cause: error });
}
