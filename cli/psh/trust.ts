/**
 * Which CA psh trusts for a proxy: one pinned now with --ca-pin (remembered in the
 * proxy's profile folder for later commands), or the one remembered earlier.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fetchPinnedCa } from '../../cluster/api/pinned-ca.ts';
import { writeFileAtomic } from '../../cluster/common/atomic-file.ts';
import { parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { profileDir } from './profile.ts';

const caFile = 'cluster-ca.pem';

export async function trustedCa(proxy: string, caPin: string | undefined): Promise<string[]> {
  const file = path.join(profileDir(proxy), caFile);
  if (caPin) {
    const pem = await fetchPinnedCa(parseProxyAddress(proxy), caPin, { alpn: ['http/1.1'] });
    await writeFileAtomic(file, pem, 0o600);
    return [pem];
  }
  const stored = await readFile(file, 'utf8').catch(() => undefined);
  if (stored) return [stored];
  throw new PosternError(
    'PST_UNTRUSTED_PROXY',
    `psh has not met ${proxy} before; pass --ca-pin sha256:... (the cluster admin reads it from pctl status) so the first contact cannot be intercepted`,
  );
}
