/** Atomic file writes, without heavier imports: psh loads this on every ProxyCommand start. */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** Writes a file so readers see the old or the new content, never a mix; creates parent folders (0700). */
export async function writeFileAtomic(file: string, content: string | Uint8Array, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
