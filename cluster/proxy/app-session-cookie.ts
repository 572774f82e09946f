/** The app session cookies' names, and removing them from what an app receives. */

export const sessionCookie = '__Host-postern_app';
/**
 * Which cluster the browser last logged in to on this app host (not a secret): when its
 * session expires, the login page it is sent to is routed there again.
 */
export const clusterCookie = '__Host-postern_cluster';

/** The cookie header without Postern's cookies (undefined when nothing is left). */
export function withoutSessionCookie(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const kept = (Array.isArray(header) ? header.join('; ') : header).split(';').map((p) => p.trim()).filter((p) => p !== '' && !p.startsWith(`${sessionCookie}=`) && !p.startsWith(`${clusterCookie}=`));
  return kept.length > 0 ? kept.join('; ') : undefined;
}
