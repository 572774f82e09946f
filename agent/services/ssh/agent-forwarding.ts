/**
 * `ssh -A`: a Unix socket on this host, owned by the session's account (in a 0700
 * directory of its own), whose every connection becomes an `auth-agent@openssh.com`
 * channel back to the client, where the user's ssh-agent answers. The session gets
 * SSH_AUTH_SOCK pointing at it; the socket and directory go when the session ends.
 */
import { chown, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Connection, ServerChannel } from 'ssh2';
import type { Logger } from '../../../cluster/common/logger.ts';
import type { HostUser } from './host-user.ts';

export interface AgentForward {
  socketPath: string;
  close(): void;
}

/** The patched ssh2 server connection can open agent channels (patches/ssh2). */
type AgentCapable = Connection & { openssh_authAgent(cb: (error: Error | undefined, channel: ServerChannel) => void): void };

export async function forwardAgent(client: Connection, user: HostUser, log: Logger | undefined): Promise<AgentForward> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-agent-'));
  const socketPath = path.join(dir, 'agent.sock');
  const server = net.createServer((socket) => {
    (client as AgentCapable).openssh_authAgent((error, channel) => {
      if (error) {
        log?.debug({ err: error }, 'the client refused an agent channel');
        socket.destroy();
        return;
      }
      channel.on('error', () => socket.destroy());
      socket.on('error', () => channel.destroy());
      socket.pipe(channel).pipe(socket);
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    if (process.getuid?.() === 0) {
      await chown(dir, user.uid, user.gid);
      await chown(socketPath, user.uid, user.gid);
    }
  } catch (error) {
    server.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  client.once('close', () => server.close());
  return {
    socketPath,
    close: () => {
      server.close();
      void rm(dir, { recursive: true, force: true });
    },
  };
}
