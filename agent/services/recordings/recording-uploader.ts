/**
 * Uploads finished session recordings (SSH, and desktop ones: `dataPath`) from an
 * agent's recordings directory to auth
 * (`UploadRecording`, 1 MiB pieces, resuming from what auth says it holds), and
 * deletes the local files only once auth answers that the recording is complete.
 *
 * Runs at start (recordings left by a previous run: those never marked ended are
 * finished as `interrupted`, ended at their file's last write), after each session,
 * and every `intervalMs` while anything is pending, so an agent or auth restart, or
 * an auth outage, loses nothing.
 */
import { open, readFile, readdir, rm, stat } from 'node:fs/promises';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { castPath, metadataPath, writeMetadata, type RecordingMetadata } from './session-recorder.ts';

const pieceBytes = 1024 * 1024;
const callDeadline = { deadlineMs: 30_000 };

export interface RecordingUploaderOptions {
  dir: string;
  auth: () => AuthClient;
  logger: Logger;
  /** Sessions still being recorded by this process (not to be uploaded yet). */
  active: () => ReadonlySet<string>;
  /** Retry period while recordings are pending. Default 30 s. */
  intervalMs?: number;
  /** The data file of a recording beside its `<id>.json`. Default `<id>.cast` (SSH); desktops give `<id>.pdr`. */
  dataPath?: (dir: string, sessionId: string) => string;
}

export class RecordingUploader {
  readonly #options: RecordingUploaderOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  #failures = 0;
  /** Recordings waiting for upload, after the last pass. */
  pending = 0;

  constructor(options: RecordingUploaderOptions) {
    this.#options = options;
  }

  start(): void {
    this.#stopped = false;
    this.trigger();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Runs a pass now (or right after the one in progress). */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.uploadAll().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.trigger();
      } else if (this.pending > 0 && !this.#stopped) {
        const every = this.#options.intervalMs ?? 30_000;
        this.#timer = setTimeout(() => this.trigger(), Math.min(every, 1_000 * 2 ** Math.min(this.#failures, 5)));
        this.#timer.unref();
      }
    });
  }

  /** One pass over the directory; resolves when done (failures are logged and retried later). */
  async uploadAll(): Promise<void> {
    const { dir } = this.#options;
    const names = await readdir(dir).catch(() => [] as string[]);
    const ids = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
    const active = this.#options.active();
    let pending = 0;
    for (const id of ids) {
      if (active.has(id)) continue;
      try {
        await this.#uploadOne(id);
        this.#failures = 0;
      } catch (error) {
        pending++;
        if (this.#failures++ === 0) this.#options.logger.warn({ err: error, session_id: id }, 'cannot upload a session recording to auth; keeping it on disk and retrying');
      }
    }
    this.pending = pending;
  }

  async #uploadOne(id: string): Promise<void> {
    const { dir } = this.#options;
    let metadata = JSON.parse(await readFile(metadataPath(dir, id), 'utf8')) as RecordingMetadata;
    const cast = (this.#options.dataPath ?? castPath)(dir, id);
    const info = await stat(cast).catch(() => undefined);
    if (!info) {
      this.#options.logger.error({ session_id: id }, 'a session recording lost its data file; dropping its metadata');
      await rm(metadataPath(dir, id), { force: true });
      return;
    }
    if (metadata.ended === undefined) {
      // Left by a previous run that stopped mid-session.
      metadata = { ...metadata, ended: info.mtime.toISOString(), interrupted: true };
      writeMetadata(dir, metadata);
    }
    const file = await open(cast, 'r');
    try {
      let offset = 0;
      // Each answer moves the offset forward or back to what auth holds; bound the loop all the same.
      for (let calls = 0; ; calls++) {
        if (calls > 2 * Math.ceil(info.size / pieceBytes) + 8) throw new Error(`auth keeps answering out of step for recording ${id}`);
        const buffer = Buffer.alloc(Math.min(pieceBytes, info.size - offset));
        const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
        const data = buffer.subarray(0, bytesRead);
        const final = offset + bytesRead >= info.size;
        const answer = await this.#options.auth().uploadRecording(
          { sessionId: id, offset: BigInt(offset), data, final, metadataJson: final ? JSON.stringify(metadata) : '' },
          callDeadline,
        );
        if (answer.complete) break;
        const received = Number(answer.received);
        if (received > info.size) throw new Error(`auth holds ${received} bytes of recording ${id}, more than the ${info.size} on disk`);
        if (final && received === info.size) throw new Error(`auth did not complete recording ${id}`);
        offset = received;
      }
    } finally {
      await file.close();
    }
    await rm(cast, { force: true });
    await rm(metadataPath(dir, id), { force: true });
    this.#options.logger.info({ session_id: id, bytes: info.size }, 'session recording uploaded');
  }
}
