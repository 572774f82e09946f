/**
 * An identity on disk: a private key with the certificates issued for it and the CAs
 * to trust. Agents keep theirs in the data directory, the auth server writes a local
 * admin identity for `pctl` on the auth host, and `pbot` writes them for machines.
 * One JSON file, written atomically with mode 0600.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { BadInputError, PosternError } from '../../protocols/errors.ts';
import { formatIssues } from '../common/validation.ts';
import { writeFileAtomic } from '../common/atomic-file.ts';

const identityFileSchema = z.strictObject({
  version: z.literal(1),
  cluster: z.string(),
  /** PKCS#8 PEM; never leaves the machine it was generated on. */
  key_pem: z.string().includes('PRIVATE KEY'),
  cert_pem: z.string().includes('BEGIN CERTIFICATE'),
  /** X.509 CA certificates to trust for the peer (host CA for servers). */
  ca_pems: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
  ssh_cert: z.string().optional(),
  ssh_key_pem: z.string().optional(),
  auth_addr: z.string().optional(),
  proxy_addr: z.string().optional(),
  host_id: z.string().optional(),
});

export type IdentityFile = z.output<typeof identityFileSchema>;

/** Raised for an identity file that exists but cannot be used; the message names the file and the fix. */
export class IdentityFileError extends PosternError {
  constructor(message: string) {
    super('PST_IDENTITY_FILE', message);
  }
}

/** Reads and validates an identity file. */
export async function readIdentityFile(file: string, fix: string): Promise<IdentityFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new IdentityFileError(`identity file ${file} does not exist; ${fix}`);
    throw new IdentityFileError(`cannot read identity file ${file}: ${(error as Error).message}; ${fix}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new IdentityFileError(`identity file ${file} is corrupted (not JSON); move it aside and ${fix}`);
  }
  const parsed = identityFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new IdentityFileError(`identity file ${file} is corrupted:\n${formatIssues(file, parsed.error.issues)}\nmove it aside and ${fix}`);
  }
  return parsed.data;
}

/** Writes an identity file atomically (temp file, fsync, rename) with mode 0600. */
export async function writeIdentityFile(file: string, identity: IdentityFile): Promise<void> {
  const parsed = identityFileSchema.safeParse(identity);
  if (!parsed.success) throw new BadInputError(formatIssues(file, parsed.error.issues));
  await writeFileAtomic(file, JSON.stringify(parsed.data, null, 2) + '\n', 0o600);
}

export { writeFileAtomic } from '../common/atomic-file.ts';
