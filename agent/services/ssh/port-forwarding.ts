/**
 * SSH forwarding on the agent, allowed only when the authorization decision (the roles'
 * `permit_port_forwarding` / `permit_agent_forwarding` options) and the certificate's
 * `permit-*` extensions both allow it:
 *
 * - `ssh -L` (direct-tcpip): a TCP connection from this node to the host and port the
 *   client named, piped to the channel;
 * - `ssh -A`: agent-forwarding.ts.
 *
 * A refusal goes back to the client with its reason (OpenSSH prints "open failed:
 * administratively prohibited: <reason>") and to the audit trail.
 */
import net from 'node:net';
import type { ServerChannel, TcpipRequestInfo } from 'ssh2';
import type { Logger } from '../../../cluster/common/logger.ts';
import type { SshUserIdentity } from '../../../cluster/api/ssh-identity.ts';

/** What forwarding is decided from: the user, the roles' decision, the certificate's flags. */
export interface ForwardingGrant {
  identity: Pick<SshUserIdentity, 'username' | 'permit'>;
  decision: { permitPortForwarding?: boolean; permitAgentForwarding?: boolean };
}

/** The audit events forwarding emits (the SSH service adds who and where). */
export type ForwardingAuditEvent =
  | { event: 'ssh.request.deny'; target: string; reason: string }
  | { event: 'ssh.port_forward'; target: string };

const OPEN_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

/** Refuses a channel open with a reason code and a description OpenSSH shows (patched ssh2 passes them on). */
export function rejectWith(reject: () => void, code: number, description: string): void {
  (reject as (code: number, description: string) => void)(code, description.slice(0, 1024));
}

/** Why `ssh -L` is refused, or undefined when both the roles and the certificate permit it. */
export function portForwardingRefusal(auth: ForwardingGrant | undefined): string | undefined {
  if (!auth) return 'port forwarding needs a logged-in connection';
  if (!auth.decision.permitPortForwarding) return `port forwarding is not permitted for ${auth.identity.username}: no role sets options.permit_port_forwarding: true (or one sets it false)`;
  if (!auth.identity.permit.portForwarding) return 'the certificate does not permit port forwarding (no permit-port-forwarding); if a role now allows it, log in again';
  return undefined;
}

/** Why `ssh -A` is refused, or undefined when both the roles and the certificate permit it. */
export function agentForwardingRefusal(auth: ForwardingGrant): string | undefined {
  if (!auth.decision.permitAgentForwarding) return `agent forwarding is not permitted for ${auth.identity.username}: no role sets options.permit_agent_forwarding: true (or one sets it false)`;
  if (!auth.identity.permit.agentForwarding) return 'the certificate does not permit agent forwarding (no permit-agent-forwarding); if a role now allows it, log in again';
  return undefined;
}

/** Serves one direct-tcpip request: refuses it (`refusal` set), or connects and pipes. */
export function forwardDirectTcpip(request: {
  refusal: string | undefined;
  accept: () => ServerChannel;
  reject: () => void;
  info: TcpipRequestInfo;
  audit: (event: ForwardingAuditEvent) => void;
  logger?: Logger;
  connectionId: string;
}): void {
  const { info, audit, reject } = request;
  const target = `${info.destIP.includes(':') ? `[${info.destIP}]` : info.destIP}:${info.destPort}`;
  if (request.refusal !== undefined) {
    audit({ event: 'ssh.request.deny', target, reason: request.refusal });
    rejectWith(reject, OPEN_PROHIBITED, request.refusal);
    return;
  }
  const socket = net.connect({ host: info.destIP, port: info.destPort });
  let channel: ServerChannel | undefined;
  socket.once('connect', () => {
    channel = request.accept();
    audit({ event: 'ssh.port_forward', target });
    channel.on('error', (error: Error) => request.logger?.debug({ err: error, connectionId: request.connectionId, target }, 'forwarded channel error'));
    socket.pipe(channel);
    channel.pipe(socket);
    channel.once('close', () => socket.destroy());
    socket.once('close', () => channel?.end());
  });
  socket.on('error', (error) => {
    if (channel) return;
    const reason = `cannot connect to ${target} from this node: ${error.message}`;
    audit({ event: 'ssh.request.deny', target, reason });
    rejectWith(reject, OPEN_CONNECT_FAILED, reason);
  });
}
