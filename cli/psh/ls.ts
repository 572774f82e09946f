/** `psh ls`: the nodes of the cluster, through the auth API behind the proxy (SNI pass-through). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { connectAuth } from '../../cluster/api/auth-client.ts';
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
  const connection = connectAuth(profile.proxy, { key_pem: key!, cert_pem: cert!, ca_pems: [ca!] });
  let nodes: NodeView[];
  try {
    nodes = JSON.parse((await connection.client.getResources({ kind: 'node', name: '' }, { deadlineMs: 10_000 })).resourcesJson) as NodeView[];
  } finally {
    connection.close();
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
