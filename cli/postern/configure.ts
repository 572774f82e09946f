import os from 'node:os';
import { open } from 'node:fs/promises';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { parseLabels } from '../output.ts';
import { renderStarterConfig } from '../../cluster/common/starter-config.ts';
import { parseConfig } from '../../cluster/common/config.ts';

/** auth and proxy are cluster services; agent runs the agent, ssh and db the services it serves. */
const knownRoles = ['auth', 'proxy', 'agent', 'ssh', 'db'] as const;
type Role = (typeof knownRoles)[number];
const hostPort = /^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/;

/** `postern configure`: writes a starter config that validates. */
export async function configure(invocation: Invocation): Promise<number> {
  const roles = (stringOption(invocation, 'roles') ?? 'auth,proxy').split(',').map((r) => r.trim());
  for (const role of roles) if (!knownRoles.includes(role as Role)) throw new UsageError(`--roles: unknown role "${role}"; expected ${knownRoles.join(', ')}`);
  const agent = roles.includes('agent') || roles.includes('ssh') || roles.includes('db');
  const proxy = stringOption(invocation, 'proxy');
  if (proxy !== undefined && !hostPort.test(proxy)) throw new UsageError(`--proxy ${proxy}: expected host:port, e.g. proxy.example.com:3080`);
  const caPin = stringOption(invocation, 'ca-pin');
  if (caPin !== undefined && !/^sha256:[0-9a-f]{64}$/.test(caPin)) throw new UsageError(`--ca-pin ${caPin}: expected sha256:<64 hex digits> (pctl status prints it)`);
  const text = renderStarterConfig({
    roles: [...roles.filter((r): r is 'auth' | 'proxy' => r === 'auth' || r === 'proxy'), ...(agent ? ['agent' as const] : [])],
    // An agent-only host may share the machine with a cluster process, which has 3000.
    diagAddr: roles.includes('auth') || roles.includes('proxy') ? undefined : '127.0.0.1:3001',
    nodeName: stringOption(invocation, 'name'),
    clusterName: stringOption(invocation, 'cluster-name') ?? os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-'),
    dataDir: stringOption(invocation, 'data-dir') ?? '/var/lib/postern',
    proxyAddr: proxy,
    token: stringOption(invocation, 'token'),
    caPin,
    labels: invocation.options.labels ? parseLabels(stringOption(invocation, 'labels')) : undefined,
    databases: roles.includes('db'),
  });
  const output = stringOption(invocation, 'output');
  parseConfig(text, output ?? 'postern.yaml'); // a starter that does not validate is a bug; fail loudly
  if (!output) {
    process.stdout.write(text);
    return 0;
  }
  const handle = await open(output, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') throw new UsageError(`${output} exists; not overwriting it (remove it or choose another -o)`);
    throw error;
  });
  await handle.writeFile(text);
  await handle.close();
  process.stderr.write(`wrote ${output}; start with: postern start -c ${output}\n`);
  return 0;
}
