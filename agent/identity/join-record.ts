/**
 * What the agent remembers of its join besides the identity (`agent-join.json`, next
 * to `agent-identity.json`): the node name it joined as, the labels the token gave it
 * and those given to `postern join --labels`. The heartbeat sends them with the
 * config's labels.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { IdentityFileError, writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { formatIssues } from '../../cluster/common/validation.ts';
import { rejoinHint } from './agent-identity.ts';

const labelMap = z.record(z.string().min(1), z.string());

const joinRecordSchema = z.strictObject({
  version: z.literal(1),
  host_id: z.string(),
  node_name: z.string(),
  /** Labels of the token the host joined with; set by the admin who made the token. */
  token_labels: labelMap,
  /** Labels given to `postern join --labels`. */
  labels: labelMap,
  joined_at: z.string(),
});

export type JoinRecord = z.output<typeof joinRecordSchema>;

/** Where an agent with data directory `dataDir` keeps its join record. */
export function joinRecordPath(dataDir: string): string {
  return path.join(dataDir, 'agent-join.json');
}

/** Reads the join record; undefined when there is none. Throws IdentityFileError naming the file when it is corrupted. */
export async function readJoinRecord(dataDir: string): Promise<JoinRecord | undefined> {
  const file = joinRecordPath(dataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdentityFileError(`cannot read join record ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new IdentityFileError(`join record ${file} is corrupted (not JSON); move it and agent-identity.json aside and ${rejoinHint(dataDir)}`);
  }
  const parsed = joinRecordSchema.safeParse(raw);
  if (!parsed.success) {
    throw new IdentityFileError(`join record ${file} is corrupted:\n${formatIssues(file, parsed.error.issues)}\nmove it and agent-identity.json aside and ${rejoinHint(dataDir)}`);
  }
  return parsed.data;
}

/** Writes the join record atomically with mode 0600. */
export async function writeJoinRecord(dataDir: string, record: JoinRecord): Promise<void> {
  await writeFileAtomic(joinRecordPath(dataDir), JSON.stringify(joinRecordSchema.parse(record), null, 2) + '\n', 0o600);
}
