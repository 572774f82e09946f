/** Which CA psh trusts for a proxy: the stored one, or one pinned now with --ca-pin. */
import { fetchPinnedCa } from '../../cluster/api/pinned-ca.ts';
import { parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { loadProfile } from './profile.ts';

export async function trustedCa(proxy: string, caPin: string | undefined): Promise<string[]> {
  if (caPin) return [await fetchPinnedCa(parseProxyAddress(proxy), caPin, { alpn: ['http/1.1'] })];
  const stored = await loadProfile(proxy).catch(() => undefined);
  if (stored) return stored.caPems;
  throw new PosternError(
    'PST_UNTRUSTED_PROXY',
    `psh has not met ${proxy} before; pass --ca-pin sha256:... (the cluster admin reads it from pctl status) so the first contact cannot be intercepted`,
  );
}
