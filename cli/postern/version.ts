import type { Invocation } from '../command.ts';
import { outputFormat, printData } from '../output.ts';
import { versionInfo } from '../../cluster/common/version.ts';

/**
 * Whether ssh2 found its native crypto binding (installers/build-ssh2-crypto.ts; embedded
 * in the binary): without it SSH ciphers run in JS, about a third slower in bulk. An
 * import, so the binary reports its bundled ssh2 (a require from the file's path found
 * node_modules only when the binary ran inside the source tree, and failed elsewhere).
 */
async function sshCiphers(): Promise<'native' | 'js'> {
  const crypto = (await import('ssh2/lib/protocol/crypto.js')).default;
  return crypto.bindingAvailable ? 'native' : 'js';
}

/** `postern version`. */
export async function version(invocation: Invocation): Promise<number> {
  const info = { ...versionInfo(), ssh_ciphers: await sshCiphers() };
  printData(outputFormat(invocation.options.format), info, (i) => `postern ${i.version} (commit ${i.commit}, ${i.node}, built ${i.built}; ssh ciphers ${i.ssh_ciphers})\n`);
  return 0;
}
