/**
 * `npm run bench -- NAME...` runs the named benchmarks (all when none is named).
 * Each benchmark module exports `run()`, measures against a baseline in the same run,
 * and prints its headline ratio or rate as its last line.
 */
const benchmarks: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  certs: () => import('./certs.ts'),
  tunnel: () => import('./tunnel.ts'),
};

const requested = process.argv.slice(2);
const names = requested.length > 0 ? requested : Object.keys(benchmarks);
for (const name of names) {
  const load = benchmarks[name];
  if (!load) {
    process.stderr.write(`bench: unknown benchmark "${name}"; known: ${Object.keys(benchmarks).join(', ')}\n`);
    process.exit(2);
  }
  process.stdout.write(`\n== ${name} ==\n`);
  await (await load()).run();
}
