/** Roles: pick one to edit its YAML, or write a new one; saved with upsert, validated by auth. */
import { useState } from 'preact/hooks';
import { api, type ResourceRecord } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { useAsync } from '../use-async.ts';
import { toYaml } from '../yaml.ts';

const template = `kind: role
version: v1
metadata:
  name: new-role
spec:
  allow:
    logins: [ubuntu]
    node_labels:
      env: dev
`;

/** The editable part of a stored role (no revision or status). */
function editable(role: ResourceRecord): string {
  const { revision: _revision, ...metadata } = role.metadata as ResourceRecord['metadata'] & { revision?: unknown };
  return toYaml({ kind: role.kind, version: role.version ?? 'v1', metadata, spec: role.spec ?? {} });
}

export function RolesPage(props: { cluster: string }) {
  const roles = useAsync(() => api.resources(props.cluster, 'role'), [props.cluster]);
  const [text, setText] = useState(template);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const save = async (event: Event): Promise<void> => {
    event.preventDefault();
    setError(undefined);
    setNotice('');
    try {
      const done = await api.createResources(props.cluster, text, true);
      setNotice(`Saved ${done.created.join(', ')}.`);
      roles.reload();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (name: string): Promise<void> => {
    if (!confirm(`Remove role ${name}?`)) return;
    try {
      await api.deleteResource(props.cluster, 'role', name);
      setNotice(`Role ${name} removed.`);
      roles.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="roles-title" class="roles">
      <h1 id="roles-title">Roles of {props.cluster}</h1>
      <ErrorBanner error={error ?? roles.error} />
      {notice ? <p role="status" class="notice">{notice}</p> : null}
      <div class="split">
        <ul class="list" aria-label="roles">
          {(roles.value?.items ?? []).map((r) => (
            <li key={r.metadata.name}>
              <button type="button" onClick={() => setText(editable(r))}>{r.metadata.name}</button>
              <button type="button" class="danger" aria-label={`Remove role ${r.metadata.name}`} onClick={() => void remove(r.metadata.name)}>×</button>
            </li>
          ))}
          <li><button type="button" onClick={() => setText(template)}>New role…</button></li>
        </ul>
        <form onSubmit={(e) => void save(e)} aria-label="role editor">
          <label for="role-yaml">Role (YAML)</label>
          <textarea id="role-yaml" spellcheck={false} rows={22} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
          <button type="submit">Save role</button>
        </form>
      </div>
    </section>
  );
}
