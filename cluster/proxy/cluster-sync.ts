/**
 * The proxy's regular conversation with the auth service: a heartbeat with its public
 * address (so `pctl` and discovery list it), the list of online proxies for discovery,
 * the cluster's CA certificates (so a rotation reaches the tunnel checks), and renewal
 * of its own identity well before it expires. Failures are logged once per outage and
 * retried at the next beat; serving never stops because auth is away.
 */
import type { AuthClient } from '../api/auth-client.ts';
import type { IdentityFile } from '../api/identity-file.ts';
import { PosternError } from '../../protocols/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { ProxyCredentials } from './proxy-credentials.ts';
import { needsRenewal } from './proxy-identity.ts';

/** Another proxy as discovery lists it. */
export interface ProxyPeer {
  host_id: string;
  public_addr: string;
}

/** Options for {@link ClusterSync}. */
export interface ClusterSyncOptions {
  auth: () => AuthClient;
  credentials: ProxyCredentials;
  publicAddr: () => string;
  /** Gets a fresh identity (the caller stores it); called once two thirds of the current one's life are gone. */
  renew: (current: IdentityFile) => Promise<IdentityFile>;
  logger: Logger;
  /** Time between beats until the auth service says otherwise. Default 10 s. */
  intervalMs?: number;
  /** Leaf clusters whose tunnels are connected here now (root proxies report them). */
  connectedClusters?: () => string[];
}

/** Runs the beat every interval until {@link ClusterSync.stop}. */
export class ClusterSync {
  readonly #options: ClusterSyncOptions;
  #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #peers: ProxyPeer[] = [];
  #peersDenied = false;
  #failing = new Set<string>();
  #lastBeatOk = false;

  constructor(options: ClusterSyncOptions) {
    this.#options = options;
    this.#intervalMs = options.intervalMs ?? 10_000;
  }

  /** Online proxies from the last successful listing (possibly without this one). */
  get peers(): ProxyPeer[] {
    return this.#peers;
  }

  /** True when the last heartbeat reached the auth service. */
  get connected(): boolean {
    return this.#lastBeatOk;
  }

  /** Beats once now, then every interval. */
  async start(): Promise<void> {
    await this.beat();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** One beat: heartbeat, peers, CAs, renewal. Never throws. */
  async beat(): Promise<void> {
    await this.#step('heartbeat', async () => {
      const answer = await this.#options.auth().heartbeat({ publicAddr: this.#options.publicAddr(), connectedClusters: this.#options.connectedClusters?.() ?? [] }, { deadlineMs: 5_000 });
      if (answer.intervalSeconds > 0n) this.#intervalMs = Number(answer.intervalSeconds) * 1000;
    });
    this.#lastBeatOk = !this.#failing.has('heartbeat');
    if (!this.#peersDenied) await this.#step('list proxies', () => this.#refreshPeers());
    await this.#step('refresh CAs', () => this.#refreshAuthorities());
    if (needsRenewal(this.#options.credentials.identity)) await this.#step('renew identity', () => this.#renew());
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.beat().finally(() => this.#schedule()), this.#intervalMs);
    this.#timer.unref();
  }

  async #step(name: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
      if (this.#failing.delete(name)) this.#options.logger.info({ step: name }, 'proxy reaches the auth service again');
    } catch (error) {
      if (!this.#failing.has(name)) {
        this.#failing.add(name);
        this.#options.logger.warn({ step: name, code: (error as PosternError).code, why: (error as Error).message }, 'proxy cannot talk to the auth service; retrying every beat');
      }
    }
  }

  async #refreshPeers(): Promise<void> {
    try {
      const { resourcesJson } = await this.#options.auth().getResources({ kind: 'proxy' }, { deadlineMs: 5_000 });
      const hosts = JSON.parse(resourcesJson) as Array<{ host_id: string; public_addr?: string; online: boolean }>;
      this.#peers = hosts.filter((h) => h.online && h.public_addr).map((h) => ({ host_id: h.host_id, public_addr: h.public_addr! }));
    } catch (error) {
      // Each refused call is an audit event on the auth side: ask once, not every beat.
      if (error instanceof PosternError && error.code === 'PST_ACCESS_DENIED') {
        this.#peersDenied = true;
        this.#options.logger.warn({ why: error.message }, 'the auth service does not let this proxy list proxies; discovery lists this proxy only');
        return;
      }
      throw error;
    }
  }

  async #refreshAuthorities(): Promise<void> {
    const { authorities } = await this.#options.auth().exportAuthorities({}, { deadlineMs: 5_000 });
    const pems = (kind: string): string[] => authorities.filter((a) => a.kind === kind && a.tlsCertPem).flatMap((a) => _splitPems(a.tlsCertPem));
    const sshKeys = authorities.filter((a) => a.kind === 'user').flatMap((a) => a.sshPublicKey.split('\n').map((l) => l.trim()).filter(Boolean));
    this.#options.credentials.setAuthorities({ host: pems('host'), user: pems('user'), userSsh: sshKeys });
  }

  async #renew(): Promise<void> {
    const renewed = await this.#options.renew(this.#options.credentials.identity);
    this.#options.credentials.setIdentity(renewed);
    this.#options.logger.info({ hostId: renewed.host_id, expires: this.#options.credentials.expires().toISOString() }, 'proxy identity renewed');
  }
}

function _splitPems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
