import os from 'node:os';
import { open } from 'node:fs/promises';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { parseLabels } from '../output.ts';
import { renderStarterConfig } from '../../cluster/common/starter-config.ts';
import { parseConfig } from '../../cluster/common/config.ts';

const knownRoles = ['auth', 'proxy', 'agent'] as const;
type Role = (typeof knownRoles)[number];

/** `postern configure`: writes a starter config that validates. */
export async function configure(invocation: Invocation): Promise<number> {
  const roles = (stringOption(invocation, 'roles') ?? 'auth,proxy').split(',').map((r) => r.trim());
  for (const role of roles) if (!knownRoles.includes(role as Role)) throw new UsageError(`--roles: unknown role "${role}"; expected ${knownRoles.join(', ')}`);
  const text = renderStarterConfig({
    roles: roles as Role[],
    clusterName: stringOption(invocation, 'cluster-name') ?? os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-'),
    dataDir: stringOption(invocation, 'data-dir') ?? '/var/lib/postern',
    proxyAddr: stringOption(invocation, 'proxy'),
    token: stringOption(invocation, 'token'),
    caPin: stringOption(invocation, 'ca-pin'),
    labels: invocation.options.labels ? parseLabels(stringOption(invocation, 'labels')) : undefined,
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
