/**
 * The agent's host identity in its data directory (`agent-identity.json`, 0600): the
 * TLS key and certificate it dials tunnels and calls auth with, the SSH host key and
 * certificate its SSH service presents, the host CA, its host id, cluster and proxy.
 *
 * `AgentIdentity` holds the one in use and replaces it atomically on renewal; tunnels
 * and auth connections made after a `change` event use the new one.
 */
import { EventEmitter } from 'node:events';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { IdentityFileError, readIdentityFile, writeIdentityFile, type IdentityFile } from '../../cluster/api/identity-file.ts';
import { certificateInfo, type CertificateInfo } from './certificate-info.ts';
import { IdentityUnusableError } from './errors.ts';

/** The identity file's name inside the data directory. */
export const agentIdentityFileName = 'agent-identity.json';

/** Where an agent with data directory `dataDir` keeps its identity. */
export function agentIdentityPath(dataDir: string): string {
  return path.join(dataDir, agentIdentityFileName);
}

/** The next step for an agent whose identity is missing or unusable. */
export function rejoinHint(dataDir: string): string {
  return `re-join with a token: postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:... --data-dir ${dataDir} (ask an admin for a token: pctl tokens add --type=node)`;
}

/**
 * Reads and checks the agent identity in `dataDir`; resolves undefined when there is
 * none. Throws IdentityFileError (corrupted) or IdentityUnusableError (expired, key and
 * certificate disagree), each naming the file and saying how to re-join.
 */
export async function loadAgentIdentity(dataDir: string, now: Date = new Date()): Promise<IdentityFile | undefined> {
  const file = agentIdentityPath(dataDir);
  try {
    await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdentityFileError(`cannot read identity file ${file}: ${(error as Error).message}`);
  }
  const identity = await readIdentityFile(file, rejoinHint(dataDir));
  checkAgentIdentity(identity, { file, dataDir, now });
  return identity;
}

/** Throws when `identity` cannot serve as an agent's identity at `now`; the message names `file`. */
export function checkAgentIdentity(identity: IdentityFile, where: { file: string; dataDir: string; now: Date }): CertificateInfo {
  const unusable = (why: string): IdentityUnusableError =>
    new IdentityUnusableError(`identity file ${where.file} ${why}; move it aside and ${rejoinHint(where.dataDir)}`);
  if (!identity.host_id) throw unusable('has no host_id (it is not an agent identity)');
  if (!identity.ssh_cert || !identity.ssh_key_pem) throw unusable('has no SSH host certificate or key');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(identity.cert_pem);
    if (!certificate.checkPrivateKey(createPrivateKey(identity.key_pem))) throw unusable('holds a key that does not match its certificate');
  } catch (error) {
    if (error instanceof IdentityUnusableError) throw error;
    throw unusable(`holds a certificate or key that does not parse (${(error as Error).message})`);
  }
  const info = certificateInfo(certificate);
  if (info.notAfter.getTime() <= where.now.getTime()) {
    throw unusable(`holds a host certificate that expired at ${info.notAfter.toISOString()} (the agent was off longer than its certificate lives, so it cannot renew)`);
  }
  return info;
}

export interface AgentIdentityEvents {
  /** The identity was replaced (renewed); new connections should use it. */
  change: [IdentityFile];
}

/** The identity in use, and the one place that replaces it on disk. */
export class AgentIdentity extends EventEmitter<AgentIdentityEvents> {
  readonly file: string;
  #current: IdentityFile;
  #info: CertificateInfo;

  constructor(file: string, identity: IdentityFile) {
    super();
    this.file = file;
    this.#current = identity;
    this.#info = certificateInfo(identity.cert_pem);
  }

  /** The identity to use for a connection made now. */
  get current(): IdentityFile {
    return this.#current;
  }

  /** Host id, roles and validity of the current certificate. */
  get info(): CertificateInfo {
    return this.#info;
  }

  /** Writes `next` atomically (0600), then makes it current and emits `change`. */
  async replace(next: IdentityFile): Promise<void> {
    const info = certificateInfo(next.cert_pem);
    await writeIdentityFile(this.file, next);
    this.#current = next;
    this.#info = info;
    this.emit('change', next);
  }
}
