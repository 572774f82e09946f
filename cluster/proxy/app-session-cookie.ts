/** The app session cookie's name, and removing it from what an app receives. */

export const sessionCookie = '__Host-postern_app';

/** The cookie header without Postern's session cookie (undefined when nothing is left). */
export function withoutSessionCookie(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const kept = (Array.isArray(header) ? header.join('; ') : header).split(';').map((p) => p.trim()).filter((p) => p !== '' && !p.startsWith(`${sessionCookie}=`));
  return kept.length > 0 ? kept.join('; ') : undefined;
}
