/** `pctl tokens add | ls | rm`. */
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, parseLabels, printData, renderTable } from '../output.ts';
import { parseDuration } from '../../cluster/common/duration.ts';
import { withAuth } from './connect.ts';

interface TokenView {
  metadata: { name: string; expires: string; labels?: Record<string, string> };
  spec: { roles: string[]; single_use: boolean };
  status: { state: string; uses: number; last_used_by?: string };
}

export async function tokensAdd(invocation: Invocation): Promise<number> {
  const roles = (stringOption(invocation, 'type') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (roles.length === 0) throw new UsageError('--type is required: node, db, app, kube, desktop, proxy, trusted_cluster or bot (comma-separated)');
  const ttlMs = parseDuration(stringOption(invocation, 'ttl') ?? '30m');
  const labels = parseLabels(invocation.options.labels as string[] | undefined);
  return withAuth(invocation, async ({ client }) => {
    const response = await client.addToken({ roles, ttlSeconds: BigInt(Math.ceil(ttlMs / 1000)), labels, singleUse: Boolean(invocation.options['single-use']) });
    const format = outputFormat(invocation.options.format);
    printData(format, { token: response.token, id: response.id, roles, expires: response.expires, labels }, (t) =>
      `The join token ${t.id} (roles ${roles.join(',')}) expires ${t.expires}:\n\n  ${t.token}\n\n` +
      (roles.includes('trusted_cluster')
        ? 'Give it to the leaf cluster admin for the trusted_cluster resource.\n'
        : `Join an agent with:\n  postern join --proxy PROXY_HOST:3080 --token ${t.token} --ca-pin $(pctl status --format json | jq -r .ca_pin)\n`),
    );
    return 0;
  });
}

export async function tokensList(invocation: Invocation): Promise<number> {
  return withAuth(invocation, async ({ client }) => {
    const tokens = JSON.parse((await client.getResources({ kind: 'token', name: '' })).resourcesJson) as TokenView[];
    printData(outputFormat(invocation.options.format), tokens, (list) =>
      renderTable(
        ['ID', 'ROLES', 'STATE', 'USES', 'SINGLE USE', 'EXPIRES', 'LABELS'],
        list.map((t) => [t.metadata.name, t.spec.roles.join(','), t.status.state, String(t.status.uses), t.spec.single_use ? 'yes' : 'no', t.metadata.expires, formatLabels(t.metadata.labels)]),
        'no join tokens; add one with: pctl tokens add --type=node',
      ),
    );
    return 0;
  });
}

export async function tokensRemove(invocation: Invocation): Promise<number> {
  const [id] = invocation.positionals;
  if (!id) throw new UsageError('name the token id: pctl tokens rm ID (see pctl tokens ls)');
  return withAuth(invocation, async ({ client }) => {
    await client.removeToken({ id });
    process.stdout.write(`token ${id} removed\n`);
    return 0;
  });
}
