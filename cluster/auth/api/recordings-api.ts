/**
 * Session recordings over the API: agents upload what they recorded; users list and
 * read them. A user sees their own recordings; a role that allows `list` (to list) or
 * `read` (to play) on `session_recording` — the built-in auditor and editor roles do —
 * sees everyone's. Each upload that completes is an audit event.
 */
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { AccessDeniedError, BadInputError } from '../../../protocols/errors.ts';
import { maxRecordingChunkBytes, type StoredRecording } from '../recordings/recording-store.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

const recordingKind = 'session_recording';
const maxListLimit = 10_000;

/** The recordings handlers. */
export function recordingsApi(deps: AuthDeps): Pick<Handlers, 'uploadRecording' | 'listRecordings' | 'getRecording'> {
  /** True when the caller may see every user's recordings for `verb`. */
  const seesAll = async (ctx: CallContext, verb: 'list' | 'read'): Promise<boolean> => {
    const identity = deps.authorizer.requireIdentity(ctx);
    if (identity.kind === 'host') return identity.systemRoles.includes('admin');
    return (await deps.authorizer.checkerFor(identity)).checkResource(recordingKind, verb).allowed;
  };

  return {
    async uploadRecording(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'upload session recordings', ['node']);
      const identity = deps.authorizer.requireIdentity(ctx);
      const hostId = identity.kind === 'host' ? identity.hostId : 'unknown';
      const result = await deps.recordings.upload(
        hostId,
        { sessionId: request.sessionId, offset: Number(request.offset), data: request.data, final: request.final, metadataJson: request.metadataJson },
        deps.clock.now(),
      );
      if (result.stored) await deps.audit.emit(uploadedEvent(result.stored));
      return { received: BigInt(result.received), complete: result.complete };
    },

    async listRecordings(request, ctx) {
      const identity = deps.authorizer.requireIdentity(ctx);
      if (request.userCluster) {
        // A leaf proxy for a root user whose certificate it checked: that user's sessions here only.
        await deps.authorizer.requireSystemRole(ctx, 'list a trusted root user\'s recordings', ['proxy']);
        if (!request.user) throw new BadInputError('list recordings: user_cluster needs user');
        const limit = request.limit > 0 ? Math.min(request.limit, maxListLimit) : 1000;
        const list = await deps.recordings.list({ user: request.user, userCluster: request.userCluster, limit });
        return { recordingsJson: list.map((r) => JSON.stringify(r)) };
      }
      const all = await seesAll(ctx, 'list');
      if (!all && identity.kind !== 'user') throw new AccessDeniedError('only users and admin hosts list session recordings');
      const own = identity.kind === 'user' ? identity.username : undefined;
      const user = all ? request.user || undefined : own;
      if (!all && request.user && request.user !== own) {
        throw new AccessDeniedError(`you may list only your own recordings; listing ${request.user}'s needs a role allowing list on ${recordingKind} (such as auditor)`);
      }
      const limit = request.limit > 0 ? Math.min(request.limit, maxListLimit) : 1000;
      // A user's own are their sessions as this cluster's user (a root's user of the same name is someone else).
      const list = await deps.recordings.list({ user, limit, ...(all ? {} : { userCluster: '' }) });
      return { recordingsJson: list.map((r) => JSON.stringify(r)) };
    },

    async getRecording(request, ctx) {
      const identity = deps.authorizer.requireIdentity(ctx);
      const record = await deps.recordings.get(request.sessionId);
      const own = identity.kind === 'user' && identity.username === record.user && !record.user_cluster;
      // A root user's session here is read by a leaf proxy on their behalf (it checks the user and root).
      const forRoot = identity.kind === 'host' && identity.systemRoles.includes('proxy') && record.user_cluster !== undefined;
      if (!own && !forRoot && !(await seesAll(ctx, 'read'))) {
        await deps.audit.emit({
          type: 'access.denied',
          identity: identity.kind === 'user' ? { user: identity.username, roles: identity.roles, addr: ctx.peerAddr } : { host: identity.hostId, addr: ctx.peerAddr },
          resource: { kind: recordingKind, name: record.session_id },
          outcome: 'deny',
          reason: `not the user's own session and no role allows read on ${recordingKind}`,
        });
        throw new AccessDeniedError(`session ${record.session_id} belongs to another user; playing it needs a role allowing read on ${recordingKind} (such as auditor)`);
      }
      const data = await deps.recordings.read(record.session_id, Number(request.offset), maxRecordingChunkBytes);
      return { data, size: BigInt(record.size), metadataJson: JSON.stringify(record) };
    },
  };
}

function uploadedEvent(record: StoredRecording) {
  return {
    type: 'session.recording',
    identity: { user: record.user },
    resource: { kind: record.kind === 'desktop' ? 'desktop' : record.kind === 'kube' ? 'kube_cluster' : 'node', name: record.node },
    outcome: 'success' as const,
    fields: { session_id: record.session_id, login: record.login, size: record.size, sha256: record.sha256, emitted_by: record.host_id },
  };
}
