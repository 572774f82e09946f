/**
 * `npm run dist` (installers/dist.ts) from the current binary, with fast compression:
 * the tarball's contents and checksums, the extracted binary and install.sh run; the
 * .deb's contents and control fields (dpkg-deb -c / -I), and a real `dpkg -i` into a
 * scratch root (dpkg --root with --force-script-chrootless: the maintainer scripts
 * run and honour DPKG_ROOT), then a purge.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureBinary } from './fixtures/binary.ts';
import { makeDist, type DistResult } from '../installers/dist.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'postern-dist-'));
let result: DistResult;

function sh(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000, ...options });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

before(async () => {
  result = makeDist(await ensureBinary(), path.join(scratch, 'release'), { fast: true });
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('release folder: tarball, .deb and SHA256SUMS that checks', () => {
  assert.deepEqual(readdirSync(path.dirname(result.tarball)).filter((f) => f !== 'postern-0.1.0-linux-x64').sort(), ['SHA256SUMS', 'postern-0.1.0-linux-x64.tar.gz', 'postern_0.1.0_amd64.deb']);
  const check = sh('sha256sum', ['-c', 'SHA256SUMS'], { cwd: path.dirname(result.sums) });
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /postern_0\.1\.0_amd64\.deb: OK/);
});

test('the tarball: binary, links, units, install.sh, LICENSE, SHA256SUMS; all of it runs after extraction', () => {
  const listing = sh('tar', ['-tzvf', result.tarball]);
  assert.equal(listing.code, 0, listing.stderr);
  const names = listing.stdout.trim().split('\n').map((line) => line.split(/\s+/).slice(5).join(' ')).sort();
  assert.deepEqual(names, [
    'postern-0.1.0-linux-x64/', 'postern-0.1.0-linux-x64/LICENSE', 'postern-0.1.0-linux-x64/README', 'postern-0.1.0-linux-x64/SHA256SUMS',
    'postern-0.1.0-linux-x64/install.sh', 'postern-0.1.0-linux-x64/pctl -> postern', 'postern-0.1.0-linux-x64/postern', 'postern-0.1.0-linux-x64/psh -> postern',
    'postern-0.1.0-linux-x64/systemd/', 'postern-0.1.0-linux-x64/systemd/postern-agent.service', 'postern-0.1.0-linux-x64/systemd/postern.service',
  ]);
  assert.match(listing.stdout, /-rwxr-xr-x 0\/0 .* postern-0\.1\.0-linux-x64\/postern\n/);
  const out = path.join(scratch, 'extracted');
  mkdirSync(out);
  assert.equal(sh('tar', ['-xzf', result.tarball, '-C', out]).code, 0);
  const folder = path.join(out, 'postern-0.1.0-linux-x64');
  const check = sh('sha256sum', ['-c', 'SHA256SUMS'], { cwd: folder });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.equal(check.stdout.trim().split('\n').length, 6);
  const version = sh(path.join(folder, 'psh'), ['--help'], { env: {} });
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^psh — /);
  assert.match(readFileSync(path.join(folder, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  assert.match(readFileSync(path.join(folder, 'systemd', 'postern-agent.service'), 'utf8'), /^ExecStart=\/usr\/local\/bin\/postern start/m);
  // The bundled install.sh finds the binary beside it.
  const destdir = path.join(scratch, 'from-tarball');
  const install = sh('sh', [path.join(folder, 'install.sh'), '--destdir', destdir, '--no-start']);
  assert.equal(install.code, 0, install.stderr);
  assert.ok(readFileSync(path.join(destdir, 'usr/local/bin/postern')).equals(readFileSync(path.join(folder, 'postern'))));
});

test('the .deb: contents and control fields', () => {
  const contents = sh('dpkg-deb', ['-c', result.deb]);
  assert.equal(contents.code, 0, contents.stderr);
  const entries = contents.stdout.trim().split('\n').map((line) => line.split(/\s+/).slice(5).join(' ')).filter((p) => !p.endsWith('/')).sort();
  assert.deepEqual(entries, [
    './lib/systemd/system/postern-agent.service', './lib/systemd/system/postern.service',
    './usr/bin/pctl -> postern', './usr/bin/postern', './usr/bin/psh -> postern', './usr/share/doc/postern/copyright',
  ]);
  assert.match(contents.stdout, /-rwxr-xr-x root\/root +\d+ .* \.\/usr\/bin\/postern\n/);
  const info = sh('dpkg-deb', ['-I', result.deb]);
  assert.equal(info.code, 0, info.stderr);
  for (const field of [/^ Package: postern$/m, /^ Version: 0\.1\.0$/m, /^ Architecture: amd64$/m, /^ Depends: libc6 \(>= 2\.34\), util-linux$/m, / postinst /, / prerm /, / postrm /]) assert.match(info.stdout, field);
});

test('the .deb installs into a scratch root with dpkg and purges clean', () => {
  const root = path.join(scratch, 'dpkg-root');
  mkdirSync(path.join(root, 'var/lib/dpkg/info'), { recursive: true });
  mkdirSync(path.join(root, 'var/lib/dpkg/updates'));
  writeFileSync(path.join(root, 'var/lib/dpkg/status'), '');
  const dpkg = (args: string[]) => sh('dpkg', [`--root=${root}`, '--force-script-chrootless', '--log=/dev/null', ...args], { env: { PATH: process.env.PATH } });
  // The scratch root has no libc6 or util-linux packages registered: only those dependencies are forced.
  const install = dpkg(['--force-depends', '-i', result.deb]);
  assert.equal(install.code, 0, install.stderr);
  assert.match(install.stdout, /Setting up postern \(0\.1\.0\)/);
  assert.match(install.stdout, /postern: installed\. Agent host: postern join/);
  const version = sh(path.join(root, 'usr/bin/postern'), ['version'], { env: {} });
  assert.equal(version.code, 0, version.stderr);
  assert.match(readFileSync(path.join(root, 'lib/systemd/system/postern.service'), 'utf8'), /^ExecStart=\/usr\/bin\/postern start -c \/etc\/postern\/cluster\.yaml$/m);
  assert.deepEqual(readdirSync(path.join(root, 'etc')), ['postern'], 'postinst makes /etc/postern');
  writeFileSync(path.join(root, 'etc/postern/agent.yaml'), 'kept until purge\n');
  const remove = dpkg(['--remove', 'postern']);
  assert.equal(remove.code, 0, remove.stderr);
  assert.equal(readFileSync(path.join(root, 'etc/postern/agent.yaml'), 'utf8'), 'kept until purge\n');
  const purge = dpkg(['--purge', 'postern']);
  assert.equal(purge.code, 0, purge.stderr);
  assert.deepEqual(readdirSync(path.join(root, 'etc')), []);
  assert.deepEqual(readdirSync(root).sort(), ['etc', 'var'], 'dpkg removed /usr and /lib with the files it owned');
});
