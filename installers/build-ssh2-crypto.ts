/**
 * Builds ssh2's optional native crypto binding (`sshcrypto.node`) against the pinned
 * Node 24's own headers. Run by `npm install`/`npm ci` (postinstall).
 *
 * Why not ssh2's own install script: it is kept off in package.json `allowScripts`
 * because it runs `node-gyp` with the machine's `nodedir` (the Debian Node's headers,
 * another ABI), and on failure it falls back silently. Without the binding ssh2 does
 * ChaCha20-Poly1305 and AES-GCM in JS/WASM per packet, and an SSH session's bulk
 * throughput drops by about a third (bench/ssh.ts: 0.25x -> 0.37x of direct sshd).
 *
 * A failed build is a warning, not an install failure: SSH still works, only slower.
 * test/ssh-crypto-binding.test.ts makes CI fail on it.
 *
 *   node installers/build-ssh2-crypto.ts [--force]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bindingDir = path.join(root, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto');
export const sshCryptoAddon = path.join(bindingDir, 'build', 'Release', 'sshcrypto.node');

/** True when the addon exists and loads into this Node (same ABI). */
export function sshCryptoLoads(): boolean {
  try {
    createRequire(sshCryptoAddon)(sshCryptoAddon);
    return true;
  } catch {
    return false;
  }
}

/** node-gyp's script: npm names it in `npm_config_node_gyp` while it runs a script; else npm's own copy. */
function nodeGypScript(): string | undefined {
  const candidates = [
    process.env.npm_config_node_gyp,
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((file): file is string => !!file && fs.existsSync(file));
}

/**
 * The pinned Node's tarball directory (<dir>/include/node): the `node` npm package keeps
 * it as its dependency node-<platform>-<arch>; its bin/node is a hard link, not a symlink.
 */
function nodeHeadersDir(): string | undefined {
  const tarball = `node-${process.platform}-${process.arch}`;
  const candidates = [
    path.resolve(path.dirname(fs.realpathSync(process.execPath)), '..'),
    path.join(root, 'node_modules', 'node', 'node_modules', tarball),
    path.join(root, 'node_modules', tarball),
  ];
  return candidates.find((dir) => {
    try {
      const header = fs.readFileSync(path.join(dir, 'include', 'node', 'node_version.h'), 'utf8');
      const major = /#define NODE_MAJOR_VERSION (\d+)/.exec(header)?.[1];
      return major === process.versions.node.split('.')[0];
    } catch {
      return false;
    }
  });
}

function build(): string | undefined {
  if (!fs.existsSync(path.join(bindingDir, 'binding.gyp'))) return 'ssh2 is not installed';
  const nodeDir = nodeHeadersDir();
  if (!nodeDir) return `no headers for Node ${process.version} were found (the npm package node-${process.platform}-${process.arch} carries them)`;
  const gyp = nodeGypScript();
  if (!gyp) return 'node-gyp was not found (it comes with npm)';
  const opensslMajor = /^\d+/.exec(process.versions.openssl)?.[0] ?? '3';
  const result = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`, `--real_openssl_major=${opensslMajor}`], {
    cwd: bindingDir,
    encoding: 'utf8',
    env: { ...process.env, npm_config_nodedir: nodeDir },
  });
  if (result.status !== 0) return `node-gyp failed (${result.status ?? result.signal}):\n${`${result.stdout}${result.stderr}`.trim().split('\n').slice(-12).join('\n')}`;
  if (!sshCryptoLoads()) return `${path.relative(root, sshCryptoAddon)} was built but does not load into Node ${process.version}`;
  return undefined;
}

/** True when the addon is older than its source: patch-package rewrote binding.cc after the last build. */
function sourceIsNewer(): boolean {
  try {
    return fs.statSync(path.join(bindingDir, 'src', 'binding.cc')).mtimeMs > fs.statSync(sshCryptoAddon).mtimeMs;
  } catch {
    return true;
  }
}

if (import.meta.main) {
  if (!process.argv.includes('--force') && sshCryptoLoads() && !sourceIsNewer()) {
    console.log('ssh2 native crypto binding: present');
  } else {
    const failure = build();
    if (failure) {
      console.warn(`warning: ssh2's native crypto binding was not built; SSH falls back to slower JS ciphers.\n${failure}\n(needs g++, make and python3: installers/dev-deps.sh installs them)`);
    } else {
      console.log(`ssh2 native crypto binding: built for Node ${process.version}`);
    }
  }
}
