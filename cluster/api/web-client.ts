/**
 * The proxy's web API seen from a client (psh, pbot, agents joining): JSON over HTTPS,
 * trusting exactly the cluster CA the caller pinned or stored. Errors come back as
 * PosternErrors with the server's code and message.
 */
import https from 'node:https';
import { PosternError } from '../../protocols/errors.ts';

export interface ProxyAddress {
  host: string;
  port: number;
}

/** Parses `host:port` (port default 3080). */
export function parseProxyAddress(text: string): ProxyAddress {
  const match = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text.trim());
  if (!match?.[1]) throw new PosternError('PST_BAD_INPUT', `cannot parse proxy address "${text}": expected host:port, e.g. proxy.example.com:3080`);
  return { host: match[1], port: match[2] ? Number(match[2]) : 3080 };
}

/** Calls the web API; resolves with the parsed JSON body or throws the server's error. */
export function callWebApi<T>(proxy: ProxyAddress, method: 'GET' | 'POST', path: string, options: { caPems: string[]; body?: unknown; timeoutMs?: number; clientCert?: { keyPem: string; certPem: string } }): Promise<T> {
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions & { ALPNProtocols: string[] } = {
        host: proxy.host,
        port: proxy.port,
        method,
        path,
        ca: options.caPems,
        ...(options.clientCert ? { key: options.clientCert.keyPem, cert: options.clientCert.certPem } : {}),
        // Proxy certificates name localhost and the public address; an IP literal is checked against IP SANs.
        servername: /^[\d.]+$|:/.test(proxy.host) ? undefined : proxy.host,
        headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {},
        timeout: options.timeoutMs ?? 30_000,
        ALPNProtocols: ['http/1.1'],
      };
    const request = https.request(requestOptions, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : {};
          } catch {
            reject(new PosternError('PST_PROXY_RESPONSE', `the proxy at ${proxy.host}:${proxy.port} answered ${response.statusCode} with something that is not JSON`));
            return;
          }
          if ((response.statusCode ?? 500) >= 400) {
            const error = (body as { error?: { code?: string; message?: string } }).error;
            reject(new PosternError(error?.code ?? 'PST_PROXY_ERROR', error?.message ?? `the proxy answered ${response.statusCode}`));
          } else {
            resolve(body as T);
          }
        });
      });
    request.on('timeout', () => request.destroy(new PosternError('PST_PROXY_TIMEOUT', `the proxy at ${proxy.host}:${proxy.port} did not answer ${path} in time`)));
    request.on('error', (error) =>
      reject(error instanceof PosternError ? error : new PosternError('PST_PROXY_UNREACHABLE', `cannot reach the proxy at ${proxy.host}:${proxy.port}: ${error.message}`)),
    );
    request.end(payload);
  });
}

/** The certificates the web API returns from /v1/login and /v1/join. */
export interface WebCertificates {
  ssh_certificate: string;
  tls_certificate_pem: string;
  tls_ca_pems: string[];
  ssh_host_ca_keys: string[];
  expires: string;
}
