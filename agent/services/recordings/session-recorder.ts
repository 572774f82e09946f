/**
 * Writes one terminal session (SSH shell or exec, Kubernetes exec or attach) as an asciicast v2 file while it runs, in the agent's
 * recordings directory, beside a metadata file the uploader reads:
 *
 *   <dir>/<session id>.cast   header line, then [seconds, "o", text] and [seconds, "r", "COLSxROWS"]
 *   <dir>/<session id>.json   who, which login, node, command, started; `ended` once it ends
 *
 * The output is decoded as UTF-8 across chunk boundaries (asciicast events are JSON
 * strings). The files stay until auth has the whole recording (recording-uploader.ts),
 * so a crash of the agent mid-session leaves a playable prefix that is uploaded at the
 * next start, marked interrupted.
 */
import { createWriteStream, mkdirSync, writeFileSync, renameSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** What the agent says about a session; the auth's recording metadata (recording-store.ts) without what auth adds. */
export interface RecordingMetadata {
  session_id: string;
  user: string;
  /** The trusted root that issued the user's certificate (a root user's session in this leaf). */
  user_cluster?: string;
  login: string;
  node: string;
  /** shell, exec: SSH (asciicast); kube: a Kubernetes exec or attach (asciicast); desktop: a desktop session (agent/services/desktop/desktop-recordings.ts). */
  kind: 'shell' | 'exec' | 'kube' | 'desktop';
  command?: string;
  /** kube: the pod as NAMESPACE/NAME, and the container when the request named one. */
  pod?: string;
  container?: string;
  connection_id?: string;
  started: string;
  ended?: string;
  interrupted?: boolean;
  width?: number;
  height?: number;
}

export interface SessionRecording {
  readonly sessionId: string;
  output(data: Buffer | string): void;
  resize(cols: number, rows: number): void;
  /** Finishes the file and marks the metadata ended. */
  close(): Promise<void>;
}

export function castPath(dir: string, sessionId: string): string {
  return path.join(dir, `${sessionId}.cast`);
}

export function metadataPath(dir: string, sessionId: string): string {
  return path.join(dir, `${sessionId}.json`);
}

/** Writes the metadata atomically (a crash leaves the old or the new file, never half of one). */
export function writeMetadata(dir: string, metadata: RecordingMetadata): void {
  const file = metadataPath(dir, metadata.session_id);
  writeFileSync(`${file}.tmp`, JSON.stringify(metadata), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Starts recording a session; `onClosed` runs once the files are complete. */
export function startRecording(dir: string, metadata: Omit<RecordingMetadata, 'started' | 'ended'>, env: { TERM: string; SHELL: string }, onClosed: (sessionId: string) => void): SessionRecording {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started = new Date();
  const meta: RecordingMetadata = { ...metadata, started: started.toISOString() };
  writeMetadata(dir, meta);
  const out: WriteStream = createWriteStream(castPath(dir, meta.session_id), { flags: 'a', mode: 0o600 });
  out.on('error', () => {});
  const t0 = performance.now();
  const header = {
    version: 2,
    width: meta.width ?? 80,
    height: meta.height ?? 24,
    timestamp: Math.floor(started.getTime() / 1000),
    ...(meta.command !== undefined ? { command: meta.command } : {}),
    title: `${meta.user} as ${meta.login}@${meta.node}`,
    env,
  };
  out.write(`${JSON.stringify(header)}\n`);
  const decoder = new StringDecoder('utf8');
  const elapsed = () => Math.round(performance.now() - t0) / 1000;
  let closed = false;
  return {
    sessionId: meta.session_id,
    output(data) {
      if (closed) return;
      const text = typeof data === 'string' ? data : decoder.write(data);
      if (text.length > 0) out.write(`${JSON.stringify([elapsed(), 'o', text])}\n`);
    },
    resize(cols, rows) {
      if (!closed) out.write(`${JSON.stringify([elapsed(), 'r', `${cols}x${rows}`])}\n`);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      const rest = decoder.end();
      if (rest.length > 0) out.write(`${JSON.stringify([elapsed(), 'o', rest])}\n`);
      return new Promise<void>((resolve) => {
        out.end(() => {
          try {
            writeMetadata(dir, { ...meta, ended: new Date().toISOString() });
          } catch {
            // The uploader finishes an unended recording as interrupted.
          }
          onClosed(meta.session_id);
          resolve();
        });
      });
    },
  };
}
