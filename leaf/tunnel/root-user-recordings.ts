/**
 * A root user's session recordings in this leaf, served to the root's proxy (its web
 * UI's recordings page) over the trust tunnel, after the leaf checked the user's
 * certificate against that root's user CA (root-tunnels.ts).
 *
 * ```
 * root proxy ── stream `recordings:list` (root user cert) ──> leaf proxy
 *   -> auth ListRecordings {user, user_cluster: root}: that user's sessions here -> JSON list
 * root proxy ── stream `recording:ID` ──> leaf proxy
 *   -> auth GetRecording ID; the record must name that user and that root (else 403) -> the bytes
 * ```
 *
 * Agents mark a root user's recordings with `user_cluster`; a leaf user of the same name
 * is someone else, and their recordings are never served this way.
 */
import { TunnelRejectedError, type IncomingDial } from '../../protocols/tunnel/index.ts';
import type { AuthClient } from '../../cluster/api/auth-client.ts';

export const RECORDINGS_LIST_SERVICE = 'recordings:list';
export const RECORDING_PREFIX = 'recording:';

/** True when `service` is one of the recording services. */
export function isRecordingService(service: string): boolean {
  return service === RECORDINGS_LIST_SERVICE || service.startsWith(RECORDING_PREFIX);
}

/** Serves one recording stream for `username` of `root`; rejects (before any byte) what they may not see. */
export async function serveRootUserRecordings(dial: IncomingDial, who: { auth: AuthClient; root: string; username: string }): Promise<void> {
  const { auth, root, username } = who;
  if (dial.service === RECORDINGS_LIST_SERVICE) {
    const { recordingsJson } = await auth.listRecordings({ user: username, userCluster: root, limit: 1000 }, { deadlineMs: 10_000 });
    const list = recordingsJson.map((line) => JSON.parse(line) as unknown);
    setImmediate(() => dial.stream.end(JSON.stringify(list)));
    return;
  }
  const sessionId = dial.service.slice(RECORDING_PREFIX.length);
  if (!/^[A-Za-z0-9-]{8,64}$/.test(sessionId)) throw new TunnelRejectedError(400, `"${sessionId.slice(0, 64)}" is not a session id`, { service: dial.service });
  let chunk = await auth.getRecording({ sessionId, offset: 0n }, { deadlineMs: 30_000 }).catch((error: Error) => {
    throw new TunnelRejectedError(404, error.message, { service: dial.service });
  });
  const record = JSON.parse(chunk.metadataJson) as { user?: string; user_cluster?: string };
  if (record.user !== username || record.user_cluster !== root) {
    throw new TunnelRejectedError(403, `session ${sessionId} is not a session of ${username} from cluster ${root}`, { service: dial.service });
  }
  const size = Number(chunk.size);
  // After this returns the tunnel answers 200; the bytes follow, piece by piece.
  setImmediate(() => void (async () => {
    let offset = 0;
    try {
      for (;;) {
        offset += chunk.data.length;
        if (!dial.stream.write(chunk.data)) await new Promise((resolve) => dial.stream.once('drain', resolve));
        if (offset >= size || chunk.data.length === 0) break;
        chunk = await auth.getRecording({ sessionId, offset: BigInt(offset) }, { deadlineMs: 30_000 });
      }
      dial.stream.end();
    } catch (error) {
      dial.stream.destroy(error as Error);
    }
  })());
}
