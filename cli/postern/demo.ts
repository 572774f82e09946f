/**
 * `postern demo` (what `npm start` runs): a local cluster on the embedded backend in
 * `.data/demo/`, with the commands to administer it printed once it is up. State is
 * kept between runs; delete the folder to start afresh.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { stringOption, type Invocation } from '../command.ts';
import { loadConfig } from '../../cluster/common/config.ts';
import { createLogger } from '../../cluster/common/logger.ts';
import { startDaemon } from './start.ts';

const demoConfig = (dataDir: string) => `# The local demo cluster (written by postern demo).
version: v1
data_dir: ${JSON.stringify(dataDir)}
log:
  level: warn
diag_addr: 127.0.0.1:3000
auth:
  cluster_name: demo
  listen_addr: 127.0.0.1:3025
`;

/** `postern demo`. */
export async function demo(invocation: Invocation): Promise<number> {
  const dir = path.resolve(stringOption(invocation, 'dir') ?? '.data/demo');
  const configPath = path.join(dir, 'postern.yaml');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(configPath)) await writeFile(configPath, demoConfig(path.join(dir, 'state')), { mode: 0o600 });
  const config = await loadConfig(configPath);
  const logger = createLogger({ level: config.log.level });
  const daemon = await startDaemon(config, logger);
  const pctl = `npx postern pctl -c ${path.relative(process.cwd(), configPath)}`;
  process.stdout.write(
    [
      '',
      `Postern demo cluster "${config.auth?.cluster_name}" is running (state in ${path.relative(process.cwd(), dir)}/).`,
      `  auth API:    ${daemon.auth?.address} (gRPC, mutual TLS)`,
      `  diagnostics: http://${config.diag_addr}/healthz  /readyz  /metrics`,
      '',
      'Administer it from another terminal:',
      `  ${pctl} status`,
      `  ${pctl} users add alice --roles access,editor --logins ${process.env.USER ?? 'root'}`,
      `  ${pctl} tokens add --type=node --ttl 1h`,
      `  ${pctl} get roles --format yaml`,
      `  ${pctl} audit search --from 1h`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await daemon.stop();
  return 0;
}
