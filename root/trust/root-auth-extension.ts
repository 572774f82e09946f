/**
 * The root side of trust in the Auth Service.
 *
 * ```
 * leaf auth ──POST /v1/trusted-clusters/validate──> root proxy ──ValidateTrustedCluster──> root auth
 *            {token, leaf name, leaf host CA}                     consume token (type trusted_cluster)
 *                                                                 store the leaf's host CA (remote)
 *                                                                 record remote_cluster (token labels)
 *            <── root user CA + host CA (public) ─────────────────
 * ```
 *
 * `remote_cluster` records are made only by a join; deleting one removes the leaf's
 * host CA too, so its tunnel is refused and its users' routes end. Root proxies
 * report which leaves are connected in their heartbeats; the view adds that status.
 */
import { AlreadyExistsError, BadInputError } from '../../protocols/errors.ts';
import { auditEventSchema } from '../../cluster/auth/audit/audit-event.ts';
import type { AuthDeps } from '../../cluster/auth/api/auth-deps.ts';
import type { AuthExtension, AuthHandlers } from '../../cluster/auth/api/auth-extension.ts';
import { auditIdentity } from '../../cluster/auth/api/authorizer.ts';
import { publicAuthorityOf } from '../../cluster/auth/pki/authorities.ts';
import type { Resource } from '../../cluster/access/resources/resource.ts';
import type { RemoteCluster } from '../../cluster/access/resources/trusted-cluster.ts';

const tunnelsPrefix = '/trust/proxy_tunnels/';
const auditCursorPrefix = '/trust/audit_cursor/';
const auditSeenPrefix = '/trust/audit_seen/';
/** How long a forwarded leaf event id is remembered (re-pulls come from the cursor, minutes back at most). */
const auditSeenTtlMs = 7 * 86_400_000;
const leafEventSchema = auditEventSchema;
const seenPrefix = '/trust/cluster_seen/';
/** A proxy's report is trusted this long; proxies beat every 10 s and on every tunnel change. */
const reportTtlMs = 35_000;

interface _TunnelReport {
  clusters: string[];
  at: string;
}

/** Adds ValidateTrustedCluster, the remote_cluster hooks and leaf presence to the root's auth. */
export function rootAuthExtension(): AuthExtension {
  return {
    handlers: (deps) => ({ validateTrustedCluster: validateHandler(deps), forwardLeafAudit: forwardAuditHandler(deps) }),
    resourceHooks: (deps) => ({
      remote_cluster: {
        async beforeWrite() {
          throw new BadInputError('remote_cluster records are made when a leaf joins (its trusted_cluster resource with a root token); create a token with: pctl tokens add --type=trusted_cluster');
        },
        async afterDelete(name) {
          const removed = await deps.authorities.removeRemote(name);
          deps.logger.info({ cluster: name, removed }, 'remote cluster deleted: its host CA is no longer trusted');
        },
        view: async (resources, ctx) => {
          const status = await clusterStatus(deps);
          let visible = resources;
          const identity = ctx.identity;
          if (identity?.kind === 'user') {
            const checker = await deps.authorizer.checkerFor(identity);
            // Reading the records is not reaching the leaves: only admins (delete rights) see every leaf.
            if (!checker.checkResource('remote_cluster', 'delete').allowed) {
              visible = resources.filter((r) => checker.checkCluster({ name: r.metadata.name, labels: r.metadata.labels ?? {} }).allowed);
            }
          }
          return visible.map((r) => ({ ...r, status: status(r.metadata.name) }));
        },
      },
    }),
    async onHeartbeat(deps, beat) {
      const clusters = beat.connectedClusters.filter((name) => /^[A-Za-z0-9._-]{1,253}$/.test(name)).slice(0, 1000);
      const now = deps.clock.now();
      const report: _TunnelReport = { clusters, at: now.toISOString() };
      await deps.backend.put({ key: tunnelsPrefix + beat.hostId, value: JSON.stringify(report), expires: new Date(now.getTime() + reportTtlMs) });
      for (const cluster of clusters) await deps.backend.put({ key: seenPrefix + cluster, value: JSON.stringify({ at: now.toISOString() }) });
    },
  };
}

function validateHandler(deps: AuthDeps): AuthHandlers['validateTrustedCluster'] {
  return async (request, ctx) => {
    await deps.authorizer.requireSystemRole(ctx, 'relay a trusted cluster join', ['proxy']);
    const leaf = request.leafCluster;
    try {
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/.test(leaf)) throw new BadInputError(`"${leaf}" is not a cluster name`);
      if (leaf === deps.clusterName) throw new BadInputError(`the leaf is named ${leaf}, like this root; trusted clusters need distinct names`);
      const token = await deps.tokens.consume(request.token, { role: 'trusted_cluster', consumer: leaf });
      await deps.authorities.putRemote({ cluster: leaf, kind: 'host', tlsCertPems: request.hostCaTlsPems, sshPublicKeys: request.hostCaSshKeys });
      const record: RemoteCluster = {
        kind: 'remote_cluster',
        version: 'v1',
        metadata: { name: leaf, ...(Object.keys(token.labels).length > 0 ? { labels: token.labels } : {}) },
        spec: { joined: deps.clock.now().toISOString() },
      };
      await deps.resources.put(record as Resource, { upsert: true });
      await deps.audit.emit({
        type: 'trusted_cluster.join',
        identity: auditIdentity(ctx),
        resource: { kind: 'remote_cluster', name: leaf },
        outcome: 'success',
        fields: { token: token.id, labels: token.labels },
      });
    } catch (error) {
      await deps.audit.emit({
        type: 'trusted_cluster.join',
        identity: auditIdentity(ctx),
        resource: { kind: 'remote_cluster', name: leaf.slice(0, 253) || 'unknown' },
        outcome: 'failure',
        reason: (error as Error).message.slice(0, 1024),
      });
      throw error;
    }
    const user = publicAuthorityOf(deps.authorities.get('user'));
    const host = publicAuthorityOf(deps.authorities.get('host'));
    return {
      rootCluster: deps.clusterName,
      userCaTlsPems: user.tlsCertPems,
      userCaSshKeys: user.sshPublicKeys,
      hostCaTlsPems: host.tlsCertPems,
      hostCaSshKeys: host.sshPublicKeys,
    };
  };
}

/**
 * Stores events a root proxy pulled from a leaf: each leaf event id once (a marker key
 * is created first; losing that race means another proxy stored it), with the leaf's
 * id and time in `fields`, so `pctl audit search --cluster LEAF` finds them. The cursor
 * (the newest leaf time stored) lets the next pull start where this one ended.
 */
function forwardAuditHandler(deps: AuthDeps): AuthHandlers['forwardLeafAudit'] {
  return async (request, ctx) => {
    await deps.authorizer.requireSystemRole(ctx, 'forward leaf audit events', ['proxy']);
    const leaf = request.leafCluster;
    await deps.resources.get('remote_cluster', leaf); // NotFound: not a leaf of this root
    const cursorKey = `${auditCursorPrefix}${leaf}`;
    let cursor = (await deps.backend.get(cursorKey))?.value ?? '';
    let stored = 0;
    for (const text of request.eventsJson.slice(0, 1000)) {
      const event = leafEventSchema.safeParse(JSON.parse(text));
      if (!event.success || event.data.cluster !== leaf) continue;
      const { id, time, cluster: _cluster, fields, ...rest } = event.data;
      try {
        await deps.backend.create({ key: `${auditSeenPrefix}${leaf}/${id}`, value: time, expires: new Date(deps.clock.now().getTime() + auditSeenTtlMs) });
      } catch (error) {
        if (error instanceof AlreadyExistsError) continue;
        throw error;
      }
      await deps.audit.emit({ ...rest, fields: { ...fields, leaf_cluster: leaf, leaf_event_id: id, leaf_time: time } });
      stored++;
      if (time > cursor) cursor = time;
    }
    // Reads are inclusive of the cursor time, so moving it to the scanned time loses nothing at that instant.
    if (request.scannedTo && !Number.isNaN(Date.parse(request.scannedTo)) && request.scannedTo > cursor) cursor = request.scannedTo;
    if (cursor !== ((await deps.backend.get(cursorKey))?.value ?? '')) await deps.backend.put({ key: cursorKey, value: cursor });
    return { stored, cursor };
  };
}

/** online / last heartbeat of each leaf, from the proxies' reports. */
async function clusterStatus(deps: AuthDeps): Promise<(name: string) => { state: 'online' | 'offline'; last_heartbeat?: string }> {
  const now = deps.clock.now().getTime();
  const online = new Set<string>();
  for (const item of await deps.backend.range(tunnelsPrefix)) {
    const report = JSON.parse(item.value) as _TunnelReport;
    if (now - Date.parse(report.at) < reportTtlMs) for (const cluster of report.clusters) online.add(cluster);
  }
  const seen = new Map<string, string>();
  for (const item of await deps.backend.range(seenPrefix)) seen.set(item.key.slice(seenPrefix.length), (JSON.parse(item.value) as { at: string }).at);
  return (name) => ({ state: online.has(name) ? 'online' : 'offline', ...(seen.has(name) ? { last_heartbeat: seen.get(name) } : {}) });
}
