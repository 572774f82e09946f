/** `pctl nodes ls` and `pctl inventory ls`: what joined, what it serves, whether it is online. */
import { type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

interface HostView {
  kind: string;
  host_id: string;
  node_name: string;
  system_roles: string[];
  labels: Record<string, string>;
  services: string[];
  public_addr?: string;
  inventory: {
    hostname?: string;
    os?: { distro?: string; release?: string };
    kernel?: string;
    arch?: string;
    cpu?: { model?: string; cores?: number };
    memoryBytes?: number;
    version?: string;
    addresses?: string[];
  };
  last_seen: string;
  online: boolean;
}

async function hosts(invocation: Invocation, kinds: string[]): Promise<HostView[]> {
  return withAuth(invocation, async ({ client }) => {
    const all: HostView[] = [];
    for (const kind of kinds) all.push(...(JSON.parse((await client.getResources({ kind, name: '' })).resourcesJson) as HostView[]));
    return all;
  });
}

function ago(iso: string): string {
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return seconds < 120 ? `${seconds}s ago` : seconds < 7200 ? `${Math.round(seconds / 60)}m ago` : `${Math.round(seconds / 3600)}h ago`;
}

export async function nodesList(invocation: Invocation): Promise<number> {
  const list = await hosts(invocation, ['node']);
  printData(outputFormat(invocation.options.format), list, (rows) =>
    renderTable(
      ['NAME', 'ID', 'SERVICES', 'LABELS', 'STATUS', 'LAST SEEN'],
      rows.map((h) => [h.node_name, h.host_id, h.services.join(','), formatLabels(h.labels), h.online ? 'online' : 'offline', ago(h.last_seen)]),
      'no agents have joined; add a token with pctl tokens add --type=node and run postern join',
    ),
  );
  return 0;
}

export async function inventoryList(invocation: Invocation): Promise<number> {
  const list = await hosts(invocation, ['node', 'proxy']);
  printData(outputFormat(invocation.options.format), list, (rows) =>
    renderTable(
      ['NAME', 'KIND', 'STATUS', 'VERSION', 'OS', 'KERNEL', 'ARCH', 'CPU', 'MEMORY', 'ADDRESSES'],
      rows.map((h) => [
        h.node_name,
        h.kind,
        h.online ? 'online' : `offline (${ago(h.last_seen)})`,
        h.inventory.version ?? '',
        [h.inventory.os?.distro, h.inventory.os?.release].filter(Boolean).join(' '),
        h.inventory.kernel ?? '',
        h.inventory.arch ?? '',
        h.inventory.cpu?.cores ? `${h.inventory.cpu.cores} cores` : '',
        h.inventory.memoryBytes ? `${(h.inventory.memoryBytes / 2 ** 30).toFixed(1)} GiB` : '',
        (h.inventory.addresses ?? []).join(','),
      ]),
      'nothing has joined yet',
    ),
  );
  return 0;
}
