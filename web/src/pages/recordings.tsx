/**
 * Session recordings of the cluster: SSH sessions (shell, exec), Kubernetes execs (kube:
 * target = the cluster, login = the impersonated user) and desktop sessions.
 * auth lists the person's own, or everyone's for a role allowing list on
 * session_recording (such as auditor); each row opens the player.
 */
import { api, type RecordingRecord } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { Link } from '../components/link.tsx';
import { useAsync } from '../use-async.ts';

export function RecordingsPage(props: { cluster: string }) {
  const list = useAsync(() => api.recordings(props.cluster), [props.cluster]);
  const rows = list.value?.recordings ?? [];
  return (
    <section aria-labelledby="recordings-title">
      <h1 id="recordings-title">Recordings in {props.cluster}</h1>
      <ErrorBanner error={list.error} />
      {list.loading ? <p role="status">Loading…</p> : <p role="status" class="muted">{rows.length} recordings</p>}
      <button type="button" onClick={list.reload}>Refresh</button>
      <table class="grid" aria-label="session recordings">
        <thead><tr><th scope="col">Started</th><th scope="col">Kind</th><th scope="col">User</th><th scope="col">Login</th><th scope="col">Target</th><th scope="col">Duration</th><th scope="col">Play</th></tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.session_id}>
              <td><time dateTime={r.started}>{r.started.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time></td>
              <td>{_kind(r)}</td>
              <td>{r.user}</td>
              <td>{r.login}</td>
              <td>{r.node}</td>
              <td>{_duration(Date.parse(r.ended) - Date.parse(r.started))}</td>
              <td>
                <Link href={`/clusters/${encodeURIComponent(props.cluster)}/recordings/${encodeURIComponent(r.session_id)}?kind=${r.kind}&width=${r.width ?? ''}&height=${r.height ?? ''}`} label={`Play the ${r.kind} session of ${r.user} on ${r.node} at ${r.started}`}>Play</Link>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function _kind(r: RecordingRecord): string {
  const kind = (r.kind === 'exec' || r.kind === 'kube') && r.command ? `${r.kind}: ${r.command.length > 40 ? `${r.command.slice(0, 39)}…` : r.command}` : r.kind;
  return r.interrupted ? `${kind} (interrupted)` : kind;
}

function _duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
