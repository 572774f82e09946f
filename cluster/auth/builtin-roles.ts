/**
 * Roles every cluster starts with, created only when absent so an admin's edits
 * survive restarts. `editor` administers, `access` reaches resources with the user's
 * own traits, `auditor` reads the audit log.
 */
import type { ResourceStore } from './resources/resource-store.ts';
import { newRole, type Role } from '../access/roles/role.ts';
import { AlreadyExistsError } from '../../protocols/errors.ts';

export function builtinRoles(): Role[] {
  return [
    newRole('editor', {
      allow: { resources: [{ kinds: ['*'], verbs: ['*'] }] },
    }, { description: 'Administers the cluster: users, roles, tokens, trusted clusters, audit' }),
    newRole('access', {
      allow: {
        logins: ['{{internal.logins}}'],
        node_labels: { '*': '*' },
        db_labels: { '*': '*' },
        db_users: ['{{internal.db_users}}'],
        db_names: ['{{internal.db_names}}'],
        kubernetes_labels: { '*': '*' },
        kubernetes_users: ['{{internal.kubernetes_users}}'],
        kubernetes_groups: ['{{internal.kubernetes_groups}}'],
        app_labels: { '*': '*' },
        desktop_labels: { '*': '*' },
        desktop_logins: ['{{internal.desktop_logins}}'],
        resources: [{ kinds: ['node', 'db', 'app', 'kube_cluster', 'desktop', 'remote_cluster'], verbs: ['list', 'read'] }],
      },
      options: { record_session: true },
    }, { description: 'Reaches every resource with the logins and database users in the user\'s traits' }),
    newRole('auditor', {
      allow: { resources: [{ kinds: ['event', 'session_recording'], verbs: ['list', 'read'] }] },
    }, { description: 'Reads the audit log and session recordings' }),
  ];
}

/** Creates the built-in roles that do not exist yet. */
export async function ensureBuiltinRoles(resources: ResourceStore): Promise<void> {
  for (const role of builtinRoles()) {
    try {
      await resources.put(role);
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
    }
  }
}
