/**
 * Request targets an app may receive. Browsers remove dot segments before they send a
 * request, so a `..` or `.` segment in a target comes from a hand-made request, and its
 * only use here is to climb out of the app's base path (`uri: http://host/grafana/` gets
 * `/grafana/../admin`) or past an upstream's path-based rules, which may normalise the
 * path after they were applied. Encoded forms count too: upstreams differ on whether they
 * decode `%2e`, `%2f` and `\` before splitting the path.
 */

const encodedSeparatorsAndDots = /%2e|%2f|%5c/gi;

/** Why `target` (origin-form, starting with `/`) is refused, or undefined when it may be sent. */
export function refusedTarget(target: string): string | undefined {
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  // Fast: nothing that could form a dot segment.
  if (!path.includes('.') && !path.includes('%') && !path.includes('\\')) return undefined;
  const decoded = path.replace(encodedSeparatorsAndDots, (code) => ({ '%2e': '.', '%2f': '/', '%5c': '/' })[code.toLowerCase()]!).replaceAll('\\', '/');
  for (const segment of decoded.split('/')) {
    if (segment === '.' || segment === '..') return `the path ${JSON.stringify(path.slice(0, 100))} has a dot segment ("${segment}"); send it without . and .. segments`;
  }
  return undefined;
}
