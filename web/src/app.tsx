/**
 * The app shell: finds the session (or shows the login page), the navigation with
 * the cluster picker and the sign-out button, and the page for the current path.
 * Every page path names its cluster: /clusters/NAME/...
 */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, useCsrfToken, type Session } from './api.ts';
import { Link } from './components/link.tsx';
import { ErrorBanner } from './components/error-banner.tsx';
import { match, navigate, useLocation } from './router.ts';
import { LoginPage } from './pages/login.tsx';
import { ResourcesPage } from './pages/resources.tsx';
import { TerminalPage } from './pages/terminal.tsx';
import { DesktopPage } from './pages/desktop.tsx';
import { AuditPage } from './pages/audit.tsx';
import { UsersPage } from './pages/users.tsx';
import { RolesPage } from './pages/roles.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { RecordingsPage } from './pages/recordings.tsx';
import { RecordingPlayerPage } from './pages/recording-player.tsx';
import { ClusterPicker } from './components/cluster-picker.tsx';

const sections = [
  { path: 'resources', title: 'Resources' },
  { path: 'recordings', title: 'Recordings' },
  { path: 'audit', title: 'Audit log' },
  { path: 'users', title: 'Users' },
  { path: 'roles', title: 'Roles' },
  { path: 'tokens', title: 'Tokens' },
] as const;

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<unknown>();
  const { path, query } = useLocation();

  useEffect(() => {
    api.session().then(
      (s) => {
        useCsrfToken(s.csrf_token);
        setSession(s);
      },
      (e: unknown) => {
        if (!(e instanceof ApiError && e.status === 401)) setError(e);
        setSession(null);
      },
    );
  }, []);

  // After in-app navigation, move focus to the page and name it, as a page load would.
  useEffect(() => {
    const heading = document.querySelector<HTMLElement>('main h1');
    document.title = heading?.textContent ? `${heading.textContent} · Postern` : 'Postern';
    if (document.activeElement === document.body || document.activeElement?.closest('nav')) document.getElementById('main')?.focus({ preventScroll: true });
  }, [path]);

  // A call refused with 401 means the session ended (idle timeout, logout elsewhere).
  useEffect(() => {
    const onExpired = (): void => setSession(null);
    addEventListener('postern:session-ended', onExpired);
    return () => removeEventListener('postern:session-ended', onExpired);
  }, []);

  if (session === undefined) return <p class="loading" role="status">Loading…</p>;
  if (session === null) {
    return (
      <>
        <ErrorBanner error={error} />
        <LoginPage onLogin={(s) => {
          useCsrfToken(s.csrf_token);
          setSession(s);
          const next = query.get('next');
          navigate(next && next.startsWith('/clusters/') ? next : `/clusters/${encodeURIComponent(s.cluster)}/resources`, { replace: true });
        }} />
      </>
    );
  }

  const logout = async (): Promise<void> => {
    try {
      await api.logout();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        setError(e);
        return;
      }
    }
    useCsrfToken('');
    setSession(null);
    navigate('/login', { replace: true });
  };

  const params = match('/clusters/:cluster/:section', path) ?? match('/clusters/:cluster/nodes/:node/terminal', path) ?? match('/clusters/:cluster/desktops/:desktop', path) ?? match('/clusters/:cluster/recordings/:recording', path);
  const cluster = params?.cluster ?? session.cluster;
  if (!params) {
    queueMicrotask(() => navigate(`/clusters/${encodeURIComponent(session.cluster)}/resources`, { replace: true }));
    return null;
  }
  const section = params.node !== undefined ? 'terminal' : params.desktop !== undefined ? 'desktop' : params.recording !== undefined ? 'recording' : params.section;
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Postern</span>
        <ClusterPicker current={cluster} onPick={(c) => navigate(`/clusters/${encodeURIComponent(c)}/${section === 'terminal' || section === 'desktop' ? 'resources' : section === 'recording' ? 'recordings' : section}`)} />
        <nav aria-label="sections">
          <ul>
            {sections.map((s) => (
              <li key={s.path}>
                <Link href={`/clusters/${encodeURIComponent(cluster)}/${s.path}`} current={section === s.path}>{s.title}</Link>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who" aria-label="signed in as">{session.user}</span>
        <button type="button" onClick={() => void logout()}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBanner error={error} />
        {_page(section, cluster, params, session)}
      </main>
    </div>
  );
}

function _page(section: string | undefined, cluster: string, params: Record<string, string>, session: Session) {
  switch (section) {
    case 'resources': return <ResourcesPage cluster={cluster} session={session} />;
    case 'terminal': return <TerminalPage cluster={cluster} node={params.node ?? ''} />;
    case 'desktop': return <DesktopPage cluster={cluster} name={params.desktop ?? ''} />;
    case 'recordings': return <RecordingsPage cluster={cluster} />;
    case 'recording': return <RecordingPlayerPage cluster={cluster} sessionId={params.recording ?? ''} />;
    case 'audit': return <AuditPage cluster={cluster} />;
    case 'users': return <UsersPage cluster={cluster} />;
    case 'roles': return <RolesPage cluster={cluster} />;
    case 'tokens': return <TokensPage cluster={cluster} />;
    default: return <p role="alert">There is no page “{section}”. Pick a section above.</p>;
  }
}
