/**
 * `npm run build:web`: the web UI (web/) built by Vite into web/dist, which the
 * proxy serves and the single binary embeds. With `--if-stale` (pretest, prestart,
 * the binary build) it does nothing when web/dist is newer than every source file,
 * so a test run pays for the build only after the UI changed.
 *
 *   node installers/build-web.ts [--if-stale]
 */
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
export const webDir = path.join(root, 'web');
export const webDist = path.join(webDir, 'dist');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** True when web/dist/index.html is missing or older than a file under web/ (or package-lock.json). */
export function webBuildIsStale(): boolean {
  const index = path.join(webDist, 'index.html');
  if (!fs.existsSync(index)) return true;
  const built = fs.statSync(index).mtimeMs;
  return newestSource(webDir) > built || fs.statSync(path.join(root, 'package-lock.json')).mtimeMs > built;
}

/** Builds web/dist with Vite (skipped when `ifStale` and nothing changed). */
export async function buildWeb(options: { ifStale?: boolean; verbose?: boolean } = {}): Promise<void> {
  if (options.ifStale && !webBuildIsStale()) return;
  const started = performance.now();
  const { build } = await import('vite');
  await build({ configFile: path.join(webDir, 'vite.config.ts'), root: webDir, logLevel: 'warn' });
  if (options.verbose ?? true) console.log(`web UI built into ${path.relative(root, webDist)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** web/dist's files as SEA assets: `web/<path>` each, and `web/manifest.json` listing the paths (written to `manifestFile`). */
export function webSeaAssets(manifestFile: string): Record<string, string> {
  const names: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) names.push(path.relative(webDist, full).split(path.sep).join('/'));
    }
  };
  walk(webDist);
  names.sort();
  fs.writeFileSync(manifestFile, JSON.stringify(names) + '\n');
  return { 'web/manifest.json': manifestFile, ...Object.fromEntries(names.map((name) => [`web/${name}`, path.join(webDist, name)])) };
}

if (import.meta.main) await buildWeb({ ifStale: process.argv.includes('--if-stale') });
