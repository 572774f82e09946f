/**
 * What the person may reach in a cluster, by kind: servers with a Connect button,
 * and the served databases, apps (HTTP apps with a Launch link to their browser
 * address, app-url.ts), Kubernetes clusters and desktops. Search matches names and
 * label values; the label filter takes `key=value` pairs (all must match).
 */
import { useMemo, useState } from 'preact/hooks';
import { api, resourceKinds, type NodeRecord, type ResourceRecord, type Session } from '../api.ts';
import { appLaunch, type AppLaunch, type LaunchProxy } from '../app-url.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { Labels } from '../components/labels.tsx';
import { navigate } from '../router.ts';
import { useAsync } from '../use-async.ts';

/** One row, whatever the kind. */
interface Row {
  id: string;
  name: string;
  labels: Record<string, string>;
  detail: string;
  online?: boolean;
  /** Apps: where Launch opens the app, or why there is no Launch. */
  launch?: AppLaunch;
}

function nodeRow(node: NodeRecord): Row {
  return { id: node.host_id, name: node.node_name || node.host_id, labels: node.labels ?? {}, detail: (node.addresses ?? []).join(', '), online: node.online };
}

function servedRow(resource: ResourceRecord): Row {
  const spec = resource.spec ?? {};
  const detail = ['protocol', 'uri', 'public_addr', 'addr'].map((k) => spec[k]).filter((v) => typeof v === 'string').join(' ');
  const online = resource.status?.online;
  return { id: resource.metadata.name, name: resource.metadata.name, labels: resource.metadata.labels ?? {}, detail, online: typeof online === 'boolean' ? online : undefined };
}

/**
 * An app's row: HTTP apps launch at their browser address (as psh apps ls shows it);
 * `proxy` is what discovery says of the proxy, or why it could not be read.
 */
function appRow(resource: ResourceRecord, cluster: string, proxy: LaunchProxy | Error): Row {
  const spec = resource.spec ?? {};
  const app = {
    name: resource.metadata.name,
    protocol: typeof spec['protocol'] === 'string' ? spec['protocol'] : undefined,
    publicAddr: typeof spec['public_addr'] === 'string' ? spec['public_addr'] : undefined,
    cluster,
  };
  // Without discovery only tcp apps and apps with their own public_addr know their answer.
  const launch: AppLaunch = !(proxy instanceof Error)
    ? appLaunch(app, proxy)
    : app.protocol === 'tcp' || app.publicAddr
      ? appLaunch(app, { cluster: '', port: 443 })
      : { reason: `cannot read the proxy's discovery document: ${proxy.message}` };
  return { ...servedRow(resource), launch };
}

async function listApps(cluster: string): Promise<Row[]> {
  const [list, proxy] = await Promise.all([
    api.resources(cluster, 'app'),
    api.discovery().then(
      // The apps share the proxy's one port: the one this page was loaded from.
      (d): LaunchProxy => ({ appDomain: d.app_domain, cluster: d.cluster_name, port: Number(location.port || 443) }),
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    ),
  ]);
  return list.items.map((item) => appRow(item, cluster, proxy));
}

/** Parses `a=b c=d` into pairs; a bare word matches a label key. */
export function parseLabelFilter(text: string): Array<[string, string | undefined]> {
  return text.split(/[\s,]+/).filter(Boolean).map((part) => {
    const at = part.indexOf('=');
    return at < 0 ? [part, undefined] : [part.slice(0, at), part.slice(at + 1)];
  });
}

function matches(row: Row, search: string, filter: Array<[string, string | undefined]>): boolean {
  const needle = search.trim().toLowerCase();
  if (needle && ![row.name, row.id, row.detail, ...Object.entries(row.labels).map(([k, v]) => `${k}=${v}`)].some((s) => s.toLowerCase().includes(needle))) return false;
  return filter.every(([key, value]) => (value === undefined ? key in row.labels : row.labels[key] === value));
}

export function ResourcesPage(props: { cluster: string; session: Session }) {
  const [kind, setKind] = useState<string>('node');
  const [search, setSearch] = useState('');
  const [labelFilter, setLabelFilter] = useState('');
  const data = useAsync<Row[]>(async () => (kind === 'node'
    ? (await api.nodes(props.cluster)).items.map(nodeRow)
    : kind === 'app'
      ? await listApps(props.cluster)
      : (await api.resources(props.cluster, kind)).items.map(servedRow)), [props.cluster, kind]);
  const filter = useMemo(() => parseLabelFilter(labelFilter), [labelFilter]);
  const rows = (data.value ?? []).filter((row) => matches(row, search, filter));
  const [login, setLogin] = useState(props.session.logins[0] ?? '');
  const [desktopLogin, setDesktopLogin] = useState('');
  const withActions = kind === 'node' || kind === 'desktop' || kind === 'app';
  const title = resourceKinds.find((k) => k.kind === kind)?.title ?? kind;

  return (
    <section aria-labelledby="resources-title">
      <h1 id="resources-title">Resources in {props.cluster}</h1>
      <div role="tablist" aria-label="resource kinds" class="tabs">
        {resourceKinds.map((k) => (
          <button key={k.kind} type="button" role="tab" aria-selected={kind === k.kind} onClick={() => setKind(k.kind)}>{k.title}</button>
        ))}
      </div>
      <div class="filters">
        <label>Search <input type="search" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} placeholder="name, address or label" /></label>
        <label>Label filter <input value={labelFilter} onInput={(e) => setLabelFilter((e.target as HTMLInputElement).value)} placeholder="env=prod team" /></label>
        {kind === 'node' ? (
          <label>Log in as
            <select value={login} onChange={(e) => setLogin((e.target as HTMLSelectElement).value)}>
              {props.session.logins.length === 0 ? <option value="">no logins in your roles</option> : null}
              {props.session.logins.map((l) => <option key={l} value={l}>{l}</option>)}
            </select>
          </label>
        ) : null}
        {kind === 'desktop' ? (
          <label>Desktop login <input value={desktopLogin} onInput={(e) => setDesktopLogin((e.target as HTMLInputElement).value)} placeholder="Administrator" /></label>
        ) : null}
      </div>
      <ErrorBanner error={data.error} />
      {data.loading ? <p role="status">Loading {title.toLowerCase()}…</p> : null}
      <table class="grid" aria-label={title}>
        <thead>
          <tr><th scope="col">Name</th><th scope="col">Labels</th><th scope="col">Details</th>{withActions ? <th scope="col">Actions</th> : null}</tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.id} title={row.launch?.reason}>
              <th scope="row">{row.name}{row.online === false ? <span class="muted"> (offline)</span> : null}</th>
              <td><Labels labels={row.labels} onPick={(l) => setLabelFilter((f) => (f ? `${f} ${l}` : l))} /></td>
              <td>{row.detail}</td>
              {kind === 'node' ? (
                <td>
                  <button type="button" disabled={!login || row.online === false} aria-label={`Connect to ${row.name} as ${login}`}
                    onClick={() => navigate(`/clusters/${encodeURIComponent(props.cluster)}/nodes/${encodeURIComponent(row.id)}/terminal?login=${encodeURIComponent(login)}&name=${encodeURIComponent(row.name)}`)}>
                    Connect
                  </button>
                </td>
              ) : null}
              {kind === 'desktop' ? (
                <td>
                  <button type="button" disabled={!desktopLogin || row.online === false} aria-label={`Connect to desktop ${row.name} as ${desktopLogin || '(enter a login)'}`}
                    onClick={() => navigate(`/clusters/${encodeURIComponent(props.cluster)}/desktops/${encodeURIComponent(row.id)}?login=${encodeURIComponent(desktopLogin)}`)}>
                    Connect
                  </button>
                </td>
              ) : null}
              {kind === 'app' ? (
                <td>
                  {row.launch?.url ? (
                    <a class="button" href={row.launch.url} target="_blank" rel="noopener noreferrer" aria-label={`Launch ${row.name} (opens in a new tab)`}>Launch</a>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {!data.loading && rows.length === 0 && !data.error ? <p class="muted">No {title.toLowerCase()} match.</p> : null}
    </section>
  );
}
