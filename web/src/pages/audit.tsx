/** The audit log with filters: time range, event types, user, outcome. */
import { useState } from 'preact/hooks';
import { api, type AuditQuery } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { useAsync } from '../use-async.ts';

export function AuditPage(props: { cluster: string }) {
  const [query, setQuery] = useState<AuditQuery>({ from: '24h', limit: 200, order: 'desc' });
  const [outcome, setOutcome] = useState('');
  const events = useAsync(() => api.audit(props.cluster, query), [props.cluster, query]);
  const rows = (events.value?.events ?? []).filter((e) => !outcome || e.outcome === outcome);
  const submit = (event: Event): void => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const types = String(form.get('types') ?? '').split(/[\s,]+/).filter(Boolean);
    setQuery({ from: String(form.get('from') ?? '') || undefined, user: String(form.get('user') ?? '') || undefined, types, limit: Number(form.get('limit') ?? 200) || 200, order: 'desc' });
    setOutcome(String(form.get('outcome') ?? ''));
  };
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log of {props.cluster}</h1>
      <form class="filters" onSubmit={submit} aria-label="audit filters">
        <label>Since <input name="from" defaultValue="24h" placeholder="24h or 2026-01-01T00:00:00Z" /></label>
        <label>Event types <input name="types" placeholder="user.login access.denied" /></label>
        <label>User <input name="user" /></label>
        <label>Outcome
          <select name="outcome" defaultValue="">
            <option value="">any</option><option value="success">success</option><option value="allow">allow</option>
            <option value="deny">deny</option><option value="failure">failure</option>
          </select>
        </label>
        <label>At most <input name="limit" type="number" min={1} max={10000} defaultValue="200" /></label>
        <button type="submit">Search</button>
      </form>
      <ErrorBanner error={events.error} />
      {events.loading ? <p role="status">Searching…</p> : <p role="status" class="muted">{rows.length} events</p>}
      <table class="grid audit" aria-label="audit events">
        <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Who</th><th scope="col">Resource</th><th scope="col">Outcome</th><th scope="col">Reason</th></tr></thead>
        <tbody>
          {rows.map((e) => (
            <tr key={e.id} class={e.outcome}>
              <td><time dateTime={e.time}>{e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time></td>
              <td>{e.type}</td>
              <td>{e.identity?.user ?? e.identity?.host ?? ''}<span class="muted"> {e.identity?.addr ?? ''}</span></td>
              <td>{e.resource ? `${e.resource.kind}/${e.resource.name}` : ''}</td>
              <td>{e.outcome}</td>
              <td>{e.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
