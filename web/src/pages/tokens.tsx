/** Join tokens: list, add (the secret is shown once), remove. */
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { useAsync } from '../use-async.ts';

export function TokensPage(props: { cluster: string }) {
  const tokens = useAsync(() => api.resources(props.cluster, 'token'), [props.cluster]);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const add = async (event: Event): Promise<void> => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    setError(undefined);
    setNotice('');
    try {
      const labels = Object.fromEntries(String(data.get('labels') ?? '').split(/[\s,]+/).filter(Boolean).map((p) => [p.split('=')[0] ?? p, p.split('=').slice(1).join('=')]));
      const roles = String(data.get('roles') ?? 'node').split(/[\s,]+/).filter(Boolean);
      const done = await api.addToken(props.cluster, { roles, ttl_seconds: Number(data.get('ttl') ?? 30) * 60, labels });
      setNotice(`Token ${done.id} (shown once): ${done.token}, valid until ${done.expires}`);
      tokens.reload();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (id: string): Promise<void> => {
    try {
      await api.deleteResource(props.cluster, 'token', id);
      setNotice(`Token ${id} removed.`);
      tokens.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">Join tokens of {props.cluster}</h1>
      <form class="filters" onSubmit={(e) => void add(e)} aria-label="add a token">
        <label>Roles <input name="roles" defaultValue="node" /></label>
        <label>Minutes valid <input name="ttl" type="number" min={1} max={43200} defaultValue="30" /></label>
        <label>Labels <input name="labels" placeholder="env=dev" /></label>
        <button type="submit">Add token</button>
      </form>
      <ErrorBanner error={error ?? tokens.error} />
      {notice ? <p role="status" class="notice">{notice}</p> : null}
      <table class="grid" aria-label="tokens">
        <thead><tr><th scope="col">Id</th><th scope="col">Roles</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {(tokens.value?.items ?? []).map((t) => (
            <tr key={t.metadata.name}>
              <th scope="row">{t.metadata.name}</th>
              <td>{((t.spec?.roles as string[] | undefined) ?? []).join(', ')}</td>
              <td>{t.metadata.expires ?? ''}</td>
              <td>{String(t.status?.state ?? '')}</td>
              <td><button type="button" class="danger" aria-label={`Remove token ${t.metadata.name}`} onClick={() => void remove(t.metadata.name)}>Remove</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
