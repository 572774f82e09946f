/**
 * `kind: trusted_cluster` (written on a leaf: "trust that root") and `kind:
 * remote_cluster` (recorded on the root: "this leaf trusts us").
 *
 * ```yaml
 * kind: trusted_cluster
 * version: v1
 * metadata: { name: root }            # the root cluster's name (checked at join)
 * spec:
 *   enabled: true                     # false: the root's CAs leave the leaf's trust, the tunnel drops
 *   proxy_addr: root.example.com:3080 # the root proxy's public address
 *   ca_pin: sha256:…                  # the root's CA pin (root: pctl status)
 *   token: 4f2c…                      # a root token of type trusted_cluster; used once, never stored
 *   role_map:
 *     - { remote: admin, local: [access] }        # a root role by name
 *     - { remote: '^dev-(.*)$', local: ['$1'] }   # an anchored regex; $1 captures
 *     - { remote: '*', local: [guest] }           # any root role
 * ```
 *
 * The map is checked when written: `local: ["*"]` (a wildcard leaf role would grant
 * every role), the same `remote` twice, and regexes that do not compile are refused
 * with the entry named. Nothing maps -> nothing is allowed (role-map.ts).
 */
import { z } from 'zod';
import { defineKind } from './registry.ts';
import type { Resource } from './resource.ts';
import { compileRegex, isRegexValue } from '../roles/label-matcher.ts';

const roleNamePattern = /^(?:[A-Za-z0-9._-]|\$\d)+$/;

const roleMapEntrySchema = z.strictObject({
  remote: z.string().min(1, { error: 'must name a root role, "*" or a regex ^…$' }).max(1024),
  local: z
    .array(
      z
        .string()
        .min(1)
        .max(253)
        .refine((name) => name !== '*', { error: 'a leaf role cannot be "*" (it would grant every leaf role); name the roles' })
        .refine((name) => roleNamePattern.test(name), { error: "a leaf role is letters, digits, '.', '_', '-' and $N captures" }),
    )
    .min(1, { error: 'map to at least one leaf role' })
    .max(64),
});

/** One `remote -> local` rule. */
export type RoleMapEntry = z.output<typeof roleMapEntrySchema>;

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, { error: 'expected host:port, e.g. root.example.com:3080' });

export const trustedClusterSpecSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    proxy_addr: hostPort,
    ca_pin: z.string().regex(/^sha256:[0-9a-f]{64}$/, { error: 'expected sha256:<64 hex digits> (on the root: pctl status)' }),
    token: z.string().min(1).max(1024).optional(),
    role_map: z.array(roleMapEntrySchema).max(256).default([]),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, number>();
    spec.role_map.forEach((entry, index) => {
      const first = seen.get(entry.remote);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['role_map', index, 'remote'], message: `"${entry.remote}" is mapped twice (first in entry ${first + 1}); merge the local roles into one entry` });
      }
      seen.set(entry.remote, index);
      if (entry.remote.startsWith('^') !== entry.remote.endsWith('$') && entry.remote !== '$') {
        ctx.addIssue({ code: 'custom', path: ['role_map', index, 'remote'], message: `"${entry.remote}" is half a regex: write ^…$ for a regex, or a plain role name` });
      } else if (isRegexValue(entry.remote)) {
        try {
          compileRegex(entry.remote);
        } catch (error) {
          ctx.addIssue({ code: 'custom', path: ['role_map', index, 'remote'], message: `bad regex: ${(error as Error).message}` });
        }
      } else if (entry.remote !== '*' && !/^[A-Za-z0-9._-]+$/.test(entry.remote)) {
        ctx.addIssue({ code: 'custom', path: ['role_map', index, 'remote'], message: `"${entry.remote}" is not a role name, "*" or a regex ^…$` });
      }
      if (!isRegexValue(entry.remote) && entry.local.some((name) => /\$\d/.test(name))) {
        ctx.addIssue({ code: 'custom', path: ['role_map', index, 'local'], message: '$N captures need a regex remote (^…$)' });
      }
    });
  });

export type TrustedClusterSpec = z.output<typeof trustedClusterSpecSchema>;
export type TrustedCluster = Resource<'trusted_cluster', TrustedClusterSpec>;

export const trustedClusterKind = defineKind({
  kind: 'trusted_cluster',
  spec: trustedClusterSpecSchema,
  summarize: (r: TrustedCluster) => `${r.spec.enabled ? 'enabled' : 'disabled'} proxy=${r.spec.proxy_addr} map=${r.spec.role_map.map((m) => `${m.remote}->${m.local.join('|')}`).join(',')}`,
});

export const remoteClusterSpecSchema = z.strictObject({
  /** When the leaf validated its trust, RFC 3339. */
  joined: z.iso.datetime({ offset: true }).optional(),
});

export type RemoteCluster = Resource<'remote_cluster', z.output<typeof remoteClusterSpecSchema>>;

export const remoteClusterKind = defineKind({ kind: 'remote_cluster', spec: remoteClusterSpecSchema });

/** A trusted_cluster as anyone but the writing request sees it: never the token. */
export function withoutToken(resource: TrustedCluster): TrustedCluster {
  const { token: _token, ...spec } = resource.spec;
  return { ...resource, spec };
}
