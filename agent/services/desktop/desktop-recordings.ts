/**
 * Desktop recordings on their way to auth: each `<id>.pdr` the session writes gets a
 * `<id>.json` beside it in the SSH recordings' metadata format (kind `desktop`, node =
 * the desktop's name), and the shared RecordingUploader sends both to auth once the
 * session ends, deleting the local copy only when auth holds it.
 *
 * ```
 * <recordings_dir>/<id>.pdr    PSTDREC1 frames (protocols/rdp/desktop-recording.ts)
 * <recordings_dir>/<id>.json   {session_id,user,login,node,kind:"desktop",started,width,height[,ended]}
 * ```
 *
 * A recording left unended by an agent that stopped is uploaded at the next start as
 * interrupted (the uploader's rule), so nothing recorded is lost.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { AuthClient } from '../../../cluster/api/auth-client.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import { DesktopRecorder, type RecordingHeader } from '../../../protocols/rdp/desktop-recording.ts';
import { RecordingUploader } from '../recordings/recording-uploader.ts';
import { writeMetadata, type RecordingMetadata } from '../recordings/session-recorder.ts';

export function pdrPath(dir: string, sessionId: string): string {
  return path.join(dir, `${sessionId}.pdr`);
}

/** A recorder that marks its metadata ended and asks for the upload when it closes. */
class UploadedDesktopRecorder extends DesktopRecorder {
  readonly #onClose: () => void;

  constructor(file: string, header: RecordingHeader, onClose: () => void) {
    super(file, header);
    this.#onClose = onClose;
  }

  override async close(): Promise<void> {
    await super.close();
    this.#onClose();
  }
}

export interface DesktopRecordingsOptions {
  auth: () => AuthClient;
  logger: Logger;
  intervalMs?: number;
}

/** Recorders and one uploader per recordings directory (desktops may each name their own). */
export class DesktopRecordings {
  readonly #o: DesktopRecordingsOptions;
  readonly #active = new Set<string>();
  readonly #uploaders = new Map<string, RecordingUploader>();
  #started = false;

  constructor(options: DesktopRecordingsOptions) {
    this.#o = options;
  }

  /** Registers a directory whose recordings this agent uploads (also those left by a previous run). */
  watch(dir: string): RecordingUploader {
    let uploader = this.#uploaders.get(dir);
    if (!uploader) {
      uploader = new RecordingUploader({ dir, auth: this.#o.auth, logger: this.#o.logger, active: () => this.#active, intervalMs: this.#o.intervalMs, dataPath: pdrPath });
      this.#uploaders.set(dir, uploader);
      if (this.#started) uploader.start();
    }
    return uploader;
  }

  /** Starts recording one session in `dir`; `userCluster` names a trusted root for its users. */
  start(dir: string, header: RecordingHeader, userCluster?: string): DesktopRecorder {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const uploader = this.watch(dir);
    const metadata: RecordingMetadata = {
      session_id: header.session_id, user: header.user, ...(userCluster ? { user_cluster: userCluster } : {}), login: header.login, node: header.desktop, kind: 'desktop',
      started: header.started_at, width: header.width, height: header.height,
    };
    this.#active.add(header.session_id);
    writeMetadata(dir, metadata);
    try {
      return new UploadedDesktopRecorder(pdrPath(dir, header.session_id), header, () => {
        try {
          writeMetadata(dir, { ...metadata, ended: new Date().toISOString() });
        } catch (error) {
          this.#o.logger.warn({ err: error, session_id: header.session_id }, 'cannot mark the desktop recording ended; it is uploaded as interrupted');
        }
        this.#active.delete(header.session_id);
        uploader.trigger();
      });
    } catch (error) {
      this.#active.delete(header.session_id);
      throw error;
    }
  }

  startUploads(): void {
    this.#started = true;
    for (const uploader of this.#uploaders.values()) uploader.start();
  }

  stopUploads(): void {
    this.#started = false;
    for (const uploader of this.#uploaders.values()) uploader.stop();
  }

  /** Uploads what is pending now and waits (tests, shutdown). */
  async uploadAll(): Promise<void> {
    for (const uploader of this.#uploaders.values()) await uploader.uploadAll();
  }

  get pending(): number {
    return [...this.#uploaders.values()].reduce((sum, u) => sum + u.pending, 0);
  }
}
