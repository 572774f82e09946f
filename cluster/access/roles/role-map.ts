/**
 * A leaf's role map: which leaf roles a root user's roles become (trusted-cluster.ts).
 * Every root role is tried against every entry; an entry's `remote` is a role name,
 * `*` (any role) or an anchored regex `^…$` whose captures fill `$1`… in `local`.
 * The result is the union, de-duplicated; empty means the user gets nothing here.
 */
import { compileRegex, isRegexValue } from './label-matcher.ts';
import type { RoleMapEntry } from '../resources/trusted-cluster.ts';

/** The leaf roles `remoteRoles` map to, in first-seen order. */
export function mapRoles(roleMap: readonly RoleMapEntry[], remoteRoles: readonly string[]): string[] {
  const out = new Set<string>();
  for (const role of remoteRoles) {
    for (const entry of roleMap) {
      if (entry.remote === '*' || entry.remote === role) {
        for (const local of entry.local) out.add(local);
      } else if (isRegexValue(entry.remote)) {
        const match = compileRegex(entry.remote).exec(role);
        if (!match) continue;
        for (const local of entry.local) {
          const name = local.replace(/\$(\d)/g, (_, digit: string) => match[Number(digit)] ?? '');
          // A capture may expand to nothing or to a name no role can have: drop it.
          if (/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name)) out.add(name);
        }
      }
    }
  }
  return [...out];
}
