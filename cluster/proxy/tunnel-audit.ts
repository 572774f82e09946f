import type { AuthClient } from '../api/auth-client.ts';

/** A reverse tunnel accepted or refused, for the cluster's audit log. */
export interface TunnelAuditEvent {
  outcome: 'allow' | 'deny';
  remoteAddr: string;
  hostId?: string;
  roles?: string[];
  reason?: string;
}

/** Sends a `tunnel.open` (allow) or `tunnel.refused` (deny) event through the auth API. */
export async function auditTunnel(auth: AuthClient, event: TunnelAuditEvent): Promise<void> {
  await auth.emitAudit({
    eventJson: JSON.stringify({
      type: event.outcome === 'allow' ? 'tunnel.open' : 'tunnel.refused',
      identity: { addr: event.remoteAddr.slice(0, 64), ...(event.hostId ? { host: event.hostId } : {}), ...(event.roles ? { roles: event.roles } : {}) },
      resource: { kind: 'tunnel', name: event.hostId ?? 'unknown host' },
      outcome: event.outcome,
      ...(event.reason ? { reason: event.reason.slice(0, 1024) } : {}),
    }),
  }, { deadlineMs: 5_000 });
}
