/**
 * `npm run dist`: release artifacts in dist/release/ from a fresh build of dist/postern.
 *
 * - `postern-VERSION-linux-x64.tar.gz`: one folder with the binary, the psh and pctl
 *   symlinks, systemd/ (both units, for /usr/local/bin), install.sh, LICENSE, README
 *   and SHA256SUMS (of every file in it; check with `sha256sum -c SHA256SUMS`).
 * - `postern_VERSION_amd64.deb` (dpkg-deb): /usr/bin/postern (+ psh, pctl), both units
 *   in /lib/systemd/system (for /usr/bin), postinst/prerm/postrm
 *   (installers/debian/). Installing enables nothing: a host needs a config and a
 *   join first (docs/install.md).
 * - `SHA256SUMS` beside them.
 *
 *   node installers/dist.ts [--no-build]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildBinary } from './build.ts';
import { renderUnit, unitLayout } from '../cli/postern/systemd-unit.ts';

const root = path.resolve(import.meta.dirname, '..');
const links = ['psh', 'pctl'];

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** `sha256sum`-format lines for the regular files under `dir`, sorted, relative. */
function checksums(dir: string, files: string[]): string {
  return files.sort().map((file) => `${sha256(path.join(dir, file))}  ${file}\n`).join('');
}

function writeUnits(dir: string, binary: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return (['agent', 'cluster'] as const).map((role) => {
    const file = path.join(dir, unitLayout[role].unit);
    fs.writeFileSync(file, renderUnit({ role, binary }), { mode: 0o644 });
    return file;
  });
}

export interface DistResult {
  tarball: string;
  deb: string;
  sums: string;
}

/** Makes the tarball and the .deb from `binary` into `outDir`; `fast` trades size for time (tests). */
export function makeDist(binary: string, outDir: string, options: { fast?: boolean } = {}): DistResult {
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });

  // The tarball.
  const name = `postern-${version}-linux-x64`;
  const folder = path.join(outDir, name);
  fs.mkdirSync(folder);
  fs.copyFileSync(binary, path.join(folder, 'postern'));
  fs.chmodSync(path.join(folder, 'postern'), 0o755);
  for (const link of links) fs.symlinkSync('postern', path.join(folder, link));
  writeUnits(path.join(folder, 'systemd'), '/usr/local/bin/postern');
  fs.copyFileSync(path.join(root, 'installers', 'install.sh'), path.join(folder, 'install.sh'));
  fs.chmodSync(path.join(folder, 'install.sh'), 0o755);
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(folder, 'LICENSE'));
  fs.writeFileSync(path.join(folder, 'README'), [
    `Postern ${version}: the single binary for Linux x86-64 (glibc 2.34+), no Node.js needed.`,
    '',
    '  sha256sum -c SHA256SUMS',
    '  sudo ./install.sh --token TOKEN --proxy proxy.example.com:3080 --ca-pin sha256:...   # an agent host',
    '  sudo ./install.sh --role cluster                                                    # auth + proxy',
    '  ./install.sh --help',
    '',
    'systemd/ holds the units install.sh writes (for /usr/local/bin/postern).',
    '',
  ].join('\n'));
  const files = ['postern', 'install.sh', 'LICENSE', 'README', ...fs.readdirSync(path.join(folder, 'systemd')).map((f) => `systemd/${f}`)];
  fs.writeFileSync(path.join(folder, 'SHA256SUMS'), checksums(folder, files));
  const tarball = path.join(outDir, `${name}.tar.gz`);
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-I', options.fast ? 'gzip -1' : 'gzip -9', '-cf', tarball, '-C', outDir, name]);

  // The .deb.
  const staging = path.join(outDir, 'deb');
  const bin = path.join(staging, 'usr', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync(binary, path.join(bin, 'postern'));
  fs.chmodSync(path.join(bin, 'postern'), 0o755);
  for (const link of links) fs.symlinkSync('postern', path.join(bin, link));
  writeUnits(path.join(staging, 'lib', 'systemd', 'system'), '/usr/bin/postern');
  const doc = path.join(staging, 'usr', 'share', 'doc', 'postern');
  fs.mkdirSync(doc, { recursive: true });
  fs.writeFileSync(path.join(doc, 'copyright'), `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: postern\n\nFiles: *\nLicense: Apache-2.0\n On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n`);
  const control = path.join(staging, 'DEBIAN');
  fs.mkdirSync(control);
  const installedKb = Math.ceil(fs.statSync(binary).size / 1024);
  fs.writeFileSync(path.join(control, 'control'), [
    'Package: postern',
    `Version: ${version}`,
    'Architecture: amd64',
    'Maintainer: Postern maintainers <postern@localhost>',
    `Installed-Size: ${installedKb}`,
    'Depends: libc6 (>= 2.34), util-linux',
    'Section: net',
    'Priority: optional',
    'Description: identity-aware access plane: agent, auth and proxy in one binary',
    ' Postern joins hosts to a cluster with a token and serves SSH through reverse',
    ' tunnels; the same binary runs the auth and proxy services. The package installs',
    ' postern, psh and pctl and the systemd units postern-agent.service (agent hosts)',
    ' and postern.service (auth + proxy); neither is enabled until configured.',
    '',
  ].join('\n'));
  for (const script of ['postinst', 'prerm', 'postrm']) {
    fs.copyFileSync(path.join(root, 'installers', 'debian', script), path.join(control, script));
    fs.chmodSync(path.join(control, script), 0o755);
  }
  const deb = path.join(outDir, `postern_${version}_amd64.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', ...(options.fast ? ['-Zgzip', '-z1'] : ['-Zxz']), '--build', staging, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  fs.rmSync(staging, { recursive: true, force: true });

  const sums = path.join(outDir, 'SHA256SUMS');
  fs.writeFileSync(sums, checksums(outDir, [path.basename(tarball), path.basename(deb)]));
  return { tarball, deb, sums };
}

if (import.meta.main) {
  const binary = process.argv.includes('--no-build') ? path.join(root, 'dist', 'postern') : await buildBinary();
  const result = makeDist(binary, path.join(root, 'dist', 'release'));
  for (const file of [result.tarball, result.deb, result.sums]) {
    console.log(`${path.relative(root, file)} ${(fs.statSync(file).size / 1024 / 1024).toFixed(1)} MB`);
  }
}
