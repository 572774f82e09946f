/**
 * `postern join`: makes this host a node of a cluster with a join token and the
 * cluster's CA pin, writing the host identity into the data directory. `postern start`
 * with an `agent:` section then runs the agent with it (no token needed any more).
 */
import os from 'node:os';
import path from 'node:path';
import { stringOption, UsageError, type Invocation } from '../command.ts';
import { formatLabels, parseLabels } from '../output.ts';
import { joinCluster } from '../../agent/join/join-cluster.ts';
import { hostAddresses } from '../../agent/inventory/host-facts.ts';

const hostPort = /^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/;

/** `postern join --proxy HOST:PORT --token T --ca-pin sha256:...`. */
export async function join(invocation: Invocation): Promise<number> {
  const proxyAddr = stringOption(invocation, 'proxy', true);
  if (!hostPort.test(proxyAddr)) throw new UsageError(`--proxy ${proxyAddr}: expected host:port, e.g. proxy.example.com:3080`);
  const token = stringOption(invocation, 'token', true);
  const caPin = stringOption(invocation, 'ca-pin', true);
  const dataDir = path.resolve(stringOption(invocation, 'data-dir') ?? '/var/lib/postern');
  const nodeName = stringOption(invocation, 'name') ?? os.hostname();
  const labels = parseLabels(invocation.options.labels as string[] | undefined);
  const result = await joinCluster({ proxyAddr, token, caPin, dataDir, nodeName, labels, addresses: hostAddresses() });
  const lines = [
    `joined cluster ${result.cluster} as node ${nodeName} (host id ${result.identity.host_id})`,
    `identity written to ${result.identityPath}; certificate valid until ${result.expires.toISOString()} (the agent renews it while it runs)`,
  ];
  if (Object.keys(result.record.token_labels).length > 0) lines.push(`labels from the token: ${formatLabels(result.record.token_labels)}`);
  if (Object.keys(labels).length > 0) lines.push(`labels given here: ${formatLabels(labels)}`);
  lines.push(`next: postern start -c FILE with data_dir: ${dataDir} and an agent: section (proxy_addr: ${proxyAddr})`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
