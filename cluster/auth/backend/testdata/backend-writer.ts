/**
 * A second process for the SQLite backend's multi-process tests:
 *   backend-writer.ts cas <file> <key> <count>   prints "ready", waits for the key /go to exist,
 *                                                then increments the counter at <key> <count> times
 *   backend-writer.ts put <file> <key> <value>   writes one item
 * Prints one JSON line with what it did, and exits non-zero on any error.
 */
import { SqliteBackend } from '../sqlite-backend.ts';

const [command, file, key, arg] = process.argv.slice(2);
if (file === undefined || key === undefined || arg === undefined) {
  throw new Error('usage: backend-writer.ts cas|put <file> <key> <count|value>');
}
const backend = SqliteBackend.open(file);
try {
  if (command === 'cas') {
    // Start together with the other writers, so that they really race.
    console.log('ready');
    while ((await backend.get('/go')) === undefined) await new Promise((resolve) => setTimeout(resolve, 2));
    let conflicts = 0;
    for (let done = 0; done < Number(arg); ) {
      const current = await backend.get(key);
      if (current === undefined) throw new Error('counter missing');
      try {
        await backend.compareAndSwap(current.revision, { key, value: String(Number(current.value) + 1) });
        done++;
      } catch (err) {
        if ((err as { code?: string }).code !== 'PST_COMPARE_FAILED') throw err;
        conflicts++;
      }
    }
    console.log(JSON.stringify({ command, conflicts }));
  } else if (command === 'put') {
    const item = await backend.put({ key, value: arg });
    console.log(JSON.stringify({ command, revision: item.revision }));
  } else {
    throw new Error(`unknown command ${command}`);
  }
} finally {
  await backend.close();
}
