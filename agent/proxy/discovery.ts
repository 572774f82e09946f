/**
 * `GET /v1/discovery`: what a proxy says about its cluster: the name, the proxies
 * agents should keep tunnels to (the agent mesh), and the CA pins.
 */
import { z } from 'zod';
import { ProxyResponseError } from './errors.ts';
import { proxyRequest } from './proxy-web-client.ts';
import type { ProxyTrust } from './proxy-peer.ts';

const discoverySchema = z.object({
  cluster_name: z.string().min(1),
  version: z.string(),
  proxies: z.array(z.object({ host_id: z.string(), public_addr: z.string() })).max(1000),
  ca_pins: z.array(z.string()),
});

export type Discovery = z.output<typeof discoverySchema>;

/** Asks the proxy at `address` for the cluster's discovery document. */
export async function fetchDiscovery(address: string, trust: ProxyTrust, options: { timeoutMs?: number } = {}): Promise<Discovery> {
  const body = await proxyRequest(address, '/v1/discovery', { trust, timeoutMs: options.timeoutMs });
  const parsed = discoverySchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProxyResponseError(`the proxy at ${address} sent a discovery document without ${issue?.path.join('.') || 'the expected shape'}: ${issue?.message}`);
  }
  return parsed.data;
}
