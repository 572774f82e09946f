/**
 * Loads a native addon (node-pty's `pty.node`) in the single binary. The build
 * embeds the `.node` file as a SEA asset; at run time it is written once to a
 * private cache directory under a content-hash name and loaded with
 * `process.dlopen` (a shared object must be a file to be loaded). Outside a
 * single binary (the plain bundle run by `node`), the addon is loaded from the
 * path it had when the bundle was built.
 *
 * Cache directory: `$POSTERN_CACHE_DIR`, else `$CACHE_DIRECTORY` (what systemd's
 * `CacheDirectory=` sets; the first one when it lists several), else
 * `$XDG_CACHE_HOME/postern`, else `/tmp/postern-<uid>`. It must be on an
 * exec-capable file system.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import sea from 'node:sea';

/** Set by installers/build.ts: where each addon lay when the bundle was built. */
declare const __POSTERN_NATIVE_PATHS__: Record<string, string> | undefined;

const loaded = new Map<string, unknown>();

/** The `exports` of the native addon `name` (`pty` for `pty.node`). */
export function loadNative(name: string): unknown {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached;
  const exports = sea.isSea() ? loadFromAsset(name) : loadFromBuildPath(name);
  loaded.set(name, exports);
  return exports;
}

function loadFromAsset(name: string): unknown {
  const bytes = new Uint8Array(sea.getRawAsset(`${name}.node`));
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dir = cacheDir();
  const file = path.join(dir, `${name}-${hash}.node`);
  if (!hasContent(file, bytes)) {
    const temporary = path.join(dir, `.${name}-${hash}.${process.pid}.tmp`);
    fs.rmSync(temporary, { force: true });
    fs.writeFileSync(temporary, bytes, { mode: 0o500, flag: 'wx' });
    fs.renameSync(temporary, file);
  }
  const module = { exports: {} as unknown };
  try {
    process.dlopen(module, file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`loading ${file} failed (${reason}); is ${dir} on a noexec file system? Set POSTERN_CACHE_DIR to an exec-capable directory`, { cause: error });
  }
  return module.exports;
}

function loadFromBuildPath(name: string): unknown {
  const where = typeof __POSTERN_NATIVE_PATHS__ !== 'undefined' ? __POSTERN_NATIVE_PATHS__[name] : undefined;
  if (!where) throw new Error(`native module ${name}.node: no SEA asset and no build path`);
  return createRequire(where)(where);
}

function hasContent(file: string, bytes: Uint8Array): boolean {
  try {
    return Buffer.from(bytes).equals(fs.readFileSync(file));
  } catch {
    return false;
  }
}

/** The private cache directory, created 0700; refuses one another user owns or others can write. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  const dir = env.POSTERN_CACHE_DIR
    || env.CACHE_DIRECTORY?.split(':')[0]
    || (env.XDG_CACHE_HOME ? path.join(env.XDG_CACHE_HOME, 'postern') : path.join('/tmp', `postern-${uid}`));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = fs.lstatSync(dir);
  if (!stat.isDirectory()) throw new Error(`cache directory ${dir} is not a directory`);
  if (stat.uid !== uid) throw new Error(`cache directory ${dir} belongs to uid ${stat.uid}, not ${uid}`);
  if ((stat.mode & 0o022) !== 0) throw new Error(`cache directory ${dir} is writable by others (mode ${(stat.mode & 0o777).toString(8)})`);
  return dir;
}
