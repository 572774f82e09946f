/**
 * The agent mesh: one tunnel to every proxy of the cluster.
 *
 * ```
 * configured proxy_addr (seed, maybe a load balancer) ── link ──> proxy A
 *        GET /v1/discovery every 30 s and whenever a link comes up
 *        proxies [{A, a:3080}, {B, b:3080}] ── a link per proxy not reached yet ──> proxy B
 * ```
 *
 * Proxies are told apart by host id (their certificate's CN), not by address: the seed
 * may land on any proxy, and one proxy may be listed under an address the seed already
 * reaches. A discovered link that reaches a proxy another link already has is dropped
 * and its address remembered as an alias, not dialled again while that proxy is
 * reached; the seed link is always kept. Links to proxies no longer listed are closed.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../cluster/common/logger.ts';
import type { DialHandler, TunnelOptions } from '../../protocols/tunnel/index.ts';
import type { BackoffOptions } from '../supervisor/backoff.ts';
import type { ServiceHealth, SupervisedService } from '../supervisor/service.ts';
import { fetchDiscovery, type Discovery } from '../proxy/discovery.ts';
import type { ProxyPeer, ProxyTrust } from '../proxy/proxy-peer.ts';
import { dialTunnel, type OpenTunnel, type TunnelIdentity } from './dial-tunnel.ts';
import { TunnelLink, type LinkStatus } from './tunnel-link.ts';

/** Options for {@link TunnelPool}. */
export interface TunnelPoolOptions {
  /** The configured proxy address, host:port; always kept. */
  proxyAddr: string;
  /** The identity for the next connection; renewals take effect on new tunnels. */
  identity: () => TunnelIdentity;
  onStream: DialHandler;
  logger: Logger;
  tunnel?: TunnelOptions;
  /** Reconnect back-off. Default 250 ms doubling to 10 s, so a restarted proxy is back within seconds. */
  backoff?: BackoffOptions;
  random?: () => number;
  /** Default 30 s. */
  discoveryIntervalMs?: number;
  /** TCP + TLS time allowed per dial. Default 10 s. */
  connectTimeoutMs?: number;
  /** Where discovery comes from; the proxy's /v1/discovery by default. */
  discover?: (address: string, trust: ProxyTrust) => Promise<Discovery>;
}

export interface TunnelPoolEvents {
  /** A link came up, the first time or after a reconnect. */
  up: [address: string, proxy: ProxyPeer];
  down: [address: string, reason: Error];
}

export const defaultTunnelBackoff: Required<BackoffOptions> = { baseMs: 250, maxMs: 10_000 };

/** Keeps a tunnel to each proxy of the cluster; runs under the ServiceSupervisor as `tunnels`. */
export class TunnelPool extends EventEmitter<TunnelPoolEvents> implements SupervisedService {
  readonly name = 'tunnels';
  readonly #options: TunnelPoolOptions;
  readonly #log: Logger;
  readonly #links = new Map<string, TunnelLink>();
  /** Addresses found to reach a proxy another link has, by the host id they reach; not dialled while it is up. */
  readonly #aliases = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #discovering: Promise<void> | undefined;
  /** Links missing from the last discovery, by address (see #reconcile). */
  readonly #unlisted = new Set<string>();
  #again = false;
  #running = false;

  constructor(options: TunnelPoolOptions) {
    super();
    this.#options = options;
    this.#log = options.logger.child({ component: 'tunnels' });
  }

  /** Starts the seed link and periodic discovery; resolves at once (links connect in the background). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#addLink(this.#options.proxyAddr);
    this.#timer = setInterval(() => void this.discover(), this.#options.discoveryIntervalMs ?? 30_000);
    this.#timer.unref();
  }

  /** Closes every tunnel and stops discovery. */
  async stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#timer);
    const links = [...this.#links.values()];
    this.#links.clear();
    await Promise.all(links.map((link) => link.stop()));
  }

  /** Healthy while at least one tunnel is up. */
  health(): ServiceHealth {
    const rows = this.status();
    const up = rows.filter((row) => row.state === 'up').length;
    if (up > 0) return { ok: true, detail: `${up} of ${rows.length} tunnels up` };
    const why = rows.map((row) => `${row.address}: ${row.lastError ?? row.state}`).join('; ');
    return { ok: false, detail: `no tunnel to any proxy (${why || 'not started'})` };
  }

  /** One row per proxy address. */
  status(): LinkStatus[] {
    return [...this.#links.values()].map((link) => link.status());
  }

  /** Tunnels up now. */
  get connected(): number {
    return [...this.#links.values()].filter((link) => link.state === 'up').length;
  }

  /** Replaces every open tunnel with one made with the current identity (after a renewal). */
  async refresh(): Promise<void> {
    await Promise.all([...this.#links.values()].map((link) => link.refresh()));
  }

  /** Asks a proxy for the cluster's proxies and reconciles the links; concurrent calls share one run. */
  discover(): Promise<void> {
    if (this.#discovering) {
      this.#again = true;
      return this.#discovering;
    }
    this.#discovering = this.#discoverOnce().finally(() => {
      this.#discovering = undefined;
      if (this.#again && this.#running) {
        this.#again = false;
        void this.discover();
      }
    });
    return this.#discovering;
  }

  async #discoverOnce(): Promise<void> {
    const up = [...this.#links.values()].filter((link) => link.state === 'up').map((link) => link.address);
    const address = up.includes(this.#options.proxyAddr) ? this.#options.proxyAddr : (up[0] ?? this.#options.proxyAddr);
    const identity = this.#options.identity();
    const trust: ProxyTrust = { caPems: identity.ca_pems, certPem: identity.cert_pem, keyPem: identity.key_pem };
    try {
      const discovery = await (this.#options.discover ?? fetchDiscovery)(address, trust);
      if (this.#running) this.#reconcile(discovery);
    } catch (error) {
      this.#log.warn({ err: error, proxy: address }, 'proxy discovery failed; keeping the current tunnels');
    }
  }

  #reconcile(discovery: Discovery): void {
    const wanted = new Map<string, string>();
    for (const proxy of discovery.proxies) {
      if (_usableAddress(proxy.public_addr)) wanted.set(proxy.public_addr, proxy.host_id);
      else this.#log.debug({ proxy }, 'discovered proxy has no address agents can dial; skipped');
    }
    const reached = new Set([...this.#links.values()].flatMap((link) => (link.proxy ? [link.proxy.hostId] : [])));
    for (const address of this.#aliases.keys()) if (!wanted.has(address)) this.#aliases.delete(address);
    for (const [address, hostId] of wanted) {
      const alias = this.#aliases.get(address);
      if (!this.#links.has(address) && !reached.has(hostId) && !(alias !== undefined && reached.has(alias))) this.#addLink(address);
    }
    // A proxy that has just started lists only itself until it has read its peers from
    // auth: a link goes only when two discoveries in a row leave its proxy out.
    for (const [address, link] of this.#links) {
      if (address === this.#options.proxyAddr || wanted.has(address)) {
        this.#unlisted.delete(address);
      } else if (this.#unlisted.has(address)) {
        this.#unlisted.delete(address);
        this.#removeLink(link, 'the proxy is no longer listed by discovery');
      } else {
        this.#unlisted.add(address);
      }
    }
  }

  #addLink(address: string): void {
    const link = new TunnelLink({
      address,
      dial: (target, signal) => this.#dial(target, signal),
      logger: this.#log,
      backoff: this.#options.backoff ?? defaultTunnelBackoff,
      random: this.#options.random,
    });
    this.#links.set(address, link);
    link.on('up', (open) => this.#onUp(link, open));
    link.on('down', (reason) => this.emit('down', address, reason));
    link.start();
  }

  #removeLink(link: TunnelLink, why: string): void {
    if (this.#links.get(link.address) !== link) return;
    this.#links.delete(link.address);
    this.#unlisted.delete(link.address);
    this.#log.info({ proxy: link.address, why }, 'closing tunnel');
    void link.stop();
  }

  #onUp(link: TunnelLink, open: OpenTunnel): void {
    const twin = [...this.#links.values()].find((other) => other !== link && other.proxy?.hostId === open.proxy.hostId);
    if (twin) {
      // Two addresses reach one proxy: keep the seed, else the older link.
      const drop = link.address === this.#options.proxyAddr ? twin : link;
      this.#aliases.set(drop.address, open.proxy.hostId);
      this.#removeLink(drop, `proxy ${open.proxy.hostId} is reached through ${drop === link ? twin.address : link.address} already`);
      if (drop === link) return;
    }
    this.emit('up', link.address, open.proxy);
    void this.discover();
  }

  #dial(address: string, signal: AbortSignal): Promise<OpenTunnel> {
    return dialTunnel(address, this.#options.identity(), {
      ...this.#options.tunnel,
      onStream: this.#options.onStream,
      timeoutMs: this.#options.connectTimeoutMs,
      signal,
    });
  }
}

/** An address another host can dial: host:port with a real port and a specified host. */
function _usableAddress(address: string): boolean {
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  if (!match) return false;
  const [, host = '', port = '0'] = match;
  return host !== '' && host !== '0.0.0.0' && host !== '::' && Number(port) > 0 && Number(port) < 65536;
}
