/**
 * How pctl finds the auth server and who it is: an identity file (`-i`, e.g. from
 * pbot or a user login), or, on the auth host, the admin identity the auth server
 * keeps in its data directory (found through postern.yaml).
 */
import path from 'node:path';
import { stringOption, type Invocation } from '../command.ts';
import { connectAuth, type AuthConnection } from '../../cluster/api/auth-client.ts';
import { readIdentityFile } from '../../cluster/api/identity-file.ts';
import { loadConfig } from '../../cluster/common/config.ts';
import { option } from '../command.ts';
import { PosternError } from '../../protocols/errors.ts';

export const connectionOptions = {
  config: option('string', 'postern.yaml of the auth host (default $POSTERN_CONFIG or /etc/postern.yaml)', { short: 'c' }),
  identity: option('string', 'identity file to use instead of the auth host admin identity', { short: 'i' }),
  'auth-server': option('string', 'auth server address host:port (default: from the identity)'),
};

/** Opens an authenticated API connection for a pctl command. */
export async function connect(invocation: Invocation): Promise<AuthConnection> {
  const identityPath = stringOption(invocation, 'identity');
  let file: string;
  if (identityPath) {
    file = identityPath;
  } else {
    const configPath = stringOption(invocation, 'config') ?? process.env.POSTERN_CONFIG ?? '/etc/postern.yaml';
    const config = await loadConfig(configPath);
    if (!config.auth) throw new PosternError('PST_NO_AUTH', `${configPath} does not run an auth service; run pctl on the auth host or pass -i IDENTITY`);
    file = path.join(config.data_dir, 'admin-identity.json');
  }
  const identity = await readIdentityFile(file, 'start the auth service (postern start) to create it, or pass -i IDENTITY');
  const address = stringOption(invocation, 'auth-server') ?? identity.auth_addr;
  if (!address) throw new PosternError('PST_NO_AUTH', `identity ${file} does not name an auth server; pass --auth-server host:port`);
  return connectAuth(address, identity);
}

/** Runs `body` with a connection and always closes it. */
export async function withAuth<T>(invocation: Invocation, body: (connection: AuthConnection) => Promise<T>): Promise<T> {
  const connection = await connect(invocation);
  try {
    return await body(connection);
  } finally {
    connection.close();
  }
}
