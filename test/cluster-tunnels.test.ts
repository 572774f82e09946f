/**
 * A cluster of real processes (`postern start`): auth+proxy in one, a second proxy
 * joined with a proxy token in another, and two agents joined with one node token and
 * the CA pin. The agents find the second proxy through discovery and keep a tunnel to
 * each proxy (read from each proxy's `postern_proxy_tunnels` gauge); they come back to
 * the cluster proxy after it restarts; and an agent killed with SIGKILL goes offline in
 * `pctl nodes ls` once it misses its heartbeats (3 x 10 s, not configurable).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { runCli } from './fixtures/auth.ts';
import { freePort, startDaemon, stopAll, type DaemonProcess } from './fixtures/processes.ts';

interface NodeRow {
  host_id: string;
  node_name: string;
  online: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `everyMs` until it returns a value, or throws naming `what` after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The proxy's `postern_proxy_tunnels` gauge from its diag port, or undefined while unreachable. */
async function tunnelGauge(daemon: DaemonProcess): Promise<number | undefined> {
  const text = await fetch(`http://127.0.0.1:${daemon.diagPort}/metrics`).then((r) => (r.ok ? r.text() : ''), () => '');
  const match = /^postern_proxy_tunnels (\d+)$/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** The proxies a proxy's `GET /v1/discovery` lists (certificate not checked: only the list matters here). */
function discoveredProxies(port: number): Promise<string[]> {
  return new Promise((resolve) => {
    const request = https.get({ host: '127.0.0.1', port, path: '/v1/discovery', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], timeout: 3_000 } as https.RequestOptions, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => {
        try {
          resolve((JSON.parse(body) as { proxies: Array<{ public_addr: string }> }).proxies.map((p) => p.public_addr).sort());
        } catch {
          resolve([]);
        }
      });
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve([]));
  });
}

describe('cluster of processes: two proxies, two agents, tunnels to both, restarts and presence', { timeout: 120_000 }, () => {
  let cluster: DaemonProcess | undefined;
  let proxy2: DaemonProcess | undefined;
  const agents: DaemonProcess[] = [];
  let clusterProxyPort = 0;
  let proxy2Port = 0;

  const pctl = async (args: string[]): Promise<unknown> => {
    const result = await runCli(['pctl', ...args, '--format', 'json', '-c', cluster!.configPath]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout);
  };
  const nodes = async () => (await pctl(['nodes', 'ls'])) as NodeRow[];
  const allLogs = () => [cluster, proxy2, ...agents].map((d) => (d ? `--- ${d.name}\n${d.logs().slice(-6_000)}` : '')).join('\n');

  before(async () => {
    clusterProxyPort = await freePort();
    proxy2Port = await freePort();
    const authPort = await freePort();
    cluster = await startDaemon('cluster', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nauth:\n  cluster_name: mesh\n  listen_addr: 127.0.0.1:${authPort}\n` +
      `proxy:\n  listen_addr: 127.0.0.1:${clusterProxyPort}\n  public_addr: 127.0.0.1:${clusterProxyPort}\n`);
    await cluster.waitReady();
    const pin = String(((await pctl(['status'])) as { ca_pin: string }).ca_pin);
    const proxyToken = String(((await pctl(['tokens', 'add', '--type=proxy'])) as { token: string }).token);
    const nodeToken = String(((await pctl(['tokens', 'add', '--type=node', '--labels', 'env=mesh'])) as { token: string }).token);

    // The second proxy joins the auth service directly (auth_addr), with a proxy token and the pin.
    proxy2 = await startDaemon('proxy2', (dir, diag) =>
      `data_dir: ${dir}\ndiag_addr: ${diag}\nproxy:\n  listen_addr: 127.0.0.1:${proxy2Port}\n  public_addr: 127.0.0.1:${proxy2Port}\n` +
      `  auth_addr: 127.0.0.1:${authPort}\n  token: ${proxyToken}\n  ca_pin: ${pin}\n`);
    await proxy2.waitReady();
    // Agents re-discover every 30 s (not configurable from postern.yaml) and on every tunnel
    // coming up, so the cluster proxy has to list the second one before the agents start.
    const both = [`127.0.0.1:${clusterProxyPort}`, `127.0.0.1:${proxy2Port}`].sort();
    await until('the cluster proxy to list both proxies in /v1/discovery', async () => {
      const listed = await discoveredProxies(clusterProxyPort);
      return listed.join() === both.join() ? listed : undefined;
    }, 25_000, 200);

    // Two agents, one (multi-use) node token, seeded with the cluster proxy only.
    for (const name of ['mesh-a', 'mesh-b']) {
      agents.push(await startDaemon(name, (dir, diag) =>
        `data_dir: ${dir}\ndiag_addr: ${diag}\nagent:\n  node_name: ${name}\n  proxy_addr: 127.0.0.1:${clusterProxyPort}\n  token: ${nodeToken}\n  ca_pin: ${pin}\n`));
    }
  });

  after(async () => {
    await stopAll([...agents, proxy2, cluster]);
  });

  it('both agents are online in pctl nodes ls within 2 s of their readiness', async () => {
    // Polling starts with the first agent ready, so each agent's lag is measured from its own readiness.
    const readiness = agents.map((agent) => agent.waitReady(30_000).then(() => Date.now()));
    await Promise.race(readiness);
    // Seen at the end of the pctl run that showed it online: conservative by one pctl run.
    const seenAt = new Map<string, number>();
    const pctlMs: number[] = [];
    await until('both agents online in pctl nodes ls', async () => {
      const started = Date.now();
      const rows = await nodes();
      pctlMs.push(Date.now() - started);
      for (const row of rows) if (row.online && !seenAt.has(row.node_name)) seenAt.set(row.node_name, Date.now());
      return seenAt.size === 2 ? true : undefined;
    }, 30_000, 100);
    const readyAt = await Promise.all(readiness);
    const lags = agents.map((agent, i) => (seenAt.get(agent.name) ?? Infinity) - readyAt[i]!);
    console.log(`# online after readiness: ${agents.map((a, i) => `${a.name} ${lags[i]} ms`).join(', ')} (pctl runs took ${pctlMs.join(', ')} ms)`);
    for (const [i, lag] of lags.entries()) assert.ok(lag <= 2_000, `${agents[i]!.name} online ${lag} ms after it was ready`);
    assert.deepEqual((await nodes()).map((n) => n.node_name).sort(), ['mesh-a', 'mesh-b']);
  });

  it('each agent holds a tunnel to both proxies (each proxy counts 2 tunnels)', async () => {
    const start = Date.now();
    try {
      await until('2 tunnels on each proxy', async () => ((await tunnelGauge(cluster!)) === 2 && (await tunnelGauge(proxy2!)) === 2 ? true : undefined), 15_000, 100);
    } catch (error) {
      throw new Error(`${(error as Error).message}: cluster ${await tunnelGauge(cluster!)}, proxy2 ${await tunnelGauge(proxy2!)}\n${allLogs()}`);
    }
    console.log(`# both proxies at 2 tunnels ${Date.now() - start} ms after both agents were online`);
    // Stable, not a count passing through 2 on the way elsewhere.
    await sleep(1_000);
    assert.deepEqual([await tunnelGauge(cluster!), await tunnelGauge(proxy2!)], [2, 2]);
  });

  it('after the cluster process is killed and restarted, the agents are back on it within 10 s', async () => {
    const killedAt = Date.now();
    await cluster!.kill();
    // The agents' back-off grows while the cluster is away (full jitter, cap doubling from
    // 250 ms to 10 s), so it is restarted at once to keep the outage, and the retry delay, short.
    await cluster!.restart();
    // The second proxy still holds both agents' tunnels while the cluster is away.
    // In about one run in six a tunnel to the second proxy dropped here. The likely cause —
    // a restarted proxy's first discovery lists only itself, and agents dropped their other
    // tunnels — is fixed (agents now need two such answers); until runs show it is the only
    // one, a drop must heal within 5 s and is reported.
    const onSecond = await tunnelGauge(proxy2!);
    if (onSecond !== 2) {
      const since = Date.now();
      try {
        await until('2 tunnels on the second proxy again', async () => ((await tunnelGauge(proxy2!)) === 2 ? true : undefined), 5_000, 100);
      } catch {
        assert.fail(`the second proxy holds ${await tunnelGauge(proxy2!)} tunnels while the cluster is away, not 2\n${allLogs()}`);
      }
      console.log(`# the second proxy held ${onSecond} tunnel(s) right after the kill; 2 again after ${Date.now() - since} ms`);
    }
    await cluster!.waitReady(20_000);
    const back = Date.now();
    try {
      await until('2 tunnels on the restarted cluster proxy', async () => ((await tunnelGauge(cluster!)) === 2 ? true : undefined), 10_000, 100);
    } catch (error) {
      throw new Error(`${(error as Error).message}: gauge ${await tunnelGauge(cluster!)}\n${allLogs()}`);
    }
    const retries = agents.map((a) => [...a.logs().matchAll(/"retryInMs":(\d+)/g)].slice(-1)[0]?.[1]).join(', ');
    console.log(`# restarted cluster proxy at 2 tunnels ${Date.now() - back} ms after it was ready (down ${back - killedAt} ms; agents' last retry delays ${retries} ms)`);
    assert.equal(await tunnelGauge(proxy2!), 2);
  });

  it('an agent killed with SIGKILL goes offline within the heartbeat deadline; the other stays online', async () => {
    const [alive, killed] = agents as [DaemonProcess, DaemonProcess];
    // Both online again after the cluster restart, so the flip below is the kill's doing.
    await until('both agents online after the restart', async () => {
      const rows = await nodes();
      return rows.length === 2 && rows.every((r) => r.online) ? true : undefined;
    }, 12_000, 200);
    await killed.kill();
    const killedAt = Date.now();
    const elapsed = await until(`${killed.name} offline`, async () => {
      const rows = await nodes();
      const byName = new Map(rows.map((r) => [r.node_name, r]));
      assert.equal(byName.get(alive.name)?.online, true, `${alive.name} went offline while ${killed.name} was dead`);
      return byName.get(killed.name)?.online === false ? Date.now() - killedAt : undefined;
    }, 35_000, 250);
    console.log(`# ${killed.name} offline ${elapsed} ms after SIGKILL`);
    // Last heartbeat at most 10 s before the kill, offline 30 s after it: 20-30 s, plus a pctl run.
    assert.ok(elapsed <= 32_000, `offline only ${elapsed} ms after the kill`);
    const rows = await nodes();
    assert.deepEqual(rows.map((r) => [r.node_name, r.online]).sort(), [[alive.name, true], [killed.name, false]]);
  });
});
