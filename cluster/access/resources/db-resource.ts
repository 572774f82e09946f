/**
 * The `db` resource: a database registered by an admin (`pctl create -f db.yaml`)
 * rather than in an agent's postern.yaml. Agents whose `agent.db.resources` selectors
 * match its labels serve it, exactly as if it were configured locally; file paths in it
 * (tls.ca_file, auth.password_file) are read on those agents, so no secret is stored.
 *
 * ```yaml
 * kind: db
 * version: v1
 * metadata: { name: orders, labels: { env: prod } }
 * spec:
 *   protocol: postgres
 *   uri: 10.0.0.5:5432
 *   tls: { mode: verify-full, ca_file: /etc/postern/db/server.cas, server_name: db.internal }
 *   auth: { type: cert }
 * ```
 */
import { z } from 'zod';
import { databaseSpecShape, type DatabaseConfig } from '../../common/config.ts';
import { defineKind } from './registry.ts';
import type { Resource } from './resource.ts';

export const dbResourceSpecSchema = z.strictObject(databaseSpecShape).omit({ labels: true, description: true });
export type DbResourceSpec = z.output<typeof dbResourceSpecSchema>;

export const dbResourceKind = defineKind({
  kind: 'db',
  spec: dbResourceSpecSchema,
  summarize: (r) => `${r.spec.protocol} ${r.spec.uri} auth=${r.spec.auth.type}`,
});

/** The agent configuration entry a `db` resource stands for. */
export function databaseFromResource(resource: Resource<'db', DbResourceSpec>): DatabaseConfig {
  return {
    name: resource.metadata.name,
    ...(resource.metadata.description ? { description: resource.metadata.description } : {}),
    labels: { ...resource.metadata.labels },
    ...resource.spec,
  };
}
