/**
 * `postern demo` (what `npm start` runs): a local cluster on the embedded backend —
 * auth and proxy in one process, plus an agent that joins through the proxy with a
 * token and the CA pin, exactly as a remote host would; and a leaf cluster that trusts
 * it, with its own agent (demo-trust.ts). State lives in `.data/demo/`
 * and is reused between runs; delete the folder to start afresh.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { stringOption, type Invocation } from '../command.ts';
import { loadConfig } from '../../cluster/common/config.ts';
import { createLogger } from '../../cluster/common/logger.ts';
import { caPin } from '../../cluster/auth/pki/ca-pin.ts';
import { NotFoundError } from '../../protocols/errors.ts';
import { startDaemon, type RunningDaemon } from './start.ts';
import { demoLeafName, ensureLeavesRole, leafNodeName, leavesRole, startDemoLeaf } from './demo-trust.ts';

const clusterConfig = (dataDir: string) => `# The demo cluster: auth and proxy (written by postern demo).
version: v1
data_dir: ${JSON.stringify(dataDir)}
log:
  level: warn
diag_addr: 127.0.0.1:3000
auth:
  cluster_name: demo
  listen_addr: 127.0.0.1:3025
proxy:
  listen_addr: 127.0.0.1:3080
  public_addr: localhost:3080
`;

const agentConfig = (dataDir: string, token: string, pin: string) => `# The demo agent (written by postern demo).
version: v1
data_dir: ${JSON.stringify(dataDir)}
log:
  level: warn
diag_addr: 127.0.0.1:3001
agent:
  node_name: ${JSON.stringify(os.hostname())}
  proxy_addr: 127.0.0.1:3080
  token: ${JSON.stringify(token)}
  ca_pin: ${JSON.stringify(pin)}
  labels:
    env: demo
  command_labels:
    kernel:
      command: [uname, -r]
      period: 1h
`;

/** `postern demo`. */
export async function demo(invocation: Invocation): Promise<number> {
  const dir = path.resolve(stringOption(invocation, 'dir') ?? '.data/demo');
  const clusterPath = path.join(dir, 'cluster.yaml');
  const agentPath = path.join(dir, 'agent.yaml');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(clusterPath)) await writeFile(clusterPath, clusterConfig(path.join(dir, 'cluster')), { mode: 0o600 });
  const config = await loadConfig(clusterPath);
  const logger = createLogger({ level: config.log.level });
  const daemons: RunningDaemon[] = [await startDaemon(config, logger)];
  try {
    const auth = daemons[0]?.auth;
    if (!auth) throw new Error('the demo cluster config lost its auth section');
    const pin = caPin(auth.deps.authorities.trustedTlsCerts('host')[0] ?? '');
    if (!existsSync(agentPath)) {
      const { secret } = await auth.deps.tokens.add({ roles: ['node'], ttlMs: 600_000, labels: { joined: 'token' }, singleUse: true });
      await writeFile(agentPath, agentConfig(path.join(dir, 'agent'), secret, pin), { mode: 0o600 });
    }
    daemons.push(await startDaemon(await loadConfig(agentPath), logger));
    await ensureLeavesRole(auth);
    const leaf = await startDemoLeaf(dir, auth, logger);
    daemons.push(...leaf.daemons);
    const invite = await inviteAlice(auth.deps.users);
    printWelcome(dir, clusterPath, pin, invite);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    for (const daemon of daemons.reverse()) await daemon.stop();
  }
  return 0;
}

/** Creates alice on the first run and returns her sign-up token; undefined once she exists. */
async function inviteAlice(users: { get(name: string): Promise<unknown>; create(name: string, spec: { roles: string[]; traits: Record<string, string[]> }): Promise<unknown>; createResetToken(name: string, options: { purpose: 'invite' }): Promise<{ token: string }> }): Promise<string | undefined> {
  try {
    await users.get('alice');
    return undefined;
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  await users.create('alice', { roles: ['access', 'editor', leavesRole], traits: { logins: [os.userInfo().username] } });
  return (await users.createResetToken('alice', { purpose: 'invite' })).token;
}

function printWelcome(dir: string, clusterPath: string, pin: string, invite: string | undefined): void {
  const rel = path.relative(process.cwd(), clusterPath);
  const pctl = `npx postern pctl -c ${rel}`;
  const lines = [
    '',
    `Postern demo cluster "demo" is running (state in ${path.relative(process.cwd(), dir)}/):`,
    '  proxy:       localhost:3080 (the one public port)',
    '  web UI:      https://localhost:3080/ (sign in as alice after her sign-up below)',
    '  auth API:    127.0.0.1:3025 (gRPC, mutual TLS)',
    `  agent:       ${os.hostname()} (joined through the proxy with a token and the CA pin)`,
    '  diagnostics: http://127.0.0.1:3000/healthz /readyz /metrics (cluster), :3001 (agent)',
    `  CA pin:      ${pin}`,
    `  leaf:        cluster ${demoLeafName} at localhost:3180, trusting demo; its agent ${leafNodeName()}`,
    '',
    'Administer it from another terminal:',
    `  ${pctl} status`,
    `  ${pctl} nodes ls`,
    `  ${pctl} inventory ls`,
    `  ${pctl} tokens add --type=node --ttl 1h`,
    `  ${pctl} audit search --from 1h`,
    '',
  ];
  if (invite) {
    lines.push(
      'Become the user alice (roles access, editor, leaves):',
      `  npx postern psh signup --proxy localhost:3080 --ca-pin ${pin} --token=${invite}`,
      '  npx postern psh login --proxy localhost:3080 --user alice',
      '  npx postern psh status',
      '  npx postern psh ls',
      `  npx postern psh ssh ${os.userInfo().username}@${os.hostname()} uptime`,
      '  npx postern psh config >> ~/.ssh/config   # then plain ssh works too',
      '',
      `Reach the leaf cluster's node through the root proxy (role map on the leaf: access -> access):`,
      '  npx postern psh clusters',
      `  npx postern psh ls --cluster ${demoLeafName}`,
      `  npx postern psh ssh --cluster ${demoLeafName} ${os.userInfo().username}@${leafNodeName()} uptime`,
      `  npx postern psh login ${demoLeafName}    # make the leaf your default route; psh login demo goes back`,
    );
  } else {
    lines.push('alice exists from an earlier run; a new sign-up token for her:', `  ${pctl} users reset alice`, '  npx postern psh login --proxy localhost:3080 --user alice');
  }
  lines.push('', 'Press Ctrl-C to stop.', '');
  process.stdout.write(lines.join('\n'));
}
