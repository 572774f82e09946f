/**
 * The registry of built-in resource kinds that `pctl create -f` and the Auth API
 * accept. A module that owns a kind exports it from `defineKind` beside its schema and
 * adds it to the list below (one import, one entry).
 */
import { roleKind } from '../../access/roles/role.ts';
import { userKind } from '../users/user-record.ts';
import { dbResourceKind } from '../../access/resources/db-resource.ts';
import { remoteClusterKind, trustedClusterKind } from '../../access/resources/trusted-cluster.ts';
import { ResourceRegistry, type ResourceKind } from '../../access/resources/registry.ts';

/** Every built-in kind, in registration order. */
export const builtinKinds: readonly ResourceKind<string, any>[] = [roleKind, userKind, trustedClusterKind, remoteClusterKind, dbResourceKind];

/** A fresh registry holding every built-in kind; add more with `register`. */
export function createResourceRegistry(): ResourceRegistry {
  return new ResourceRegistry(builtinKinds);
}
