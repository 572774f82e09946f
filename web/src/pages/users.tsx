/** Users: list, invite (shows the one-time sign-up command), reset, remove. Auth decides who may. */
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { useAsync } from '../use-async.ts';

const words = (text: FormDataEntryValue | null): string[] => String(text ?? '').split(/[\s,]+/).filter(Boolean);

export function UsersPage(props: { cluster: string }) {
  const users = useAsync(() => api.resources(props.cluster, 'user'), [props.cluster]);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const act = async (what: () => Promise<string>): Promise<void> => {
    setError(undefined);
    setNotice('');
    try {
      setNotice(await what());
      users.reload();
    } catch (e) {
      setError(e);
    }
  };
  const invite = (event: Event): void => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    void act(async () => {
      const name = String(data.get('name') ?? '');
      const done = await api.addUser(props.cluster, { name, roles: words(data.get('roles')), logins: words(data.get('logins')) });
      form.reset();
      return `User ${name} invited. Send them: psh signup --proxy ${location.host} --token=${done.signup_token} (valid until ${done.expires})`;
    });
  };
  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users of {props.cluster}</h1>
      <form class="filters" onSubmit={invite} aria-label="invite a user">
        <label>Name <input name="name" required maxLength={253} /></label>
        <label>Roles <input name="roles" required placeholder="access editor" /></label>
        <label>Logins <input name="logins" placeholder="ubuntu root" /></label>
        <button type="submit">Invite</button>
      </form>
      <ErrorBanner error={error ?? users.error} />
      {notice ? <p role="status" class="notice">{notice}</p> : null}
      <table class="grid" aria-label="users">
        <thead><tr><th scope="col">Name</th><th scope="col">Roles</th><th scope="col">Logins</th><th scope="col">Second factor</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {(users.value?.items ?? []).map((u) => {
            const spec = (u.spec ?? {}) as { roles?: string[]; traits?: Record<string, string[]> };
            return (
              <tr key={u.metadata.name}>
                <th scope="row">{u.metadata.name}</th>
                <td>{(spec.roles ?? []).join(', ')}</td>
                <td>{(spec.traits?.logins ?? []).join(', ')}</td>
                <td>{u.status?.totp ? 'TOTP' : 'none'}</td>
                <td class="actions">
                  <button type="button" onClick={() => void act(async () => `Reset token for ${u.metadata.name}: ${(await api.resetUser(props.cluster, u.metadata.name)).reset_token}`)}>Reset</button>
                  <button type="button" class="danger" onClick={() => confirm(`Remove user ${u.metadata.name}?`) && void act(async () => {
                    await api.deleteResource(props.cluster, 'user', u.metadata.name);
                    return `User ${u.metadata.name} removed.`;
                  })}>Remove</button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
