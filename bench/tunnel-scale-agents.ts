/**
 * An agent process of bench/tunnel-scale.ts: one real TunnelPool (agent/tunnel) per
 * simulated agent, each with its own host identity, so each holds one reverse tunnel
 * to the proxy and reconnects with the pool's jittered back-off (250 ms doubling to 10 s).
 * Discovery is answered locally (the one proxy) unless BENCH_REAL_DISCOVERY=1, so the
 * idle window measures keepalives, not 5,000 HTTPS discovery polls.
 *
 * argv: identities file, first index, count, proxy address. IPC: `{ type: 'count' }` ->
 * `{ up, ups }` (tunnels up now, 'up' events so far).
 */
import { readFileSync } from 'node:fs';
import { silentLogger } from '../cluster/common/logger.ts';
import { TunnelPool } from '../agent/tunnel/tunnel-pool.ts';
import type { Discovery } from '../agent/proxy/discovery.ts';

interface Identities { ca_pems: string[]; hosts: Array<{ host_id: string; cert_pem: string; key_pem: string }> }

const [file = '', first = '0', count = '0', proxyAddr = ''] = process.argv.slice(2);
const all = JSON.parse(readFileSync(file, 'utf8')) as Identities;
const hosts = all.hosts.slice(Number(first), Number(first) + Number(count));
const logger = silentLogger();
const realDiscovery = process.env.BENCH_REAL_DISCOVERY === '1';
const staticDiscovery = async (): Promise<Discovery> => ({ cluster_name: 'alpha', version: 'bench', proxies: [], ca_pins: [] });

const pools: TunnelPool[] = [];
let ups = 0;
for (const host of hosts) {
  const identity = { ca_pems: all.ca_pems, cert_pem: host.cert_pem, key_pem: host.key_pem };
  const pool = new TunnelPool({
    proxyAddr,
    identity: () => identity,
    onStream: (dial) => { dial.stream.end(); }, // no dials in this benchmark
    logger,
    ...(realDiscovery ? {} : { discover: staticDiscovery }),
  });
  pool.on('up', () => { ups++; });
  pools.push(pool);
}

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'count') process.send!({ up: pools.reduce((sum, pool) => sum + pool.connected, 0), ups });
  else if (msg.type === 'why') {
    // Why the links that are not up are not: state and last error (addresses and ports stripped), counted.
    const why: Record<string, number> = {};
    for (const pool of pools) {
      for (const row of pool.status()) {
        if (row.state === 'up') continue;
        const key = `${row.state}: ${(row.lastError ?? '-').replace(/^cannot open a tunnel to the proxy at \S+: /, '').replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').slice(0, 70)}`;
        why[key] = (why[key] ?? 0) + 1;
      }
    }
    process.send!({ why });
  }
  else if (msg.type === 'stop') void Promise.all(pools.map((pool) => pool.stop())).then(() => process.exit(0));
});

// Ramp: 100 new agents every 50 ms, like a fleet coming up, not one SYN flood.
for (let i = 0; i < pools.length; i += 100) {
  for (const pool of pools.slice(i, i + 100)) void pool.start();
  await new Promise((resolve) => setTimeout(resolve, 50));
}
process.send!({ started: pools.length });
