/**
 * Database benchmark (`npm run bench -- db`), on loopback, in one run:
 *
 * - pgbench -S -c 8 -j 2 -T 15 against a throwaway PostgreSQL: direct (plain TCP),
 *   through pgbouncer (session mode) and through Postern (psql-style client TLS with the
 *   user's database certificate -> proxy -> reverse tunnel -> agent -> TLS with a
 *   db-client certificate -> PostgreSQL, every query audited at auth);
 * - the CPU Postern's own processes (auth+proxy, agent) spend per transaction, from
 *   /proc/PID/stat over the Postern run;
 * - single-client latency (pgbench -S -c 1): Postern's average minus direct;
 * - mysqlslap (8 clients, SELECT 1) against a throwaway MariaDB: direct and through
 *   Postern (`psh proxy db --tunnel` -> proxy -> agent -> TLS with a db-client certificate).
 *
 * The ratios and microseconds per transaction are printed last.
 * `DB_BENCH_SECONDS` shortens the -T of the 8-client runs; `DB_BENCH_PROFILE=DIR` writes CPU
 * profiles of the Postern processes there (from source). Postern's cluster, agent and psh run
 * from the built binary as they ship (built first when stale) unless `DB_BENCH_FROM_SOURCE=1`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureBinary } from '../test/fixtures/binary.ts';
import { freePort, fromBinary, startDaemon, stopAll, type DaemonProcess } from '../test/fixtures/processes.ts';
import { pshIn, signUpAndLogIn, startClusterProcess, type ClusterProcess } from '../test/fixtures/cluster-process.ts';
import { postgresSkipReason, startPostgres, systemUser, type PostgresServer } from '../test/fixtures/postgres.ts';
import { psqlConnInfo, type DbLogin } from '../cli/psh/db.ts';
import { mariadbSkipReason, startMariadb, type MariadbServer } from '../test/fixtures/mariadb.ts';
import { cliPath } from '../test/fixtures/auth.ts';
import { cpuSeconds, machineBusySeconds } from './cpu.ts';

const SECONDS = Number(process.env.DB_BENCH_SECONDS ?? 15);

interface PgbenchResult {
  tps: number;
  transactions: number;
}

function _exec(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

async function _pgbench(conninfo: string, clients: number, seconds: number): Promise<PgbenchResult> {
  const out = await _exec('pgbench', ['-n', '-S', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), conninfo]);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(tps) || !transactions) throw new Error(`cannot read pgbench's output:\n${out}`);
  return { tps, transactions };
}

interface Latencies {
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

/** One client for `seconds`, each transaction's latency logged (pgbench -l): mean, median, p99. */
async function _pgbenchLatencies(conninfo: string, seconds: number, dir: string): Promise<Latencies> {
  const prefix = path.join(mkdtempSync(path.join(dir, 'pgbench-log-')), 'latency');
  await _exec('pgbench', ['-n', '-S', '-c', '1', '-T', String(seconds), '-l', `--log-prefix=${prefix}`, conninfo]);
  const file = readdirSync(path.dirname(prefix)).find((name) => name.startsWith('latency'));
  if (!file) throw new Error('pgbench wrote no latency log');
  // Columns: client, transaction, latency (us), script, epoch s, epoch us.
  const latencies = readFileSync(path.join(path.dirname(prefix), file), 'utf8').trim().split('\n').map((line) => Number(line.split(' ')[2])).sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { meanUs: latencies.reduce((sum, value) => sum + value, 0) / latencies.length, p50Us: at(0.5), p99Us: at(0.99) };
}

const MYSQL_QUERIES = 24_000;

/** Queries per second of mysqlslap, 8 clients, SELECT 1, three iterations (their average). */
async function _mysqlslap(connection: string[]): Promise<number> {
  const out = await _exec('mysqlslap', ['--no-defaults', ...connection, '--create-schema=app', '--concurrency=8', '--iterations=3', `--number-of-queries=${MYSQL_QUERIES}`, '--query=SELECT 1']);
  const seconds = Number(/Average number of seconds to run all queries: ([\d.]+)/.exec(out)?.[1]);
  if (!seconds) throw new Error(`cannot read mysqlslap's output:\n${out}`);
  return MYSQL_QUERIES / seconds;
}

/** A pgbench run with the whole machine's busy CPU over it. */
async function _pgbenchMeasured(conninfo: string, clients: number, seconds: number): Promise<PgbenchResult & { machineUsPerTxn: number }> {
  const before = machineBusySeconds();
  const result = await _pgbench(conninfo, clients, seconds);
  return { ...result, machineUsPerTxn: ((machineBusySeconds() - before) * 1e6) / result.transactions };
}

async function _startPgbouncer(dir: string, pg: PostgresServer): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const owner = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  writeFileSync(path.join(dir, 'userlist.txt'), '"alice" ""\n');
  writeFileSync(path.join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `app = host=127.0.0.1 port=${pg.port} dbname=app user=alice`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    "unix_socket_dir = ''",
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    'pool_mode = session',
    'max_client_conn = 100',
    'default_pool_size = 20',
    'logfile = /dev/null',
    '',
  ].join('\n'));
  const child = spawn('pgbouncer', [...(owner ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  child.stderr?.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${logs}`);
    const ok = await _exec('psql', [`host=127.0.0.1 port=${port} user=alice dbname=app sslmode=disable`, '-Atc', 'select 1']).then(() => true, () => false);
    if (ok) return { port, child };
    if (Date.now() > deadline) throw new Error(`pgbouncer did not start: ${logs}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function run(): Promise<void> {
  const skip = postgresSkipReason();
  if (skip) {
    process.stdout.write(`db: skipped: ${skip}\n`);
    return;
  }
  const work = mkdtempSync(path.join(tmpdir(), 'postern-dbbench-'));
  const home = path.join(work, 'home');
  let cluster: ClusterProcess | undefined;
  let agent: DaemonProcess | undefined;
  let pg: PostgresServer | undefined;
  let bouncer: ChildProcess | undefined;
  let maria: MariadbServer | undefined;
  let tunnel: ChildProcess | undefined;
  // DB_BENCH_PROFILE=DIR: the Postern processes write CPU profiles there (stopped with SIGTERM).
  if (process.env.DB_BENCH_PROFILE) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.DB_BENCH_PROFILE}`;
  try {
    const mysqlListenPort = await freePort();
    // Postern's processes run from the built binary, as they ship (its V8 flags change the CPU
    // they spend), unless DB_BENCH_FROM_SOURCE=1 (or DB_BENCH_PROFILE, which needs source).
    const binary = process.env.DB_BENCH_FROM_SOURCE === '1' || process.env.DB_BENCH_PROFILE ? undefined : await ensureBinary();
    const command = binary ? fromBinary(binary, 'info') : undefined;
    process.stdout.write(`Postern ${binary ? `from the binary ${path.relative(process.cwd(), binary)}` : 'from source'}\n`);
    cluster = await startClusterProcess('bench', { proxyLines: [`mysql_listen_addr: 127.0.0.1:${mysqlListenPort}`], logLevel: 'info', command });
    const certs = path.join(work, 'pgcerts');
    const signed = await cluster.pctl(['auth', 'sign', '--format=db', '--host', 'localhost,127.0.0.1', '--out', certs]);
    if (signed.code !== 0) throw new Error(signed.stderr);
    pg = await startPostgres({
      serverCertPem: readFileSync(path.join(certs, 'server.crt'), 'utf8'),
      serverKeyPem: readFileSync(path.join(certs, 'server.key'), 'utf8'),
      clientCaPem: readFileSync(path.join(certs, 'db-client-ca.crt'), 'utf8'),
      // tlsbench: pgbench over TLS straight to the server, the floor any TLS path pays.
      hbaLines: ['hostnossl all all 127.0.0.1/32 trust', 'hostssl app tlsbench 127.0.0.1/32 trust'],
    });
    await pg.sql('create user alice');
    await pg.sql('create database app owner alice');
    const direct = `host=127.0.0.1 port=${pg.port} user=alice dbname=app sslmode=disable`;
    const mysqlSkip = mariadbSkipReason();
    if (!mysqlSkip) {
      maria = await startMariadb({
        serverCertPem: readFileSync(path.join(certs, 'server.crt'), 'utf8'),
        serverKeyPem: readFileSync(path.join(certs, 'server.key'), 'utf8'),
        clientCaPem: readFileSync(path.join(certs, 'db-client-ca.crt'), 'utf8'),
      });
      await maria.sql("CREATE DATABASE app; CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice'; GRANT ALL ON app.* TO 'alice'@'%'; CREATE USER 'plain'@'127.0.0.1'; GRANT ALL ON app.* TO 'plain'@'127.0.0.1'");
    }
    await _exec('pgbench', ['-i', '-s', '1', '-q', direct]);
    await pg.sql('create user tlsbench');
    await _exec('psql', [direct, '-qc', 'grant select on all tables in schema public to tlsbench']);
    const directTls = `host=127.0.0.1 port=${pg.port} user=tlsbench dbname=app sslmode=require`;
    const token = String(JSON.parse((await cluster.pctl(['tokens', 'add', '--type=node', '--format', 'json'])).stdout).token);
    agent = await startDaemon('dbbench-agent', (dir, diag) => [
      `data_dir: ${dir}`, `diag_addr: ${diag}`, 'log: { level: warn }', 'agent:', `  proxy_addr: ${cluster!.proxy}`, `  token: ${token}`, `  ca_pin: ${cluster!.pin}`,
      '  ssh: { enabled: false }', '  db:', '    databases:',
      `      - { name: pg, protocol: postgres, uri: "127.0.0.1:${pg!.port}", labels: { env: bench }, tls: { mode: verify-full, ca_file: ${path.join(certs, 'server.cas')}, server_name: localhost } }`,
      ...(maria ? [`      - { name: my, protocol: mysql, uri: "127.0.0.1:${maria.port}", labels: { env: bench }, tls: { mode: verify-full, ca_file: ${path.join(certs, 'server.cas')}, server_name: localhost } }`] : []), '',
    ].join('\n'), { command });
    await agent.waitReady();
    writeFileSync(path.join(work, 'role.yaml'), 'kind: role\nversion: v1\nmetadata: { name: bench-db }\nspec:\n  allow:\n    db_labels: { "*": "*" }\n    db_users: [alice]\n    db_names: [app]\n    resources: [{ kinds: [db], verbs: [list, read] }]\n');
    await cluster.pctl(['create', '-f', path.join(work, 'role.yaml')]);
    await signUpAndLogIn(cluster, home, { name: 'bench', roles: 'bench-db', logins: 'bench', password: 'a long and happy password' });
    const psh = pshIn(home);
    for (let i = 0; ; i++) {
      const login = await psh(['db', 'login', 'pg', '--db-user', 'alice', '--db-name', 'app']);
      if (login.code === 0) break;
      if (i > 50) throw new Error(login.stderr);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const pdir = path.join(home, 'profiles', cluster.proxy.replace(/[^A-Za-z0-9.-]/g, '_'));
    const login = JSON.parse(readFileSync(path.join(pdir, 'db', 'pg.json'), 'utf8')) as DbLogin;
    const viaPostern = psqlConnInfo(cluster.proxy, { login, certFile: path.join(pdir, 'db', 'pg.crt'), keyFile: path.join(pdir, 'db', 'pg.key'), caFile: path.join(pdir, 'cluster-ca.pem') });
    const pgb = await _startPgbouncer(work, pg);
    bouncer = pgb.child;
    const viaBouncer = `host=127.0.0.1 port=${pgb.port} user=alice dbname=app sslmode=disable`;

    await _pgbench(viaPostern, 2, 2); // warm-up: certificates fetched, JIT warm
    process.stdout.write(`pgbench -S -c 8 -j 2 -T ${SECONDS} (loopback, 2 cores shared by client, server and proxies)\n`);
    const d = await _pgbenchMeasured(direct, 8, SECONDS);
    process.stdout.write(`  direct          ${d.tps.toFixed(0).padStart(7)} tps\n`);
    const dt = await _pgbenchMeasured(directTls, 8, SECONDS);
    process.stdout.write(`  direct over TLS ${dt.tps.toFixed(0).padStart(7)} tps  ratio ${(dt.tps / d.tps).toFixed(2)} (pgbench and the server each doing TLS, as they do with Postern between them)\n`);
    const b = await _pgbench(viaBouncer, 8, SECONDS);
    process.stdout.write(`  pgbouncer       ${b.tps.toFixed(0).padStart(7)} tps  ratio ${(b.tps / d.tps).toFixed(2)}\n`);
    const pids = [cluster.daemon.child.pid!, agent.child.pid!];
    const cpuBefore = pids.map(cpuSeconds);
    const p = await _pgbenchMeasured(viaPostern, 8, SECONDS);
    const cpuAfter = pids.map(cpuSeconds);
    const cpu = cpuAfter.map((after, i) => after - cpuBefore[i]!);
    const usPerTxn = ((cpu[0]! + cpu[1]!) * 1e6) / p.transactions;
    process.stdout.write(`  Postern         ${p.tps.toFixed(0).padStart(7)} tps  ratio ${(p.tps / d.tps).toFixed(2)}; CPU per txn: auth+proxy ${((cpu[0]! * 1e6) / p.transactions).toFixed(0)} us, agent ${((cpu[1]! * 1e6) / p.transactions).toFixed(0)} us\n`);
    // What each transaction cost the whole machine (2 cores) tells how far any proxy could go:
    // the client and server's own share is at least what they spend talking TLS directly.
    const ceiling = 2e6 / (dt.machineUsPerTxn + usPerTxn) / d.tps;
    process.stdout.write(`  machine CPU per txn: direct ${d.machineUsPerTxn.toFixed(0)} us, direct over TLS ${dt.machineUsPerTxn.toFixed(0)} us, through Postern ${p.machineUsPerTxn.toFixed(0)} us (Postern's processes ${usPerTxn.toFixed(0)}); at ${usPerTxn.toFixed(0)} us/txn, 2 cores allow Postern at most ratio ${ceiling.toFixed(2)}\n`);
    const d1 = await _pgbenchLatencies(direct, 5, work);
    const p1 = await _pgbenchLatencies(viaPostern, 5, work);
    const addedUs = p1.meanUs - d1.meanUs;
    process.stdout.write(`single client (-c 1 -T 5), per transaction: direct mean ${d1.meanUs.toFixed(0)} us (median ${d1.p50Us}, p99 ${d1.p99Us}), Postern mean ${p1.meanUs.toFixed(0)} us (median ${p1.p50Us}, p99 ${p1.p99Us})\n`);
    let mysqlLine = `mysqlslap: skipped (${mysqlSkip})`;
    if (maria) {
      for (let i = 0; ; i++) {
        const login = await psh(['db', 'login', 'my', '--db-user', 'alice', '--db-name', 'app']);
        if (login.code === 0) break;
        if (i > 50) throw new Error(login.stderr);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const tunnelPort = await freePort();
      const pshArgs = ['psh', 'proxy', 'db', 'my', '--port', String(tunnelPort), '--tunnel'];
      tunnel = spawn(binary ?? process.execPath, binary ? pshArgs : [cliPath, ...pshArgs], { env: { ...process.env, POSTERN_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => tunnel!.stdout!.once('data', () => resolve()));
      const slapBusyBefore = machineBusySeconds();
      const slapDirect = await _mysqlslap(['--host=127.0.0.1', `--port=${maria.port}`, '--user=plain', '--skip-ssl']);
      const slapDirectUs = ((machineBusySeconds() - slapBusyBefore) * 1e6) / MYSQL_QUERIES / 3;
      const slapTlsBusyBefore = machineBusySeconds();
      const slapDirectTls = await _mysqlslap(['--host=127.0.0.1', `--port=${maria.port}`, '--user=plain', '--ssl']);
      const slapDirectTlsUs = ((machineBusySeconds() - slapTlsBusyBefore) * 1e6) / MYSQL_QUERIES / 3;
      const pids = [cluster.daemon.child.pid!, agent.child.pid!, tunnel.pid!];
      const measure = async (connection: string[]): Promise<{ qps: number; usPerQuery: number }> => {
        const before = pids.map(cpuSeconds);
        const qps = await _mysqlslap(connection);
        const cpu = pids.map(cpuSeconds).reduce((sum, value, i) => sum + value - before[i]!, 0);
        return { qps, usPerQuery: (cpu * 1e6) / MYSQL_QUERIES / 3 };
      };
      const tls = [`--ssl-ca=${path.join(pdir, 'cluster-ca.pem')}`, `--ssl-cert=${path.join(pdir, 'db', 'my.crt')}`, `--ssl-key=${path.join(pdir, 'db', 'my.key')}`];
      const listener = await measure(['--host=127.0.0.1', `--port=${mysqlListenPort}`, '--user=alice', '--ssl', ...tls]);
      const tunnelled = await measure(['--host=127.0.0.1', `--port=${tunnelPort}`, '--user=alice', '--skip-ssl']);
      process.stdout.write(`mysqlslap -c 8 (${MYSQL_QUERIES} x SELECT 1, 3 iterations): direct ${slapDirect.toFixed(0)} q/s (machine CPU ${slapDirectUs.toFixed(0)} us/query), direct over TLS ${slapDirectTls.toFixed(0)} q/s (${slapDirectTlsUs.toFixed(0)} us/query)\n`);
      process.stdout.write(`  Postern MySQL listener (client TLS -> proxy -> agent): ${listener.qps.toFixed(0)} q/s, ratio ${(listener.qps / slapDirect).toFixed(2)}, Postern CPU ${listener.usPerQuery.toFixed(0)} us/query\n`);
      process.stdout.write(`  Postern via psh proxy db --tunnel (psh -> proxy -> agent): ${tunnelled.qps.toFixed(0)} q/s, ratio ${(tunnelled.qps / slapDirect).toFixed(2)}, CPU ${tunnelled.usPerQuery.toFixed(0)} us/query incl. psh\n`);
      process.stdout.write(`  at ${listener.usPerQuery.toFixed(0)} us/query, 2 cores allow the MySQL listener at most ratio ${(2e6 / (slapDirectTlsUs + listener.usPerQuery) / slapDirect).toFixed(2)}\n`);
      mysqlLine = `mysqlslap ratio ${(listener.qps / slapDirect).toFixed(2)} via the MySQL listener, ${(tunnelled.qps / slapDirect).toFixed(2)} via psh --tunnel (target >= 0.4)`;
    }
    const audited = await cluster.pctl(['audit', 'search', '--type', 'db.query', '--from', '1h', '--limit', '1', '--format', 'json']);
    process.stdout.write(`audit: db.query events recorded (sample): ${JSON.parse(audited.stdout || '[]').length > 0 ? 'yes' : 'NO'}\n`);
    process.stdout.write(`${mysqlLine}\n`);
    process.stdout.write(`pgbench ratio: pgbouncer ${(b.tps / d.tps).toFixed(2)}, Postern ${(p.tps / d.tps).toFixed(2)} (target >= 0.35); Postern CPU ${usPerTxn.toFixed(0)} us/txn (target <= 100); single-client added latency ${addedUs.toFixed(0)} us (target <= 150)\n`);
  } finally {
    if (bouncer && bouncer.exitCode === null) {
      bouncer.kill('SIGINT');
      await once(bouncer, 'exit').catch(() => undefined);
    }
    if (process.env.DB_BENCH_PROFILE) {
      delete process.env.NODE_OPTIONS;
      await agent?.stop();
      await cluster?.daemon.stop();
    }
    tunnel?.kill('SIGTERM');
    await stopAll([agent, cluster?.daemon]);
    await pg?.stop();
    await maria?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
