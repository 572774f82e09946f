/** Sign in with password and, when enrolled, a TOTP code. */
import { useState } from 'preact/hooks';
import { api, type Session } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';

export function LoginPage(props: { onLogin: (session: Session) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      props.onLogin(await api.login(String(form.get('user') ?? ''), String(form.get('password') ?? ''), String(form.get('totp') ?? '')));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <h1>Sign in to Postern</h1>
      <form onSubmit={(e) => void submit(e)} aria-describedby="login-help">
        <label for="login-user">User name</label>
        <input id="login-user" name="user" autoComplete="username" required autoFocus />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password" autoComplete="current-password" required />
        <label for="login-totp">One-time code <span class="muted">(if you enrolled an authenticator)</span></label>
        <input id="login-totp" name="totp" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6,8}" maxLength={8} />
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
      <p id="login-help" class="muted">New here? Finish your invitation with <code>psh signup</code> first.</p>
      <ErrorBanner error={error} />
    </main>
  );
}
