import type { Invocation } from '../command.ts';
import { outputFormat, printData } from '../output.ts';
import { versionInfo } from '../../cluster/common/version.ts';

/** `postern version`. */
export async function version(invocation: Invocation): Promise<number> {
  const info = versionInfo();
  printData(outputFormat(invocation.options.format), info, (i) => `postern ${i.version} (commit ${i.commit}, ${i.node}, built ${i.built})\n`);
  return 0;
}
