/**
 * `postern install systemd`: prints or writes the systemd unit for an agent host or a
 * cluster host (cli/postern/systemd-unit.ts says what each one contains and why).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { stringOption, UsageError, type Invocation } from '../command.ts';
import { writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { renderUnit, unitLayout, type UnitRole } from './systemd-unit.ts';

const roles: UnitRole[] = ['agent', 'cluster'];

/** `postern install systemd [--role agent|cluster] [--write PATH]`. */
export async function installSystemd(invocation: Invocation): Promise<number> {
  const role = (stringOption(invocation, 'role') ?? 'agent') as UnitRole;
  if (!roles.includes(role)) throw new UsageError(`--role ${role}: expected agent (hosts that serve SSH and other resources) or cluster (auth and proxy)`);
  const drainText = stringOption(invocation, 'drain-seconds');
  const drainSeconds = drainText === undefined ? undefined : Number(drainText);
  if (drainSeconds !== undefined && !(Number.isInteger(drainSeconds) && drainSeconds >= 0 && drainSeconds <= 3600)) {
    throw new UsageError(`--drain-seconds ${drainText}: expected whole seconds from 0 to 3600`);
  }
  const binary = stringOption(invocation, 'bin');
  if (binary !== undefined && !path.isAbsolute(binary)) throw new UsageError(`--bin ${binary}: systemd needs an absolute path, e.g. /usr/local/bin/postern`);
  const config = stringOption(invocation, 'config');
  if (config !== undefined && !path.isAbsolute(config)) throw new UsageError(`--config ${config}: systemd needs an absolute path, e.g. ${unitLayout[role].config}`);
  const text = renderUnit({ role, binary, config, drainSeconds });
  const write = stringOption(invocation, 'write');
  if (write === undefined) {
    process.stdout.write(text);
    return 0;
  }
  const file = isDirectory(write) ? path.join(write, unitLayout[role].unit) : write;
  await writeFileAtomic(file, text, 0o644);
  const unit = path.basename(file);
  process.stderr.write(`wrote ${file}; next: systemctl daemon-reload && systemctl enable --now ${unit}\n`);
  return 0;
}

function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}
