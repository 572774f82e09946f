/** Reading one cookie out of a request's Cookie header (RFC 6265 section 5.4 shape: `a=1; b=2`). */

/**
 * The value of the first cookie named `name`, or undefined. By index, without splitting
 * the header into arrays: app requests read it on every request.
 */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  for (let at = 0; at < text.length;) {
    let end = text.indexOf(';', at);
    if (end < 0) end = text.length;
    const part = text.slice(at, end).trim();
    const eq = part.indexOf('=');
    if ((eq < 0 ? part : part.slice(0, eq).trimEnd()) === name) return eq < 0 ? '' : part.slice(eq + 1).trimStart();
    at = end + 1;
  }
  return undefined;
}
