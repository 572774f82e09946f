/**
 * Host certificates live 7 days; the agent renews its identity at half life. A renewal
 * is a `Join` without a token over the agent's own mutual TLS connection to auth (the
 * server treats it as such: same host id, no new roles), with freshly generated keys.
 * The new identity is written atomically and used for new connections; failures are
 * retried with back-off while the current certificate is still valid.
 */
import type { AuthClient } from '../../cluster/api/auth-client.ts';
import type { IdentityFile } from '../../cluster/api/identity-file.ts';
import { systemClock, type Clock } from '../../cluster/common/clock.ts';
import type { Logger } from '../../cluster/common/logger.ts';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { backoffDelay, type BackoffOptions } from '../supervisor/backoff.ts';
import type { ServiceHealth, SupervisedService } from '../supervisor/service.ts';
import type { AgentIdentity } from './agent-identity.ts';
import { certificateInfo, halfLife } from './certificate-info.ts';
import { IdentityRenewalError } from './errors.ts';
import { generateHostKeys } from './host-keys.ts';

/** Asks auth for a new certificate pair for `current` and returns the identity to store. */
export async function renewIdentity(current: IdentityFile, client: AuthClient, options: { nodeName: string; addresses?: string[] }): Promise<IdentityFile> {
  const keys = await generateHostKeys(options.nodeName);
  const roles = certificateInfo(current.cert_pem).organizations;
  let response;
  try {
    response = await client.join({
      hostId: current.host_id ?? '',
      roles,
      nodeName: options.nodeName,
      tlsPublicKey: keys.tlsPublicKeyPem,
      sshPublicKey: keys.sshPublicKey,
      addresses: options.addresses ?? [],
    });
  } catch (error) {
    throw new IdentityRenewalError(`renewing the host certificate of ${current.host_id} failed: ${(error as Error).message}`, { cause: error });
  }
  const certificates = response.certificates;
  if (!certificates) throw new IdentityRenewalError('renewal answer carries no certificates');
  const caPems = certificates.tlsCaPems.length > 0 ? certificates.tlsCaPems : current.ca_pems;
  const certificate = new X509Certificate(certificates.tlsCertificatePem);
  if (!certificate.checkPrivateKey(createPrivateKey(keys.tlsKeyPem))) throw new IdentityRenewalError('renewal returned a certificate for another key');
  if (!caPems.some((pem) => certificate.checkIssued(new X509Certificate(pem)))) throw new IdentityRenewalError('renewal returned a certificate from an unknown CA');
  return {
    ...current,
    key_pem: keys.tlsKeyPem,
    cert_pem: certificates.tlsCertificatePem,
    ca_pems: caPems,
    ssh_cert: certificates.sshCertificate || current.ssh_cert,
    ssh_key_pem: certificates.sshCertificate ? keys.sshKeyPem : current.ssh_key_pem,
  };
}

/** Options for {@link IdentityRenewer}. */
export interface IdentityRenewerOptions {
  identity: AgentIdentity;
  auth: () => AuthClient;
  nodeName: string;
  addresses?: () => string[];
  logger: Logger;
  clock?: Clock;
  random?: () => number;
  /** Retry back-off after a failed renewal. Default 5 s doubling to 5 min. */
  backoff?: BackoffOptions;
  /** Called after a renewal was written (the tunnels refresh). */
  onRenewed?: (identity: IdentityFile) => void | Promise<void>;
}

const longestTimerMs = 2 ** 31 - 1;

/** Renews the agent's identity at half life; runs under the ServiceSupervisor as `identity`. */
export class IdentityRenewer implements SupervisedService {
  readonly name = 'identity';
  readonly #options: IdentityRenewerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #failures = 0;
  #lastError: string | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(options: IdentityRenewerOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: 'identity' });
    this.#clock = options.clock ?? systemClock;
  }

  /** When the current identity is due for renewal. */
  get renewAt(): Date {
    return halfLife(this.#options.identity.info);
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#scheduleAt(this.renewAt);
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#inFlight;
  }

  /** Unhealthy only when renewals fail and less than a quarter of the certificate's life is left. */
  health(): ServiceHealth {
    const { notBefore, notAfter } = this.#options.identity.info;
    const left = notAfter.getTime() - this.#clock.now().getTime();
    const detail = `host certificate valid until ${notAfter.toISOString()}, renewal due ${this.renewAt.toISOString()}`;
    if (this.#failures > 0 && left < (notAfter.getTime() - notBefore.getTime()) / 4) {
      return { ok: false, detail: `${detail}; renewal keeps failing: ${this.#lastError}` };
    }
    return { ok: true, detail };
  }

  /** Renewal attempts that failed in a row, and the last error. */
  status(): { renewAt: string; failures: number; lastError?: string } {
    const row: { renewAt: string; failures: number; lastError?: string } = { renewAt: this.renewAt.toISOString(), failures: this.#failures };
    if (this.#lastError !== undefined) row.lastError = this.#lastError;
    return row;
  }

  /** Renews now (joining a renewal under way). */
  renewNow(): Promise<void> {
    this.#inFlight ??= this.#renew().finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  async #renew(): Promise<void> {
    const { identity } = this.#options;
    try {
      const next = await renewIdentity(identity.current, this.#options.auth(), { nodeName: this.#options.nodeName, addresses: this.#options.addresses?.() });
      await identity.replace(next);
      this.#failures = 0;
      this.#lastError = undefined;
      this.#log.info({ expires: identity.info.notAfter.toISOString(), file: identity.file }, 'host identity renewed');
      await this.#options.onRenewed?.(next);
      if (this.#running) this.#scheduleAt(this.renewAt);
    } catch (error) {
      this.#failures++;
      this.#lastError = (error as Error).message;
      const delayMs = backoffDelay(this.#failures - 1, (this.#options.random ?? Math.random)(), this.#options.backoff ?? { baseMs: 5_000, maxMs: 5 * 60_000 });
      this.#log.warn({ err: error, retryInMs: delayMs, expires: identity.info.notAfter.toISOString() }, 'host identity renewal failed; retrying');
      if (this.#running) this.#schedule(delayMs);
    }
  }

  #scheduleAt(when: Date): void {
    this.#schedule(when.getTime() - this.#clock.now().getTime());
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.renewNow(), Math.min(longestTimerMs, Math.max(0, delayMs)));
    this.#timer.unref();
  }
}
