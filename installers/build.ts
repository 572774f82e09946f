/**
 * `npm run build`: the single binary `dist/postern` (a Node single executable
 * application). esbuild bundles cli/main.ts to one CJS file, Node turns it into a
 * SEA blob with a code cache, and postject injects the blob into a stripped copy
 * of the Node 24 binary. node-pty's `pty.node` rides along as a SEA asset
 * (installers/sea-native.ts loads it). `dist/psh` and `dist/pctl` are symlinks:
 * the multi-call entry picks the program by the name it was invoked by.
 *
 *   node installers/build.ts [--no-strip]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { buildWeb, webSeaAssets } from './build-web.ts';

const root = path.resolve(import.meta.dirname, '..');
const nodeBinary = path.join(root, 'node_modules', 'node', 'bin', 'node');
const seaFuse = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/**
 * V8 flags every program in the binary runs with (SEA `execArgv`; docs/build.md, "Memory"):
 * a young generation of 2 MB semi-spaces instead of up to 16 MB. On an idle SSH+DB agent
 * 7 MB less anonymous memory, and its growth over 200 SSH sessions +12 MB instead of +32,
 * at no measurable CPU per session or per MB of SSH bulk (bench/agent-memory.ts).
 * --max-opt=2 (no TurboFan) was tried: the binary's file pages it saves were within the
 * run-to-run noise (52-65 MB either way) and it made start-up slower, so it is not here.
 *
 * --no-concurrent-recompilation --single-threaded-gc: V8's optimising compilers and its GC
 * work on the main thread instead of V8's worker threads. A compile job's zone memory (up
 * to several MB for a big function) is malloc'd by the thread that runs it; on the workers
 * it landed in up to four glibc thread arenas, each keeping its high-water mark after the
 * job freed it: over 1,000 SSH sessions the thread arenas went 4 -> 10 MB while live
 * malloc'd memory never passed 14 MB in all (heaptrack), and anonymous memory +14 MB.
 * On the main thread the jobs reuse the main arena: thread arenas stay at 1-2 MB,
 * anonymous memory +9.2 to +9.7 MB over the same 1,000 in three runs (bench/agent.ts:
 * +8.9 % and +8.5 % RSS; the first flag alone: +8.5 and +12.5 MB).
 * Agent CPU per session and per 100 MB of SSH bulk unchanged within noise (13.5-14.5 ms;
 * 1.95-2.2 s). Compiles are short and happen while code warms up; marking stays
 * incremental, so GC pauses stay short. --single-threaded and --optimize-for-size went
 * further (+4 MB) but --optimize-for-size doubled the CPU per MB of SSH bulk.
 */
export const seaExecArgv = ['--max-semi-space-size=2', '--no-concurrent-recompilation', '--single-threaded-gc'];
/** Native addons embedded as SEA assets, by the name their loader asks for. */
const nativeAddons: Record<string, string> = {
  pty: path.join(root, 'node_modules', 'node-pty', 'build', 'Release', 'pty.node'),
};
/** ssh2's optional crypto binding (installers/build-ssh2-crypto.ts); without it ssh2 uses JS ciphers. */
const sshCryptoAddon = path.join(root, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build', 'Release', 'sshcrypto.node');
const seaNative = path.join(root, 'installers', 'sea-native.ts');

/**
 * node-pty's lib/utils.js loads its addon with `require(dir + "/" + name + ".node")`
 * over a list of candidate directories; a bundle cannot resolve that, so the call
 * is rewritten to installers/sea-native.ts' `loadNative(name)`.
 */
const nodePtyNative: Plugin = {
  name: 'node-pty-native',
  setup(b) {
    b.onLoad({ filter: /[\\/]node-pty[\\/]lib[\\/]utils\.js$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      const call = 'require(dir + "/" + name + ".node")';
      if (!source.includes(call)) {
        return { errors: [{ text: `node-pty ${args.path}: the native require (${call}) was not found; update installers/build.ts` }] };
      }
      const contents = `var __posternLoadNative = require(${JSON.stringify(seaNative)}).loadNative;\n`
        + source.replace(call, '__posternLoadNative(name)');
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

/**
 * ssh2's lib/protocol/crypto.js loads its optional binding with a relative require inside
 * a try/catch (falling back to JS ciphers); in the binary the require becomes
 * `loadNative('sshcrypto')`, which throws into that same catch when the asset is absent.
 */
const ssh2CryptoNative: Plugin = {
  name: 'ssh2-crypto-native',
  setup(b) {
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      const call = "require('./crypto/build/Release/sshcrypto.node')";
      if (!source.includes(call)) {
        return { errors: [{ text: `ssh2 ${args.path}: the binding's require (${call}) was not found; update installers/build.ts` }] };
      }
      const contents = `var __posternLoadNative = require(${JSON.stringify(seaNative)}).loadNative;\n`
        + source.replace(call, "__posternLoadNative('sshcrypto')");
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

/**
 * The bundle with every non-ASCII character written as a \u escape. Node makes the SEA's
 * main script a V8 string: one byte per character when it is all ASCII, two when a single
 * character is not, which doubles the largest object in the heap. esbuild escapes strings,
 * template literals and identifiers and minifying drops comments; what it leaves is regular
 * expression literals (systeminformation has /[^°]/), where the escape means the same.
 */
export function asciiOnly(code: string): string {
  return code.replace(/[^\x00-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function run(command: string, args: string[]): string {
  return execFileSync(command, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** postject (LIEF) warns once per ELF note section it cannot name; those lines are noise. */
function runQuietly(command: string, args: string[]): void {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8' });
  const noise = /^warning: Can't find string offset for section name/;
  const output = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line && !noise.test(line)).join('\n');
  if (result.status !== 0) throw new Error(`${path.basename(args[0] ?? command)} failed (${result.status ?? result.signal}):\n${output}`);
}

function gitCommit(): string {
  try {
    const commit = run('git', ['rev-parse', '--short', 'HEAD']);
    const dirty = run('git', ['status', '--porcelain', '--untracked-files=no']) !== '';
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return 'unknown';
  }
}

function which(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export interface BuildOptions {
  /** The program's entry; cli/main.ts. */
  entry?: string;
  /** Output directory; dist/. */
  outDir?: string;
  /** The binary's file name; postern. */
  name?: string;
  /** Symlinks to the binary made beside it (multi-call names); psh and pctl. */
  links?: string[];
  /** strip(1) the Node binary before injecting (when strip is on PATH); true. */
  strip?: boolean;
  /** Progress lines to stdout; true. */
  verbose?: boolean;
}

/** Builds the single binary; returns its path. */
export async function buildBinary(options: BuildOptions = {}): Promise<string> {
  const entry = options.entry ?? path.join(root, 'cli', 'main.ts');
  const dist = options.outDir ?? path.join(root, 'dist');
  const name = options.name ?? 'postern';
  const binary = path.join(dist, name);
  const bundleFile = path.join(dist, `${name}.cjs`);
  const blobFile = path.join(dist, `${name}.sea-blob`);
  const seaConfigFile = path.join(dist, `${name}.sea-config.json`);
  const started = performance.now();
  const step = (what: string) => {
    if (options.verbose ?? true) console.log(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${what}`);
  };
  const strip = options.strip ?? true;
  const packageJson = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const buildInfo = { version: packageJson.version, commit: gitCommit(), built: new Date().toISOString() };
  for (const file of [nodeBinary, ...Object.values(nativeAddons)]) {
    if (!fs.existsSync(file)) throw new Error(`${path.relative(root, file)} is missing: run npm ci`);
  }
  const addons = { ...nativeAddons };
  if (fs.existsSync(sshCryptoAddon)) {
    addons.sshcrypto = sshCryptoAddon;
  } else {
    console.warn('warning: ssh2\'s crypto binding is not built (node installers/build-ssh2-crypto.ts); the binary\'s SSH uses JS ciphers');
  }
  fs.mkdirSync(dist, { recursive: true });

  step(`bundling ${path.relative(root, entry)} (${buildInfo.version} ${buildInfo.commit})`);
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: bundleFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    legalComments: 'none',
    logLevel: 'warning',
    // Whitespace and comments out, names kept (stack traces still name functions): Node copies
    // the whole bundle into the V8 heap as the main script's source and keeps it there.
    minifyWhitespace: true,
    minifySyntax: true,
    logOverride: { 'require-resolve-not-external': 'silent' },
    // cpu-features only tunes ssh2's cipher order; allowScripts keeps it unbuilt and ssh2 copes.
    external: ['cpu-features'],
    define: {
      __POSTERN_BUILD__: JSON.stringify(buildInfo),
      __POSTERN_NATIVE_PATHS__: JSON.stringify(addons),
      'import.meta.dirname': '__dirname',
      'import.meta.filename': '__filename',
    },
    plugins: [nodePtyNative, ssh2CryptoNative],
    metafile: true,
  });
  for (const warning of result.warnings) console.warn(`esbuild: ${warning.text}`);
  fs.writeFileSync(bundleFile, asciiOnly(fs.readFileSync(bundleFile, 'utf8')));
  fs.writeFileSync(path.join(dist, `${name}.meta.json`), JSON.stringify(result.metafile));
  step(`bundle ${megabytes(fs.statSync(bundleFile).size)}`);

  // The web UI rides along as SEA assets (cluster/proxy/web-assets.ts serves them).
  await buildWeb({ ifStale: true, verbose: options.verbose });
  const assets = {
    ...Object.fromEntries(Object.entries(addons).map(([addon, file]) => [`${addon}.node`, file])),
    ...webSeaAssets(path.join(dist, `${name}.web-manifest.json`)),
    // The RDP engine's wasm (protocols/rdp/ironrdp-engine.ts reads it with sea.getRawAsset).
    'ironrdp.wasm': path.join(root, 'node_modules', 'ironrdp-wasm', 'pkg', 'rdp_client_bg.wasm'),
  };
  fs.writeFileSync(seaConfigFile, JSON.stringify({
    main: bundleFile,
    output: blobFile,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    execArgv: seaExecArgv,
    assets,
  }, null, 2) + '\n');
  // The code cache is made under the same flags: V8 rejects a cache made under others.
  runQuietly(process.execPath, [...seaExecArgv, '--experimental-sea-config', seaConfigFile]);
  step(`SEA blob ${megabytes(fs.statSync(blobFile).size)}`);

  const temporary = `${binary}.tmp`;
  fs.rmSync(temporary, { force: true });
  fs.copyFileSync(nodeBinary, temporary);
  fs.chmodSync(temporary, 0o755);
  if (strip && which('strip')) {
    run('strip', [temporary]);
    step(`stripped node ${megabytes(fs.statSync(temporary).size)}`);
  } else {
    step('not stripping (no strip on PATH, or --no-strip)');
  }
  runQuietly(process.execPath, [path.join(root, 'node_modules', 'postject', 'dist', 'cli.js'), temporary, 'NODE_SEA_BLOB', blobFile, '--sentinel-fuse', seaFuse]);
  fs.renameSync(temporary, binary);
  const links = options.links ?? ['psh', 'pctl'];
  for (const link of links) {
    fs.rmSync(path.join(dist, link), { force: true });
    fs.symlinkSync(name, path.join(dist, link));
  }
  step(`${path.relative(root, binary)} ${megabytes(fs.statSync(binary).size)}${links.length ? ` (+ ${links.join(', ')} -> ${name})` : ''}`);
  return binary;
}

if (import.meta.main) await buildBinary({ strip: !process.argv.includes('--no-strip') });
