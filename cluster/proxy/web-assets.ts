/**
 * The web UI's files, served by the proxy at `/`: from the single binary's SEA assets
 * (`web/manifest.json` lists them; installers/build.ts embeds web/dist) or, from
 * source, from web/dist (npm run build:web). Hashed files under /assets are cached
 * for a year; index.html (and every app path, which the UI routes itself) is
 * `no-cache`. Every answer carries a strict Content-Security-Policy and
 * X-Frame-Options DENY.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import sea from 'node:sea';
import type http from 'node:http';
import type { WebRequest, WebResponse } from './http-json.ts';

/** The SEA asset that lists the UI's files (relative paths); each is the asset `web/<path>`. */
export const webManifestAsset = 'web/manifest.json';

/**
 * Scripts and styles only from this origin, no framing, no plugins, API calls and
 * websockets to this origin. Styles allow 'unsafe-inline' because xterm.js sets
 * styles from script (a `<style>` element for its colours); scripts never do.
 */
export const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every web UI answer. */
export const securityHeaders: Record<string, string> = {
  'content-security-policy': contentSecurityPolicy,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
};

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface _File {
  body: Buffer;
  type: string;
  etag: string;
  /** The body gzipped once at load, for text worth it (the script is ~420 KB, ~115 KB gzipped). */
  gzip?: Buffer;
}

/** Where the files come from: the binary, or a directory. */
export type WebAssetSource = { kind: 'sea' } | { kind: 'dir'; dir: string };

/** The default source: the binary's assets when running as one, else web/dist beside the source tree. */
export function defaultWebAssetSource(): WebAssetSource {
  if (sea.isSea()) return { kind: 'sea' };
  return { kind: 'dir', dir: path.resolve(import.meta.dirname, '..', '..', 'web', 'dist') };
}

/** The web UI's files in memory, loaded once (and retried while missing, so a later build is picked up). */
export class WebAssets {
  readonly #source: WebAssetSource;
  #files: Map<string, _File> | undefined;

  constructor(source: WebAssetSource = defaultWebAssetSource()) {
    this.#source = source;
  }

  /** True when the UI's index.html is available. */
  get available(): boolean {
    return this.#load().has('/index.html');
  }

  /** Answers a GET or HEAD for a UI path. */
  serve(req: WebRequest, res: WebResponse, urlPath: string): void {
    const files = this.#load();
    const index = files.get('/index.html');
    if (!index) {
      _send(res, 503, { body: Buffer.from('The web UI is not built into this proxy. From source, run: npm run build:web\n'), type: 'text/plain; charset=utf-8', etag: '' }, 'no-store', req.method === 'HEAD');
      return;
    }
    const exact = urlPath === '/' ? undefined : files.get(urlPath);
    if (exact) {
      _send(res, 200, exact, urlPath.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache', req.method === 'HEAD', req.headers['if-none-match'], req.headers['accept-encoding']);
      return;
    }
    if (urlPath.startsWith('/assets/')) {
      // A stale page asking for an asset of an older build: say so, do not send the page.
      _send(res, 404, { body: Buffer.from('no such asset; reload the page\n'), type: 'text/plain; charset=utf-8', etag: '' }, 'no-store', req.method === 'HEAD');
      return;
    }
    _send(res, 200, index, 'no-cache', req.method === 'HEAD', req.headers['if-none-match'], req.headers['accept-encoding']);
  }

  #load(): Map<string, _File> {
    if (this.#files?.has('/index.html')) return this.#files;
    this.#files = this.#source.kind === 'sea' ? _fromSea() : _fromDir(this.#source.dir);
    return this.#files;
  }
}

function _file(name: string, body: Buffer): _File {
  const type = types[path.extname(name)] ?? 'application/octet-stream';
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, ...(compressible ? { gzip: gzipSync(body, { level: 9 }) } : {}) };
}

function _fromSea(): Map<string, _File> {
  const files = new Map<string, _File>();
  let names: string[];
  try {
    names = JSON.parse(sea.getAsset(webManifestAsset, 'utf8')) as string[];
  } catch {
    return files; // a binary built without the UI
  }
  for (const name of names) files.set(`/${name}`, _file(name, Buffer.from(sea.getAsset(`web/${name}`))));
  return files;
}

function _fromDir(dir: string): Map<string, _File> {
  const files = new Map<string, _File>();
  const walk = (at: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) files.set(`/${path.relative(dir, full).split(path.sep).join('/')}`, _file(entry.name, fs.readFileSync(full)));
    }
  };
  walk(dir);
  return files;
}

function _send(res: WebResponse, status: number, file: _File, cacheControl: string, head: boolean, ifNoneMatch?: string | string[], acceptEncoding?: string | string[]): void {
  const headers: Record<string, string> = { ...securityHeaders, 'content-type': file.type, 'cache-control': cacheControl, ...(file.etag ? { etag: file.etag } : {}), ...(file.gzip ? { vary: 'accept-encoding' } : {}) };
  if (file.etag && ifNoneMatch === file.etag) {
    (res as http.ServerResponse).writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = file.gzip && /\bgzip\b/.test(String(acceptEncoding ?? '')) ? file.gzip : undefined;
  const body = gzip ?? file.body;
  (res as http.ServerResponse).writeHead(status, { ...headers, ...(gzip ? { 'content-encoding': 'gzip' } : {}), 'content-length': String(body.length) });
  if (head) res.end();
  else res.end(body);
}
