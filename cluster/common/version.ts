/** Build facts `postern version` prints; the packaged binary's build replaces the defaults. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface VersionInfo {
  version: string;
  commit: string;
  node: string;
  built: string;
}

declare const __POSTERN_BUILD__: VersionInfo | undefined;

/** The running program's version; from the build stamp in a packaged binary, from package.json in development. */
export function versionInfo(): VersionInfo {
  if (typeof __POSTERN_BUILD__ !== 'undefined') return { ...__POSTERN_BUILD__, node: process.version };
  const packageJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return { version: packageJson.version, commit: 'development', node: process.version, built: 'from source' };
}
