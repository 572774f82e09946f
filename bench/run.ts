/**
 * `npm run bench -- NAME...` runs the named benchmarks (all when none is named).
 * Each benchmark module exports `run()`, measures against a baseline in the same run,
 * and prints its headline ratio or rate as its last line.
 * `tunnel` runs the throughput benchmark and then `tunnel-scale` (last line: the scale summary).
 */
const benchmarks: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  agent: () => import('./agent.ts'),
  certs: () => import('./certs.ts'),
  apps: () => import('./apps.ts'),
  tunnel: async () => {
    const [throughput, scale] = await Promise.all([import('./tunnel.ts'), import('./tunnel-scale.ts')]);
    return {
      async run() {
        await throughput.run();
        process.stdout.write('\n-- tunnel-scale --\n');
        await scale.run();
      },
    };
  },
  'tunnel-scale': () => import('./tunnel-scale.ts'),
  ssh: () => import('./ssh.ts'),
  desktop: () => import('./desktop.ts'),
  db: () => import('./db.ts'),
  'audit-ingest': () => import('./audit-ingest.ts'),
  trust: () => import('./trust.ts'),
};

const requested = process.argv.slice(2);
// `tunnel` already includes `tunnel-scale`.
const names = requested.length > 0 ? requested : Object.keys(benchmarks).filter((name) => name !== 'tunnel-scale');
for (const name of names) {
  const load = benchmarks[name];
  if (!load) {
    process.stderr.write(`bench: unknown benchmark "${name}"; known: ${Object.keys(benchmarks).join(', ')}\n`);
    process.exit(2);
  }
  process.stdout.write(`\n== ${name} ==\n`);
  await (await load()).run();
}
