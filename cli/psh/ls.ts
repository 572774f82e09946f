/** `psh ls`: the nodes of the cluster, through the auth API behind the proxy (SNI pass-through). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { connectAuth } from '../../cluster/api/auth-client.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import { loadProfile, profileDir, profileFiles } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';

interface NodeView {
  host_id: string;
  node_name: string;
  labels: Record<string, string>;
  services: string[];
  online: boolean;
}

export async function ls(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const dir = profileDir(profile.proxy);
  const [key, cert, ca] = await Promise.all([profileFiles.tlsKey, profileFiles.tlsCert, clusterCaFile].map((file) => readFile(path.join(dir, file), 'utf8')));
  const cluster = stringOption(invocation, 'cluster') ?? profile.route;
  let nodes: NodeView[];
  if (cluster) {
    // A leaf: the root proxy asks the leaf through its tunnel.
    const answer = await callWebApi<{ resources: NodeView[] }>(parseProxyAddress(profile.proxy), 'POST', '/v1/resources', {
      caPems: [ca!],
      clientCert: { keyPem: key!, certPem: cert! },
      body: { cluster, kind: 'node' },
    });
    nodes = answer.resources;
  } else {
    const connection = connectAuth(profile.proxy, { key_pem: key!, cert_pem: cert!, ca_pems: [ca!] });
    try {
      nodes = JSON.parse((await connection.client.getResources({ kind: 'node', name: '' }, { deadlineMs: 10_000 })).resourcesJson) as NodeView[];
    } finally {
      connection.close();
    }
  }
  const rows = nodes.map((n) => ({ name: n.node_name, id: n.host_id, labels: n.labels ?? {}, services: n.services ?? [], online: n.online }));
  printData(outputFormat(invocation.options.format), rows, (list) =>
    renderTable(
      ['NAME', 'ID', 'LABELS', 'STATUS'],
      list.map((n) => [n.name, n.id, formatLabels(n.labels), n.online ? 'online' : 'offline']),
      'no nodes you can see; ask an admin, or join one with postern join',
    ),
  );
  return 0;
}
