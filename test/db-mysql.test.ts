/**
 * MariaDB through Postern with real processes and the real `mariadb` client: a cluster,
 * a throwaway MariaDB with TLS and `REQUIRE SUBJECT '/CN=alice'` (certificates from
 * `pctl auth sign --format=db`), an agent serving it as `db:my1` (cert auth) and
 * `db:mypw` (mysql_native_password upstream). `psh db connect` runs mariadb against a
 * local tunnel listener; mysql2 drives the binary prepared-statement protocol.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { startDaemon, stopAll, freePort, type DaemonProcess } from './fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from './fixtures/cluster-process.ts';
import { mariadbSkipReason, startMariadb, type MariadbServer } from './fixtures/mariadb.ts';
import { cliPath } from './fixtures/auth.ts';

const skip = mariadbSkipReason();

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string; bytes: number }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let bytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      stdout = (stdout + chunk.toString()).slice(-65_536);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, bytes });
    });
  });
}

describe('MariaDB through Postern with the mariadb client', { skip }, () => {
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let db: MariadbServer | undefined;
  let tunnel: ReturnType<typeof spawn> | undefined;
  let tunnelPort = 0;
  let mysqlListenPort = 0;
  let home = '';
  let work = '';
  const psh = (args: string[], input?: string) => pshIn(home)(args, input);
  const pctl = (args: string[]) => cluster!.pctl(args);
  const until = async <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  const connect = (extra: string[]) => run(process.execPath, [cliPath, 'psh', 'db', 'connect', 'my1', '--', '--batch', '--skip-column-names', ...extra], { POSTERN_HOME: home });
  const audit = async (type: string): Promise<Array<{ type: string; reason?: string; identity: { user?: string }; resource?: { name: string }; fields: Record<string, unknown> }>> =>
    JSON.parse((await pctl(['audit', 'search', '--type', type, '--limit', '1000', '--format', 'json'])).stdout);

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'postern-home-'));
    work = mkdtempSync(path.join(tmpdir(), 'postern-mytest-'));
    mysqlListenPort = await freePort();
    cluster = await startClusterProcess('myc', { proxyLines: [`mysql_listen_addr: 127.0.0.1:${mysqlListenPort}`] });
    const certs = path.join(work, 'certs');
    const signed = await pctl(['auth', 'sign', '--format=db', '--host', 'localhost,127.0.0.1', '--out', certs]);
    assert.equal(signed.code, 0, signed.stderr);
    db = await startMariadb({
      serverCertPem: readFileSync(path.join(certs, 'server.crt'), 'utf8'),
      serverKeyPem: readFileSync(path.join(certs, 'server.key'), 'utf8'),
      clientCaPem: readFileSync(path.join(certs, 'db-client-ca.crt'), 'utf8'),
    });
    await db.sql([
      'CREATE DATABASE app',
      "CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice'",
      "GRANT ALL ON *.* TO 'alice'@'%'",
      "CREATE USER 'bob'@'%' REQUIRE SUBJECT '/CN=bob'",
      "CREATE USER 'pwuser'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('pw-secret-1') REQUIRE SSL",
      "GRANT ALL ON app.* TO 'pwuser'@'%'",
    ].join('; '));
    writeFileSync(path.join(work, 'pw'), 'pw-secret-1\n', { mode: 0o600 });
    const token = String(JSON.parse((await pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout).token);
    const entry = (name: string, auth: string) =>
      `      - { name: ${name}, protocol: mysql, uri: "127.0.0.1:${db!.port}", labels: { env: dev }, tls: { mode: verify-full, ca_file: ${path.join(certs, 'server.cas')}, server_name: localhost }, auth: ${auth} }`;
    agent = await startDaemon('myagent', (dir, diag) => [
      `data_dir: ${dir}`, `diag_addr: ${diag}`, 'agent:', `  proxy_addr: ${cluster!.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster!.pin}`,
      '  ssh: { enabled: false }', '  db:', '    databases:',
      entry('my1', '{ type: cert }'),
      entry('mypw', `{ type: password, user: pwuser, password_file: ${path.join(work, 'pw')} }`),
      '',
    ].join('\n'));
    await agent.waitReady();
    writeFileSync(path.join(work, 'role.yaml'), 'kind: role\nversion: v1\nmetadata: { name: dev-db }\nspec:\n  allow:\n    db_labels: { env: dev }\n    db_users: [alice, pwuser]\n    db_names: [app]\n    resources: [{ kinds: [db], verbs: [list, read] }]\n');
    assert.equal((await pctl(['create', '-f', path.join(work, 'role.yaml')])).code, 0);
    await signUpAndLogIn(cluster, home, { name: 'erin', roles: 'dev-db', logins: 'erin', password: 'a long and happy password' });
    await until('my1 listed', async () => {
      const listed = await psh(['db', 'ls', '--format', 'json']);
      return listed.code === 0 && (JSON.parse(listed.stdout) as Array<{ name: string; online: boolean }>).some((d) => d.name === 'my1' && d.online) ? true : undefined;
    });
    const login = await psh(['db', 'login', 'my1', '--db-user', 'alice', '--db-name', 'app']);
    assert.equal(login.code, 0, login.stderr);
    tunnelPort = await freePort();
    tunnel = spawn(process.execPath, [cliPath, 'psh', 'proxy', 'db', 'my1', '--port', String(tunnelPort), '--tunnel'], { env: { ...process.env, POSTERN_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    tunnel.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await until('the tunnel listener', async () => (out.includes('Listening') ? true : undefined));
  });

  after(async () => {
    if (tunnel && tunnel.exitCode === null) {
      tunnel.kill('SIGTERM');
      const exited = await Promise.race([once(tunnel, 'exit').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000))]);
      if (!exited) {
        tunnel.kill('SIGKILL');
        assert.fail('psh proxy db did not exit within 5 s of SIGTERM');
      }
    }
    await stopAll([agent, cluster?.daemon]);
    await db?.stop();
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('psh db connect runs mariadb: alice logs in upstream by certificate over TLS; errors and queries are audited', async () => {
    const result = await connect(['-e', "select current_user(), database(), (select variable_value from information_schema.session_status where variable_name = 'Ssl_cipher') <> ''"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'alice@%\tapp\t1\n');
    const failed = await connect(['-e', 'select * from no_such_table']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /ERROR 1146 \(42S02\).*no_such_table' doesn't exist/);
    const events = await until('the query audit', async () => {
      const found = await audit('db.query');
      return found.some((e) => e.fields.statement === 'select * from no_such_table') ? found : undefined;
    });
    const event = events.find((e) => e.fields.statement === 'select * from no_such_table')!;
    assert.equal(event.identity.user, 'erin');
    assert.equal(event.resource?.name, 'my1');
    assert.equal(event.fields.db_user, 'alice');
    assert.equal(event.fields.protocol, 'mysql');
  });

  test('transactions, a 100 MB result and concurrent sessions', async () => {
    const tx = await connect(['-e', 'create table if not exists t1 (v int) engine=innodb; start transaction; insert into t1 values (1); rollback; start transaction; insert into t1 values (2); commit; select sum(v) from t1']);
    assert.equal(tx.code, 0, tx.stderr);
    assert.equal(tx.stdout.trim(), '2');
    const big = await connect(['-e', "select repeat('x', 1023) from seq_1_to_102400"]);
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.bytes, 1024 * 102_400);
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${tunnelPort}`, '--user=alice', '--skip-ssl', '--batch', '--skip-column-names', '-e', `select ${i}, connection_id(), sleep(0.2)`, 'app'])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    assert.equal(new Set(runs.map((r) => r.stdout.split('\t')[1])).size, 8);
  });

  test('prepared statements over the binary protocol (mysql2) are audited as prepare and execute', async () => {
    const connection = await mysql.createConnection({ host: '127.0.0.1', port: tunnelPort, user: 'alice', database: 'app' });
    try {
      const [rows] = await connection.execute('select ? + 1 as answer_prepared', [41]);
      assert.deepEqual(rows, [{ answer_prepared: 42 }]);
    } finally {
      await connection.end();
    }
    const events = await until('prepare events', async () => {
      const found = await audit('db.statement.*');
      return found.some((e) => String(e.fields.statement ?? '').includes('answer_prepared')) ? found : undefined;
    });
    assert.ok(events.some((e) => e.type === 'db.statement.execute' && typeof e.fields.statement_id === 'number'));
  });

  test('password upstream auth (mysql_native_password over TLS)', async () => {
    const login = await psh(['db', 'login', 'mypw', '--db-user', 'pwuser', '--db-name', 'app']);
    assert.equal(login.code, 0, login.stderr);
    const result = await run(process.execPath, [cliPath, 'psh', 'db', 'connect', 'mypw', '--', '--batch', '--skip-column-names', '-e', 'select current_user()'], { POSTERN_HOME: home });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'pwuser@%\n');
  });

  test('the proxy\'s MySQL listener: mariadb with TLS and the database certificate, no psh in between; without TLS it is told what to do', async () => {
    const pdir = path.join(home, 'profiles', cluster!.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const tlsArgs = ['--ssl', `--ssl-ca=${path.join(pdir, 'cluster-ca.pem')}`, `--ssl-cert=${path.join(pdir, 'db', 'my1.crt')}`, `--ssl-key=${path.join(pdir, 'db', 'my1.key')}`, '--ssl-verify-server-cert'];
    const ok = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${mysqlListenPort}`, '--user=alice', ...tlsArgs, '--batch', '--skip-column-names', '-e', 'select current_user(), database()', 'app']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'alice@%\tapp\n');
    const bob = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${mysqlListenPort}`, '--user=bob', ...tlsArgs, '-e', 'select 1', 'app']);
    assert.equal(bob.code, 1);
    assert.match(bob.stderr, /ERROR 1045 \(28000\): Access to database "my1" denied: the certificate allows database user "alice"/);
    const plain = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${mysqlListenPort}`, '--user=alice', '--skip-ssl', '-e', 'select 1', 'app']);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /ERROR 1045 \(28000\): Postern needs TLS with your database certificate/);
    const noCert = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${mysqlListenPort}`, '--user=alice', '--ssl', '-e', 'select 1', 'app']);
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /ERROR 1045 \(28000\): no client certificate was presented/);
  });

  test('refusals are MySQL errors the client prints (1045, 28000) and audited; a garbage handshake gets an error', async () => {
    const bob = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${tunnelPort}`, '--user=bob', '--skip-ssl', '-e', 'select 1', 'app']);
    assert.equal(bob.code, 1);
    assert.match(bob.stderr, /ERROR 1045 \(28000\): Access to database "my1" denied: the certificate allows database user "alice", and the client asked for "bob"/);
    const otherDb = await run('mariadb', ['--no-defaults', '--host=127.0.0.1', `--port=${tunnelPort}`, '--user=alice', '--skip-ssl', '-e', 'select 1', 'mysql']);
    assert.match(otherDb.stderr, /ERROR 1045 \(28000\): Access to database "my1" denied: the certificate allows database name "app", and the client asked for "mysql"/);
    const denied = await until('the refusal audit', async () => {
      const found = await audit('access.denied');
      return found.some((e) => e.resource?.name === 'my1' && /"bob"/.test(e.reason ?? '')) ? found : undefined;
    });
    assert.ok(denied.length > 0);

    const raw = net.connect({ host: '127.0.0.1', port: tunnelPort });
    let received = Buffer.alloc(0);
    raw.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length > 4 && received[4] === 10) raw.write(Buffer.from([5, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0x00]));
    });
    await once(raw, 'close');
    const greetingLength = received.readUIntLE(0, 3) + 4;
    const err = received.subarray(greetingLength);
    assert.equal(err[4], 0xff, 'an ERR packet after the greeting');
    assert.match(err.subarray(7).toString(), /Bad handshake: the client does not speak protocol 4.1/);
    const ok = await connect(['-e', 'select 42']);
    assert.equal(ok.stdout, '42\n', ok.stderr);
  });
});
