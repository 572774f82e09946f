/**
 * The proxy process of bench/tunnel-scale.ts: a real `startProxy` on the port it is
 * given, in front of the auth server in the parent process. Started with `fork` (and
 * `--expose-gc`, so the parent can ask for a collection before it reads VmRSS);
 * talks to the parent over IPC: `{ type: 'count' }` -> `{ count, hosts, adds, rejected }`, `{ type: 'gc' }` -> `{ gc: true }`.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { IdentityFile } from '../cluster/api/identity-file.ts';
import { createLogger } from '../cluster/common/logger.ts';
import { startProxy } from '../cluster/proxy/start-proxy.ts';

interface Start { identity: IdentityFile; authAddr: string; listenAddr: string }

const [start] = (await new Promise<[Start]>((resolve) => process.once('message', (msg) => resolve([msg as Start]))));
// Info level, as a daemon logs, written nowhere: the formatting cost is counted, not the disk.
const logger = createLogger({ level: 'info', destination: { write: () => {} } });
const proxy = await startProxy({
  identity: start.identity,
  renewIdentity: async (current) => current,
  authAddr: start.authAddr,
  listenAddr: start.listenAddr,
  logger,
});
// `{ type: 'profile-start' }` / `{ type: 'profile-stop', file }`: a V8 CPU profile of a phase (BENCH_PROFILE_DIR).
let inspector: Session | undefined;
// Counted from the registry's events: its `size` and `list()` walk every host, and the
// parent asks ten times a second.
let adds = 0;
let count = 0;
const perHost = new Map<string, number>();
proxy.registry.on('add', (entry) => { adds++; count++; perHost.set(entry.hostId, (perHost.get(entry.hostId) ?? 0) + 1); });
proxy.registry.on('remove', (entry) => {
  count--;
  const left = (perHost.get(entry.hostId) ?? 1) - 1;
  if (left > 0) perHost.set(entry.hostId, left);
  else perHost.delete(entry.hostId);
});
process.on('message', async (msg: { type: string; file?: string }) => {
  if (msg.type === 'profile-start') {
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.start');
    process.send!({ profiling: true });
  } else if (msg.type === 'profile-stop' && inspector) {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(msg.file!, JSON.stringify(profile));
    inspector.disconnect();
    process.send!({ profiled: msg.file });
  } else if (msg.type === 'count') process.send!({ count, hosts: perHost.size, adds, rejected: proxy.metrics.stats.rejected });
  else if (msg.type === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    setTimeout(() => process.send!({ gc: true }), 200);
  }
});
process.send!({ ready: true, port: Number(proxy.address.split(':').pop()) });
