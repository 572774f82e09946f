/**
 * PostgreSQL through Postern with real processes and the real psql: a cluster (auth +
 * proxy), a throwaway PostgreSQL configured with `pctl auth sign --format=db` for
 * certificate auth, and an agent serving it as `db:pg1` (labels env=dev) and as
 * `db:pgprod` (env=prod; the user's role does not match), plus `db:pgpw` logging in
 * upstream with SCRAM-SHA-256. The user logs in with psh, `psh db login` gets a
 * database certificate and `psh db connect` runs psql straight at the proxy's port.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import net from 'node:net';
import { once } from 'node:events';
import { startDaemon, stopAll, freePort, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { postgresSkipReason, startPostgres, type PostgresServer } from './fixtures/postgres.ts';
import { connectAuth } from '../cluster/api/auth-client.ts';
import { psqlConnInfo, type DbLogin } from '../cli/psh/db.ts';
import { cliPath } from './fixtures/auth.ts';

const skip = postgresSkipReason();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  bytes: number;
  ms: number;
}

/** Runs a program; stdout is counted, and only its last 64 KB kept. */
function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; onSpawn?: (pid: number) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let bytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      stdout = (stdout + chunk.toString()).slice(-65_536);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('spawn', () => options.onSpawn?.(child.pid!));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, bytes, ms: Date.now() - started });
    });
    // A client that exits before reading its input (a refused login) closes the pipe first.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

describe('PostgreSQL through Postern with psql', { skip }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let pg: PostgresServer | undefined;
  let home = '';
  let work = '';
  let machinePg = false;
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);
  /** psql against pg1 with the certificate of the last psh db login. */
  const psql = (args: string[], options: Parameters<typeof run>[2] = {}) => run('psql', [conninfo('pg1'), '-X', '-v', 'ON_ERROR_STOP=1', ...args], options);
  const conninfo = (db: string, overrides: Partial<DbLogin> = {}): string => {
    const pdir = path.join(home, 'profiles', cluster!.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const login = { ...(JSON.parse(readFileSync(path.join(pdir, 'db', `${db}.json`), 'utf8')) as DbLogin), ...overrides };
    return psqlConnInfo(cluster!.proxy, { login, certFile: path.join(pdir, 'db', `${db}.crt`), keyFile: path.join(pdir, 'db', `${db}.key`), caFile: path.join(pdir, 'cluster-ca.pem') });
  };
  const audit = async (type: string): Promise<Array<{ type: string; outcome: string; reason?: string; identity: { user?: string }; resource?: { name: string }; fields: Record<string, unknown> }>> => {
    const found = await pctl(['audit', 'search', '--type', type, '--limit', '1000', '--format', 'json']);
    assert.equal(found.code, 0, found.stderr);
    return JSON.parse(found.stdout);
  };
  const until = async <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-home-'));
    work = mkdtempSync(path.join(tmpdir(), 'postern-dbtest-'));
    cluster = await startClusterProcess('dbc');
    const certs = path.join(work, 'pgcerts');
    const signed = await pctl(['auth', 'sign', '--format=db', '--host', 'localhost,127.0.0.1', '--out', certs]);
    assert.equal(signed.code, 0, signed.stderr);
    pg = await startPostgres({
      serverCertPem: readFileSync(path.join(certs, 'server.crt'), 'utf8'),
      serverKeyPem: readFileSync(path.join(certs, 'server.key'), 'utf8'),
      clientCaPem: readFileSync(path.join(certs, 'db-client-ca.crt'), 'utf8'),
      hbaLines: ['hostssl all pwuser 127.0.0.1/32 scram-sha-256'],
    });
    await pg.sql("create user alice; create user bob; create user pwuser password 'pw-secret-1'");
    await pg.sql('create database app owner alice');
    writeFileSync(path.join(work, 'pw'), 'pw-secret-1\n', { mode: 0o600 });
    const token = String(JSON.parse((await pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout).token);
    machinePg = await new Promise<boolean>((resolve) => {
      const probe = net.connect({ host: '127.0.0.1', port: 5432 }, () => { probe.destroy(); resolve(true); });
      probe.on('error', () => resolve(false));
    });
    const upstream = (name: string, labels: string, auth = '{ type: cert }') =>
      `      - { name: ${name}, protocol: postgres, uri: "127.0.0.1:${pg!.port}", labels: ${labels}, tls: { mode: verify-full, ca_file: ${path.join(certs, 'server.cas')}, server_name: localhost }, auth: ${auth} }`;
    agent = await startDaemon('dbagent', (dir, diag) => [
      `data_dir: ${dir}`,
      `diag_addr: ${diag}`,
      'agent:',
      `  proxy_addr: ${cluster!.proxy}`,
      `  token: ${token}`,
      `  ca_pin: ${cluster!.pin}`,
      '  node_name: db-host',
      '  ssh: { enabled: false }',
      '  db:',
      '    resources: [{ labels: { served_by: db-host } }]',
      '    poll_interval: 1s',
      '    databases:',
      upstream('pg1', '{ env: dev }'),
      upstream('pgprod', '{ env: prod }'),
      upstream('pgpw', '{ env: dev }', `{ type: password, user: pwuser, password_file: ${path.join(work, 'pw')} }`),
      ...(machinePg ? ['      - { name: pglocal, protocol: postgres, uri: "127.0.0.1:5432", labels: { env: dev }, tls: { mode: insecure }, auth: { type: password, password_file: ' + path.join(work, 'pw') + ' } }'] : []),
      '',
    ].join('\n'));
    await agent.waitReady();
    writeFileSync(path.join(work, 'role.yaml'), 'kind: role\nversion: v1\nmetadata: { name: dev-db }\nspec:\n  allow:\n    db_labels: { env: dev }\n    db_users: [alice, pwuser]\n    db_names: [app, postgres]\n    resources: [{ kinds: [db], verbs: [list, read] }]\n');
    const created = await pctl(['create', '-f', path.join(work, 'role.yaml')]);
    assert.equal(created.code, 0, created.stderr);
    await signUpAndLogIn(cluster, home, { name: 'dave', roles: 'dev-db', logins: 'dave', password: 'a long and happy password' });
    await until('pg1 listed online', async () => {
      const listed = await psh(['db', 'ls', '--format', 'json']);
      return listed.code === 0 && (JSON.parse(listed.stdout) as Array<{ name: string; online: boolean }>).some((d) => d.name === 'pg1' && d.online) ? true : undefined;
    });
    const login = await psh(['db', 'login', 'pg1', '--db-user', 'alice', '--db-name', 'app']);
    assert.equal(login.code, 0, login.stderr);
  });

  after(async () => {
    await stopAll([agent, cluster?.daemon]);
    await pg?.stop();
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('psh db ls shows what the role allows (env=dev), not the env=prod database', async () => {
    const listed = await psh(['db', 'ls', '--format', 'json']);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as Array<{ name: string; protocol: string; labels: Record<string, string>; logged_in: boolean }>;
    assert.deepEqual(rows.map((r) => r.name).filter((n) => n !== 'pglocal').sort(), ['pg1', 'pgpw']);
    assert.deepEqual(rows.find((r) => r.name === 'pg1'), { ...rows.find((r) => r.name === 'pg1'), protocol: 'postgres', labels: { env: 'dev' }, logged_in: true });
    const text = await psh(['db', 'ls']);
    assert.match(text.stdout, /> pg1\s+postgres\s+env=dev\s+db-host\s+online/);
  });

  test('psh db connect runs psql through the proxy: result sets, errors, transactions; queries are audited', async () => {
    const result = await psh(['db', 'connect', 'pg1', '--', '-X', '-At', '-c', "select current_user, current_database(), (select ssl from pg_stat_ssl where pid = pg_backend_pid())"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'alice|app|t\n', 'logged in upstream as alice over TLS with the db-client certificate');
    const failed = await psql(['-c', 'select * from no_such_table']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /ERROR:  relation "no_such_table" does not exist/);
    const tx = await psql(['-At', '-c', 'create table if not exists t1(v int)', '-c', 'begin; insert into t1 values (1); rollback;', '-c', 'begin; insert into t1 values (2); commit;', '-c', 'select coalesce(sum(v), 0) from t1']);
    assert.equal(tx.code, 0, tx.stderr);
    assert.equal(tx.stdout.trim().split('\n').at(-1), '2');
    const queries = await until('the query audit events', async () => {
      const events = await audit('db.query');
      return events.some((e) => e.fields.statement === 'select * from no_such_table') ? events : undefined;
    });
    const event = queries.find((e) => e.fields.statement === 'select * from no_such_table')!;
    assert.equal(event.identity.user, 'dave');
    assert.equal(event.resource?.name, 'pg1');
    assert.equal(event.fields.db_user, 'alice');
    assert.equal(event.fields.db_name, 'app');
    assert.ok((await audit('db.session.start')).some((e) => e.identity.user === 'dave' && e.outcome === 'allow'));
  });

  test('a 100 MB result and COPY out and in arrive whole', async () => {
    const big = await psql(['-At', '-c', "select repeat('x', 1023) from generate_series(1, 102400)"], { timeoutMs: 120_000 });
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.bytes, 1024 * 102_400, 'every row of 1023 x plus a newline');
    const file = path.join(work, 'copy.csv');
    const out = await psql(['-c', `\\copy (select g, md5(g::text) from generate_series(1, 50000) g) to '${file}' csv`]);
    assert.equal(out.code, 0, out.stderr);
    const copied = readFileSync(file, 'utf8');
    assert.equal(copied.split('\n').length, 50_001);
    const back = await psql(['-At', '-c', 'create table if not exists c1(g int, h text)', '-c', `\\copy c1 from '${file}' csv`, '-c', 'select count(*), sum(g) from c1']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout.trim().split('\n').at(-1), `50000|${(50_000 * 50_001) / 2}`);
  });

  test('prepared statements over the extended protocol (pgbench -M prepared) are audited as parse/bind/execute', async () => {
    const script = path.join(work, 'bench.sql');
    writeFileSync(script, '\\set x random(1, 1000)\nselect :x::int + 1 as audited_prepared;\n');
    const bench = await run('pgbench', ['-n', '-M', 'prepared', '-t', '20', '-f', script, conninfo('pg1')]);
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stdout, /number of transactions actually processed: 20\/20/);
    const parsed = await until('parse events', async () => {
      const events = await audit('db.statement.*');
      return events.filter((e) => String(e.fields.statement ?? '').includes('audited_prepared')).length > 0 ? events : undefined;
    });
    const parse = parsed.find((e) => e.type === 'db.statement.parse' && String(e.fields.statement).includes('audited_prepared'))!;
    assert.equal(typeof parse.fields.parameter_types, 'number');
    assert.ok(parsed.filter((e) => e.type === 'db.statement.bind' && e.fields.parameters === 1).length >= 20);
    assert.ok(parsed.filter((e) => e.type === 'db.statement.execute').length >= 20);
  });

  test('cancel: psql Ctrl-C sends a CancelRequest through the proxy, and pg_cancel_backend works', async () => {
    let pid = 0;
    const sleeping = run('psql', [conninfo('pg1'), '-X', '-c', 'select pg_sleep(30)'], { onSpawn: (p) => (pid = p) });
    await until('the sleep to start', async () => ((await pg!.sql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")).trim() === '1' ? true : undefined));
    process.kill(pid, 'SIGINT');
    const cancelled = await sleeping;
    assert.equal(cancelled.code, 1);
    assert.match(cancelled.stderr, /canceling statement due to user request/);
    assert.ok(cancelled.ms < 15_000, `cancelled after ${cancelled.ms} ms`);

    const second = psql(['-c', 'select pg_sleep(31)']);
    await until('the second sleep', async () => ((await pg!.sql("select count(*) from pg_stat_activity where query = 'select pg_sleep(31)' and state = 'active'")).trim() === '1' ? true : undefined));
    const killer = await psql(['-At', '-c', "select pg_cancel_backend(pid) from pg_stat_activity where query = 'select pg_sleep(31)'"]);
    assert.equal(killer.stdout.trim(), 't', killer.stderr);
    const result = await second;
    assert.match(result.stderr, /canceling statement due to user request/);
  });

  test('concurrent sessions each get their own backend', async () => {
    const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => psql(['-At', '-c', `select ${i}, pg_backend_pid(), pg_sleep(0.2)`])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const pids = new Set(runs.map((r) => r.stdout.split('|')[1]));
    assert.equal(pids.size, 12);
    assert.deepEqual(runs.map((r) => Number(r.stdout.split('|')[0])), Array.from({ length: 12 }, (_, i) => i));
  });

  test('password upstream auth (SCRAM-SHA-256) for a database configured with a password file', async () => {
    const login = await psh(['db', 'login', 'pgpw', '--db-user', 'pwuser', '--db-name', 'postgres']);
    assert.equal(login.code, 0, login.stderr);
    const result = await run('psql', [conninfo('pgpw'), '-X', '-At', '-c', 'select current_user']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'pwuser\n');
  });

  test('the machine\'s PostgreSQL at 127.0.0.1:5432 (no TLS there, as Debian installs it): the agent says so', async (t) => {
    if (!machinePg) return t.skip('no PostgreSQL listens on 127.0.0.1:5432 (Debian package postgresql runs one)');
    const login = await psh(['db', 'login', 'pglocal', '--db-user', 'alice', '--db-name', 'app']);
    assert.equal(login.code, 0, login.stderr);
    const result = await run('psql', [conninfo('pglocal'), '-X', '-c', 'select 1']);
    assert.equal(result.code, 2);
    // With ssl = on there, the login proceeds to the password, which the machine's server does not know.
    assert.match(result.stderr, /FATAL:  (Postern: cannot log in to database "pglocal" at 127.0.0.1:5432: 127.0.0.1:5432 does not accept TLS \(it answered "N" to SSLRequest\); turn ssl on in postgresql.conf|password authentication failed|.*no pg_hba.conf entry)/);
    const failed = await until('the failure audit', async () => {
      const events = await audit('db.session.failed');
      return events.some((e) => e.resource?.name === 'pglocal') ? events : undefined;
    });
    assert.ok(failed.length > 0);
  });

  test('a db resource created with pctl is served by the agent whose selector matches, and stops being served when removed', async () => {
    const file = path.join(work, 'db.yaml');
    writeFileSync(file, [
      'kind: db', 'version: v1', 'metadata: { name: pgdyn, labels: { env: dev, served_by: db-host } }', 'spec:', '  protocol: postgres', `  uri: "127.0.0.1:${pg!.port}"`,
      `  tls: { mode: verify-full, ca_file: ${path.join(work, 'pgcerts', 'server.cas')}, server_name: localhost }`, '',
    ].join('\n'));
    const created = await pctl(['create', '-f', file]);
    assert.equal(created.code, 0, created.stderr);
    const listed = async (): Promise<string[]> => (JSON.parse((await psh(['db', 'ls', '--format', 'json'])).stdout) as Array<{ name: string }>).map((d) => d.name);
    await until('pgdyn listed', async () => ((await listed()).includes('pgdyn') ? true : undefined));
    const login = await psh(['db', 'login', 'pgdyn', '--db-user', 'alice', '--db-name', 'app']);
    assert.equal(login.code, 0, login.stderr);
    const result = await run('psql', [conninfo('pgdyn'), '-X', '-At', '-c', 'select current_user']);
    assert.equal(result.stdout, 'alice\n', result.stderr);
    const removed = await pctl(['rm', 'db/pgdyn']);
    assert.equal(removed.code, 0, removed.stderr);
    await until('pgdyn gone', async () => (!(await listed()).includes('pgdyn') ? true : undefined));
  });

  test('refusals reach psql as FATAL errors and are audited: db user, db name, labels, no certificate', async () => {
    const wrongUser = await run('psql', [conninfo('pg1', { db_user: 'bob' }), '-X', '-c', 'select 1']);
    assert.equal(wrongUser.code, 2);
    assert.match(wrongUser.stderr, /FATAL:  access to database "pg1" denied: the certificate allows database user "alice", and the client asked for "bob"/);

    // A certificate routed to pg1 as bob: the route matches, the role does not allow bob.
    const bobLogin = await psh(['db', 'login', 'pg1', '--db-user', 'bob']);
    assert.equal(bobLogin.code, 0, bobLogin.stderr);
    const bob = await run('psql', [conninfo('pg1'), '-X', '-c', 'select 1']);
    assert.equal(bob.code, 2);
    assert.match(bob.stderr, /FATAL:  access to database "pg1" denied: .*database user "bob"/);
    const wrongName = await run('psql', [conninfo('pg1', { db_user: 'alice', db_name: 'template1' }), '-X', '-c', 'select 1']);
    assert.equal(wrongName.code, 2);
    assert.match(wrongName.stderr, /FATAL:  access to database "pg1" denied: the certificate allows database user "bob", and the client asked for "alice"/);
    const aliceAgain = await psh(['db', 'login', 'pg1', '--db-user', 'alice']);
    assert.equal(aliceAgain.code, 0);
    const otherDb = await run('psql', [conninfo('pg1', { db_name: 'template1' }), '-X', '-c', 'select 1']);
    assert.match(otherDb.stderr, /FATAL:  access to database "pg1" denied: .*database name "template1"/);

    // psh will not log in to a database the user cannot see; a certificate routed there anyway is refused by the agent.
    const hidden = await psh(['db', 'login', 'pgprod', '--db-user', 'alice']);
    assert.equal(hidden.code, 1);
    assert.match(hidden.stderr, /no database named "pgprod" that you may see/);
    const pdir = path.join(home, 'profiles', cluster!.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const user = connectAuth(cluster!.proxy, { key_pem: readFileSync(path.join(pdir, 'tls.key'), 'utf8'), cert_pem: readFileSync(path.join(pdir, 'tls.crt'), 'utf8'), ca_pems: [readFileSync(path.join(pdir, 'cluster-ca.pem'), 'utf8')] });
    const routed = await user.client.reissueUserCertificate({ tlsPublicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(), dbService: 'pgprod', dbUser: 'alice', dbName: '' });
    user.close();
    writeFileSync(path.join(work, 'prod.crt'), routed.tlsCertificatePem);
    writeFileSync(path.join(work, 'prod.key'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    const prod = await run('psql', [conninfo('pg1').replace(/sslcert='[^']*'/, `sslcert='${path.join(work, 'prod.crt')}'`).replace(/sslkey='[^']*'/, `sslkey='${path.join(work, 'prod.key')}'`), '-X', '-c', 'select 1']);
    assert.equal(prod.code, 2);
    assert.match(prod.stderr, /FATAL:  access to database "pgprod" denied: no role allows database user "alice" .* on database "pgprod" \(labels env=prod\)/);

    const loginCert = await run('psql', [conninfo('pg1').replace(/sslcert='[^']*'/, `sslcert='${path.join(pdir, 'tls.crt')}'`).replace(/sslkey='[^']*'/, `sslkey='${path.join(pdir, 'tls.key')}'`), '-X', '-c', 'select 1']);
    assert.equal(loginCert.code, 2);
    assert.match(loginCert.stderr, /FATAL:  the certificate of dave routes to no database; run psh db login DATABASE/);

    const noCert = await run('psql', [conninfo('pg1').replace(/ sslcert='[^']*' sslkey='[^']*'/, " sslcert='/nonexistent' sslkey='/nonexistent'"), '-X', '-c', 'select 1']);
    assert.equal(noCert.code, 2);
    assert.match(noCert.stderr, /FATAL:  no client certificate was presented/);

    const denied = await until('the refusal audit events', async () => {
      const events = await audit('access.denied');
      return events.some((e) => e.resource?.name === 'pgprod') ? events : undefined;
    });
    assert.ok(denied.some((e) => e.resource?.name === 'pg1' && e.identity.user === 'dave' && /database user "bob"/.test(e.reason ?? '')));
    const restored = await psh(['db', 'login', 'pg1', '--db-user', 'alice', '--db-name', 'app']);
    assert.equal(restored.code, 0, restored.stderr);
  });

  test('garbage and oversized start-up packets get an ErrorResponse; the proxy keeps serving', async () => {
    const [host, port] = [cluster!.proxy.split(':')[0]!, Number(cluster!.proxy.split(':')[1])];
    const probe = async (payload: Buffer): Promise<string> => {
      const raw = net.connect({ host, port });
      await once(raw, 'connect');
      raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
      const [answer] = (await once(raw, 'data')) as [Buffer];
      assert.equal(answer.toString(), 'S');
      const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
      await once(secure, 'secureConnect');
      secure.write(payload);
      let received = '';
      secure.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      await once(secure, 'close');
      return received;
    };
    const oversized = Buffer.alloc(12);
    oversized.writeUInt32BE(1_000_000, 0);
    oversized.writeUInt32BE(196_608, 4);
    assert.match(await probe(oversized), /^E.*08P01.*invalid start-up packet length 1000000/s);
    const garbage = Buffer.from([0, 0, 0, 12, 0, 3, 0, 0, 0x41, 0x42, 0x43, 0x44]);
    assert.match(await probe(garbage), /^E.*08P01.*not terminated/s);
    const ok = await psql(['-At', '-c', 'select 42']);
    assert.equal(ok.stdout, '42\n', ok.stderr);
  });

  test('psh proxy db --tunnel: a client without certificates connects to 127.0.0.1', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [cliPath, 'psh', 'proxy', 'db', 'pg1', '--port', String(port), '--tunnel'], { env: { ...process.env, POSTERN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      await until('the local listener', async () => (out.includes('Listening') ? true : undefined));
      const result = await run('psql', [`host=127.0.0.1 port=${port} user=alice dbname=app sslmode=prefer`, '-X', '-At', '-c', 'select current_user, current_database()']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'alice|app\n');
      let pid = 0;
      const sleeping = run('psql', [`host=127.0.0.1 port=${port} user=alice dbname=app`, '-X', '-c', 'select pg_sleep(29)'], { onSpawn: (p) => (pid = p) });
      await until('the tunnelled sleep', async () => ((await pg!.sql("select count(*) from pg_stat_activity where query = 'select pg_sleep(29)' and state = 'active'")).trim() === '1' ? true : undefined));
      process.kill(pid, 'SIGINT');
      assert.match((await sleeping).stderr, /canceling statement due to user request/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
