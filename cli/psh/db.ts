/**
 * `psh db ls|login|connect|logout`: databases behind Postern with their own clients.
 *
 * `psh db login DB` asks auth (through the proxy's pass-through, as the logged-in user)
 * for a certificate like the profile's with `routeToDatabase` set, and keeps it with
 * its own key under `<profile>/db/`: `DB.crt`, `DB.key`, `DB.json` (protocol, user,
 * name). `psh db connect DB` then runs psql with that certificate straight at the
 * proxy's port (SSLRequest, TLS, verify-full against the cluster CA), or, for MySQL,
 * `mariadb` against a local tunnel listener (`psh proxy db --tunnel`).
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { loadProfile, profileDir, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';
import { issueRouted, listServed, routedCluster } from './routed-resources.ts';
import { dbDir, loadDbLogin, type DbLogin } from './db-login-files.ts';

export { dbDir, loadDbLogin, type DbLogin };

/** A database as auth lists it. */
export interface DbView {
  metadata: { name: string; labels?: Record<string, string>; description?: string };
  spec: { protocol?: string; uri?: string };
  status: { host_id: string; node_name: string; online: boolean };
}

export async function dbLs(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const logins = new Set((await readdir(dbDir(profile)).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)));
  const rows = (await listServed<DbView>(profile, 'db', routedCluster(invocation, profile))).map((d) => ({
    name: d.metadata.name,
    protocol: d.spec.protocol ?? '',
    description: d.metadata.description ?? '',
    labels: d.metadata.labels ?? {},
    node: d.status.node_name,
    online: d.status.online,
    logged_in: logins.has(d.metadata.name),
  }));
  printData(outputFormat(invocation.options.format), rows, (list) =>
    renderTable(
      ['NAME', 'PROTOCOL', 'LABELS', 'NODE', 'STATUS'],
      list.map((d) => [(d.logged_in ? '> ' : '') + d.name, d.protocol, formatLabels(d.labels), d.node, d.online ? 'online' : 'offline']),
      'no databases you can see; ask an admin for a role with db_labels',
    ),
  );
  return 0;
}

export async function dbLogin(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  if (!name || invocation.positionals.length > 1) throw new UsageError('expected one database name: psh db login DB --db-user USER [--db-name NAME]');
  const dbUser = stringOption(invocation, 'db-user');
  if (!dbUser) throw new UsageError('--db-user is required: the database user to log in as (your roles\' db_users must allow it)');
  const dbName = stringOption(invocation, 'db-name');
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const leaf = stringOption(invocation, 'cluster');
  const cluster = leaf || profile.route || undefined;
  const listed = (await listServed<DbView>(profile, 'db', cluster, name)).filter((d) => d.metadata.name === name);
  if (listed.length === 0) throw new PosternError('PST_NOT_FOUND', `no database named "${name}" that you may see${cluster ? ` in cluster ${cluster}` : ''}; list them with psh db ls${cluster ? ` --cluster ${cluster}` : ''}`);
  const protocol = listed[0]!.spec.protocol ?? 'postgres';
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = await issueRouted(profile, {
    tlsPublicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    cluster: leaf,
    dbService: name,
    dbUser,
    dbName,
  });
  const dir = dbDir(profile);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dir, `${name}.key`), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  await writeFileAtomic(path.join(dir, `${name}.crt`), issued.tlsCertificatePem, 0o600);
  const login: DbLogin = { name, protocol, db_user: dbUser, ...(dbName ? { db_name: dbName } : {}) };
  await writeFileAtomic(path.join(dir, `${name}.json`), JSON.stringify(login, null, 2) + '\n', 0o600);
  process.stdout.write(`Logged in to database ${name} (${protocol}) as ${dbUser}${dbName ? `, database ${dbName}` : ''}; certificate expires ${issued.expires}.\nConnect: psh db connect ${name}\n`);
  return 0;
}

/** The psql connection string for a logged-in database, straight at the proxy. */
export function psqlConnInfo(proxy: string, files: { login: DbLogin; certFile: string; keyFile: string; caFile: string }): string {
  const address = parseProxyAddress(proxy);
  const quote = (value: string): string => `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  return [
    `host=${quote(address.host)}`,
    `port=${address.port}`,
    `user=${quote(files.login.db_user)}`,
    `dbname=${quote(files.login.db_name ?? files.login.db_user)}`,
    'sslmode=verify-full',
    `sslrootcert=${quote(files.caFile)}`,
    `sslcert=${quote(files.certFile)}`,
    `sslkey=${quote(files.keyFile)}`,
  ].join(' ');
}

export async function dbConnect(invocation: Invocation): Promise<number> {
  const [name, ...extra] = invocation.positionals;
  if (!name) throw new UsageError('expected a database name: psh db connect DB [-- CLIENT ARGS]');
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const files = await loadDbLogin(profile, name);
  if (files.login.protocol === 'mysql') return _connectMysql(invocation, profile, files.login, extra);
  const client = stringOption(invocation, 'client') ?? 'psql';
  return _runClient(client, [psqlConnInfo(profile.proxy, files), ...extra], 'postgresql-client');
}

/** MySQL clients cannot present our certificate: a local tunnel listener on a free port, and the client pointed at it. */
async function _connectMysql(invocation: Invocation, profile: Profile, login: DbLogin, extra: string[]): Promise<number> {
  const { startDbListener } = await import('./proxy-db.ts');
  const { server, port } = await startDbListener(profile, login.name, { port: 0, tunnel: true });
  try {
    const client = stringOption(invocation, 'client') ?? 'mariadb';
    return await _runClient(client, ['--host=127.0.0.1', `--port=${port}`, `--user=${login.db_user}`, '--skip-ssl', ...extra, ...(login.db_name ? [login.db_name] : [])], 'mariadb-client');
  } finally {
    server.close();
  }
}

/**
 * Runs the database client. Terminals are inherited (the client needs one); pipes are
 * relayed, because Node makes its pipes non-blocking and a child writing to the same
 * pipe would lose output when it fills (EAGAIN).
 */
function _runClient(client: string, args: string[], debianPackage: string): Promise<number> {
  const stdio = [process.stdin, process.stdout, process.stderr].map((s) => ((s as { isTTY?: boolean }).isTTY ? 'inherit' : 'pipe')) as Array<'inherit' | 'pipe'>;
  const child = spawn(client, args, { stdio });
  if (child.stdin) process.stdin.pipe(child.stdin).on('error', () => {});
  child.stdout?.pipe(process.stdout);
  child.stderr?.pipe(process.stderr);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => reject(new PosternError('PST_NO_CLIENT', `cannot run ${client}: ${error.message}; install Debian package ${debianPackage} or pass --client PATH`)));
    child.once('close', (code, signal) => {
      process.stdin.unpipe();
      process.stdin.destroy();
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

export async function dbLogout(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const dir = dbDir(profile);
  const names = name ? [name] : (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  for (const db of names) {
    await Promise.all(['crt', 'key', 'json'].map((ext) => rm(path.join(dir, `${db}.${ext}`), { force: true })));
    process.stdout.write(`Logged out of database ${db}\n`);
  }
  if (names.length === 0) process.stdout.write('not logged in to any database\n');
  return 0;
}
