/**
 * Resources an agent serves besides SSH: databases, apps, Kubernetes clusters and
 * desktops. The agent announces them in its heartbeat (`served_json`); the auth service
 * keeps them with the host's presence record and lists them by kind (`psh db ls`, ...);
 * the proxy finds the host serving one and dials the tunnel service named
 * {@link servedServiceName}. The per-protocol `spec` (protocol, address, ...) is the
 * service's own business: auth stores it as given, bounded in size.
 */
import { z } from 'zod';
import { labelsSchema, resourceNameSchema } from './resource.ts';

/** Kinds an agent may announce. */
export const servedKinds = ['db', 'app', 'kube_cluster', 'desktop'] as const;
export type ServedKind = (typeof servedKinds)[number];

/** Most resources one agent may announce. */
export const maxServedResources = 1_000;
/** Largest `served_json` a heartbeat may carry. */
export const maxServedJsonBytes = 1024 * 1024;

export const servedResourceSchema = z.strictObject({
  kind: z.enum(servedKinds),
  name: resourceNameSchema,
  labels: labelsSchema.default({}),
  description: z.string().max(1024).optional(),
  /** Protocol-specific, public facts only (protocol, URI, public address): never credentials. */
  spec: z.record(z.string(), z.unknown()).default({}),
});

export type ServedResource = z.output<typeof servedResourceSchema>;

export const servedResourcesSchema = z.array(servedResourceSchema).max(maxServedResources).superRefine((list, ctx) => {
  const seen = new Set<string>();
  for (const [index, resource] of list.entries()) {
    const key = servedServiceName(resource);
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `${resource.kind} "${resource.name}" is announced twice` });
    seen.add(key);
  }
});

/** The tunnel service name the agent serves a resource under: `db:orders`, `app:grafana`, ... */
export function servedServiceName(resource: Pick<ServedResource, 'kind' | 'name'>): string {
  return `${resource.kind}:${resource.name}`;
}

/** True for a kind agents announce (rather than one stored as a YAML resource). */
export function isServedKind(kind: string): kind is ServedKind {
  return (servedKinds as readonly string[]).includes(kind);
}
