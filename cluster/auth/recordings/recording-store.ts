/**
 * Session recordings at auth: SSH sessions and Kubernetes execs as asciicast v2 files (`<session id>.cast`)
 * and desktop sessions as PSTDREC1 files (`<session id>.pdr`) under
 * `<data_dir>/recordings/`, their metadata (`kind` says which) in the backend under
 * `/recordings/<session id>`.
 *
 * An agent uploads a finished recording in pieces (`upload`); the pieces are appended
 * to a partial file named for the session and the uploading host, and the answer is
 * always how many bytes are held, so an agent (or auth) that restarted resumes where
 * the last committed piece ended. The final piece fsyncs the file, renames it into
 * place and only then writes the metadata: a recording is listed only when complete,
 * and the agent deletes its copy only after that answer.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Backend } from '../backend/backend.ts';
import { AlreadyExistsError, BadInputError, NotFoundError } from '../../../protocols/errors.ts';
import { parseWith } from '../../common/validation.ts';

const prefix = '/recordings/';
/** Largest piece one upload call carries (the gRPC message limit is 16 MiB). */
export const maxRecordingChunkBytes = 4 * 1024 * 1024;
/** Largest recording kept; an agent's copy beyond it is refused whole. */
export const maxRecordingBytes = 2 * 1024 * 1024 * 1024;

export const sessionIdSchema = z.string().regex(/^[A-Za-z0-9-]{8,64}$/, { error: 'expected a session id (8-64 letters, digits or dashes)' });

/** What the agent says about the session, checked at the edge. */
export const recordingMetadataSchema = z.strictObject({
  session_id: sessionIdSchema,
  user: z.string().min(1).max(253),
  login: z.string().min(1).max(253),
  node: z.string().min(1).max(1024),
  /** shell and exec: SSH sessions (asciicast v2); kube: a Kubernetes exec or attach (asciicast v2, node = the cluster, login = the impersonated user); desktop: a desktop session (PSTDREC1, protocols/rdp/desktop-recording.ts). */
  kind: z.enum(['shell', 'exec', 'kube', 'desktop']),
  command: z.string().max(8192).optional(),
  /** kube: NAMESPACE/POD and the container, when named. */
  pod: z.string().max(512).optional(),
  container: z.string().max(253).optional(),
  connection_id: z.string().max(64).optional(),
  started: z.iso.datetime(),
  ended: z.iso.datetime(),
  /** The trusted root that issued the user's certificate, for a root user's session in this leaf. */
  user_cluster: z.string().min(1).max(253).optional(),
  /** True when the agent stopped before the session ended (the recording stops there). */
  interrupted: z.boolean().optional(),
  width: z.number().int().min(1).max(10_000).optional(),
  height: z.number().int().min(1).max(10_000).optional(),
});
export type RecordingMetadata = z.output<typeof recordingMetadataSchema>;

/** The stored record: the agent's metadata plus what auth knows itself. */
export interface StoredRecording extends RecordingMetadata {
  size: number;
  sha256: string;
  /** The host id of the agent that uploaded it (from its certificate). */
  host_id: string;
  uploaded: string;
}

export class RecordingStore {
  readonly #backend: Backend;
  readonly #dir: string;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(backend: Backend, dir: string) {
    this.#backend = backend;
    this.#dir = dir;
  }

  /** Appends one piece; see the file comment. */
  async upload(hostId: string, piece: { sessionId: string; offset: number; data: Uint8Array; final: boolean; metadataJson: string }, now: Date): Promise<{ received: number; complete: boolean; stored?: StoredRecording }> {
    const sessionId = parseWith(sessionIdSchema, piece.sessionId, 'recording session_id');
    if (piece.data.length > maxRecordingChunkBytes) throw new BadInputError(`recording ${sessionId}: a piece of ${piece.data.length} bytes is over the ${maxRecordingChunkBytes}-byte limit; send smaller pieces`);
    return this.#serialized(sessionId, async () => {
      const existing = await this.get(sessionId).catch((error: unknown) => {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      });
      if (existing) return { received: existing.size, complete: true };
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      const partial = this.#partialPath(sessionId, hostId);
      const size = await stat(partial).then((s) => s.size, () => 0);
      // Out of step (a resend, or a sender that restarted): say where to continue.
      if (piece.offset !== size) return { received: size, complete: false };
      if (size + piece.data.length > maxRecordingBytes) {
        await rm(partial, { force: true });
        throw new BadInputError(`recording ${sessionId} is over the ${maxRecordingBytes}-byte limit and was refused`);
      }
      const file = await open(partial, 'a', 0o600);
      try {
        if (piece.data.length > 0) await file.write(piece.data);
        if (piece.final) await file.sync();
      } finally {
        await file.close();
      }
      const received = size + piece.data.length;
      if (!piece.final) return { received, complete: false };
      let raw: unknown;
      try {
        raw = JSON.parse(piece.metadataJson);
      } catch {
        throw new BadInputError(`recording ${sessionId}: the metadata is not JSON`);
      }
      const metadata = parseWith(recordingMetadataSchema, raw, `recording ${sessionId} metadata`);
      if (metadata.session_id !== sessionId) throw new BadInputError(`recording ${sessionId}: the metadata names session ${metadata.session_id}`);
      const sha256 = await hashFile(partial);
      await rename(partial, this.#filePath(sessionId, metadata.kind));
      const stored: StoredRecording = { ...metadata, size: received, sha256, host_id: hostId, uploaded: now.toISOString() };
      try {
        await this.#backend.create({ key: prefix + sessionId, value: JSON.stringify(stored) });
      } catch (error) {
        if (!(error instanceof AlreadyExistsError)) throw error;
      }
      await this.#removeOtherPartials(sessionId);
      return { received, complete: true, stored };
    });
  }

  /** One recording's metadata; NotFoundError if none is stored. */
  async get(sessionId: string): Promise<StoredRecording> {
    const id = parseWith(sessionIdSchema, sessionId, 'session id');
    const item = await this.#backend.get(prefix + id);
    if (!item) throw new NotFoundError(`no recording of session ${id}; list them with psh recordings ls (a session still running, or not yet uploaded by its agent, is not listed)`);
    return JSON.parse(item.value) as StoredRecording;
  }

  /** Recordings, newest first, optionally of one user; `userCluster` a trusted root's users only, '' this cluster's only. */
  async list(filter: { user?: string; userCluster?: string; limit: number }): Promise<StoredRecording[]> {
    const items = await this.#backend.range(prefix);
    return items
      .map((item) => JSON.parse(item.value) as StoredRecording)
      .filter((r) => filter.user === undefined || r.user === filter.user)
      .filter((r) => filter.userCluster === undefined || (r.user_cluster ?? '') === filter.userCluster)
      .sort((a, b) => b.started.localeCompare(a.started))
      .slice(0, filter.limit);
  }

  /** Up to `length` bytes of the recording from `offset`. */
  async read(sessionId: string, offset: number, length: number): Promise<Buffer> {
    const record = await this.get(sessionId);
    if (offset < 0 || offset > record.size) throw new BadInputError(`offset ${offset} is outside recording ${sessionId} (${record.size} bytes)`);
    const file = await open(this.#filePath(record.session_id, record.kind), 'r');
    try {
      const buffer = Buffer.alloc(Math.min(length, record.size - offset));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  #filePath(sessionId: string, kind: RecordingMetadata['kind']): string {
    return path.join(this.#dir, `${sessionId}.${kind === 'desktop' ? 'pdr' : 'cast'}`);
  }

  #partialPath(sessionId: string, hostId: string): string {
    // Per uploading host, so another host cannot append to (or finish) this host's upload.
    const host = createHash('sha256').update(hostId).digest('hex').slice(0, 16);
    return path.join(this.#dir, `${sessionId}.${host}.part`);
  }

  async #removeOtherPartials(sessionId: string): Promise<void> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(`${sessionId}.`) && n.endsWith('.part')).map((n) => rm(path.join(this.#dir, n), { force: true })));
  }

  async #serialized<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(run);
    this.#locks.set(key, next);
    try {
      return await next;
    } finally {
      if (this.#locks.get(key) === next) this.#locks.delete(key);
    }
  }
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer);
  } finally {
    await handle.close().catch(() => undefined);
  }
  return hash.digest('hex');
}
