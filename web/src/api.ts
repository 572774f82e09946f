/**
 * The web UI's only way to the cluster: typed calls to the proxy's /v1/webapi
 * endpoints with the session cookie, the CSRF header on every state-changing call,
 * and errors that keep the server's code and message. Every path names the cluster,
 * so leaf clusters drop in when trust lands; a new resource kind is one entry in
 * `resourceKinds`.
 */

/** What the proxy says about the signed-in person. */
export interface Session {
  user: string;
  roles: string[];
  logins: string[];
  cluster: string;
  expires: string;
  idle_timeout_seconds: number;
  csrf_token: string;
}

/** What `GET /v1/discovery` says (the fields the UI reads; cluster/proxy/web-routes.ts `Discovery`). */
export interface Discovery {
  cluster_name: string;
  /** HTTP apps are at APP.<app_domain> on the proxy's port; absent when the proxy serves none. */
  app_domain?: string;
}

export interface ClusterInfo {
  name: string;
  local: boolean;
}

/** A resource as the auth service lists it: nodes are flat records, the others kind/metadata/spec. */
export interface NodeRecord {
  host_id: string;
  node_name: string;
  online: boolean;
  labels?: Record<string, string>;
  addresses?: string[];
  services?: string[];
  last_seen?: string;
  [field: string]: unknown;
}

export interface ResourceRecord {
  kind: string;
  version?: string;
  metadata: { name: string; labels?: Record<string, string>; description?: string; expires?: string; [field: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** The kinds the resources page lists, in menu order: add one line for a new kind. */
export const resourceKinds = [
  { kind: 'node', title: 'Servers' },
  { kind: 'db', title: 'Databases' },
  { kind: 'app', title: 'Applications' },
  { kind: 'kube_cluster', title: 'Kubernetes' },
  { kind: 'desktop', title: 'Desktops' },
] as const;
export type ResourceKind = (typeof resourceKinds)[number]['kind'];

export interface AuditEvent {
  id: string;
  time: string;
  type: string;
  cluster?: string;
  identity?: { user?: string; host?: string; roles?: string[]; addr?: string };
  resource?: { kind: string; name: string };
  outcome: string;
  reason?: string;
  fields?: Record<string, unknown>;
}

/** A finished session recording as auth stores it (SSH shell/exec and Kubernetes exec (kube): asciicast; desktop: PSTDREC1). */
export interface RecordingRecord {
  session_id: string;
  user: string;
  login: string;
  node: string;
  kind: 'shell' | 'exec' | 'kube' | 'desktop';
  command?: string;
  /** kube: NAMESPACE/POD. */
  pod?: string;
  started: string;
  ended: string;
  interrupted?: boolean;
  width?: number;
  height?: number;
  size: number;
}

export interface AuditQuery {
  from?: string;
  to?: string;
  types?: string[];
  user?: string;
  limit?: number;
  order?: 'asc' | 'desc';
}

/** An error the proxy or auth answered with; `status` 401 means the session is gone. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let csrfToken = '';

/** Remembers the session's CSRF token for later state-changing calls. */
export function useCsrfToken(token: string): void {
  csrfToken = token;
}

async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, 'PST_NETWORK', `cannot reach the proxy: ${(error as Error).message}; check the network and try again`);
  }
  const text = await response.text();
  let parsed: unknown = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(response.status, 'PST_PROXY_RESPONSE', `the proxy answered ${response.status} with something that is not JSON`);
  }
  if (!response.ok) {
    // The session ended (idle timeout, signed out elsewhere): the shell shows the login page.
    if (response.status === 401 && path !== '/v1/webapi/sessions') dispatchEvent(new Event('postern:session-ended'));
    const error = (parsed as { error?: { code?: string; message?: string } }).error;
    throw new ApiError(response.status, error?.code ?? 'PST_HTTP', error?.message ?? `the proxy answered ${response.status}`);
  }
  return parsed as T;
}

const site = (cluster: string): string => `/v1/webapi/clusters/${encodeURIComponent(cluster)}`;

export const api = {
  login: (user: string, password: string, totpCode: string) => call<Session>('POST', '/v1/webapi/sessions', { user, password, totp_code: totpCode }),
  session: () => call<Session>('GET', '/v1/webapi/sessions/current'),
  logout: () => call<Record<string, never>>('DELETE', '/v1/webapi/sessions/current'),
  /** The proxy's public discovery document (no session needed). */
  discovery: () => call<Discovery>('GET', '/v1/discovery'),
  clusters: () => call<{ clusters: ClusterInfo[] }>('GET', '/v1/webapi/clusters'),
  nodes: (cluster: string) => call<{ items: NodeRecord[] }>('GET', `${site(cluster)}/resources/node`),
  resources: (cluster: string, kind: string) => call<{ items: ResourceRecord[] }>('GET', `${site(cluster)}/resources/${encodeURIComponent(kind)}`),
  createResources: (cluster: string, text: string, upsert: boolean) => call<{ created: string[] }>('POST', `${site(cluster)}/resources`, { text, upsert }),
  deleteResource: (cluster: string, kind: string, name: string) => call<Record<string, never>>('DELETE', `${site(cluster)}/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`),
  addUser: (cluster: string, user: { name: string; roles: string[]; logins: string[] }) => call<{ signup_token: string; expires: string }>('POST', `${site(cluster)}/users`, user),
  resetUser: (cluster: string, name: string) => call<{ reset_token: string; expires: string }>('POST', `${site(cluster)}/users/${encodeURIComponent(name)}/reset`, {}),
  addToken: (cluster: string, token: { roles: string[]; ttl_seconds: number; labels: Record<string, string> }) => call<{ token: string; id: string; expires: string }>('POST', `${site(cluster)}/tokens`, token),
  audit: (cluster: string, query: AuditQuery) => {
    const params = new URLSearchParams();
    if (query.from) params.set('from', query.from);
    if (query.to) params.set('to', query.to);
    for (const type of query.types ?? []) params.append('type', type);
    if (query.user) params.set('user', query.user);
    if (query.limit) params.set('limit', String(query.limit));
    if (query.order) params.set('order', query.order);
    return call<{ events: AuditEvent[] }>('GET', `${site(cluster)}/audit?${params}`);
  },
  recordings: (cluster: string) => call<{ recordings: RecordingRecord[] }>('GET', `${site(cluster)}/recordings`),
  /** A recording's bytes (asciicast text or a PSTDREC1 desktop recording). */
  recording: async (cluster: string, sessionId: string): Promise<Uint8Array<ArrayBuffer>> => {
    const response = await fetch(`${site(cluster)}/recordings/${encodeURIComponent(sessionId)}`, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) {
      const parsed = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      if (response.status === 401) dispatchEvent(new Event('postern:session-ended'));
      throw new ApiError(response.status, parsed.error?.code ?? 'PST_HTTP', parsed.error?.message ?? `the proxy answered ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  },
  /** The websocket URL of a desktop session (the desktop stream, docs/desktops.md). */
  desktopUrl: (cluster: string, name: string) => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${site(cluster)}/desktops/${encodeURIComponent(name)}/connect`;
  },
  /** The websocket URL of a node's terminal (same origin; the cookie authenticates it). */
  terminalUrl: (cluster: string, node: string, login: string, size: { cols: number; rows: number }) => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ login, cols: String(size.cols), rows: String(size.rows) });
    return `${scheme}//${location.host}${site(cluster)}/nodes/${encodeURIComponent(node)}/terminal?${params}`;
  },
};
