/** `pctl clusters ls`: the leaf clusters that joined this root (remote_cluster records) and their tunnels. */
import type { Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

interface RemoteClusterView {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { joined?: string };
  status?: { state: 'online' | 'offline'; last_heartbeat?: string };
}

export async function clustersList(invocation: Invocation): Promise<number> {
  return withAuth(invocation, async ({ client }) => {
    const clusters = JSON.parse((await client.getResources({ kind: 'remote_cluster', name: '' })).resourcesJson) as RemoteClusterView[];
    const rows = clusters.map((c) => ({ name: c.metadata.name, status: c.status?.state ?? 'offline', last_heartbeat: c.status?.last_heartbeat ?? '', labels: c.metadata.labels ?? {}, joined: c.spec.joined ?? '' }));
    printData(outputFormat(invocation.options.format), rows, (list) =>
      renderTable(
        ['NAME', 'STATUS', 'LAST HEARTBEAT', 'LABELS', 'JOINED'],
        list.map((c) => [c.name, c.status, c.last_heartbeat || '-', formatLabels(c.labels), c.joined || '-']),
        'no leaf clusters; give a leaf admin a token from: pctl tokens add --type=trusted_cluster',
      ),
    );
    return 0;
  });
}
