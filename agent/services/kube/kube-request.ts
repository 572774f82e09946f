/** What a Kubernetes API request does, for its audit event: verb, resource, namespace, name; and an exec's or attach's command and pod. */

export interface KubeRequestInfo {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/**
 * Parses `/api/v1/namespaces/NS/pods/NAME/exec` and `/apis/GROUP/VERSION/...` the way the
 * API server's request-info resolver does (enough for audit); other paths are non-resource.
 */
export function kubeRequestInfo(method: string, url: string): KubeRequestInfo {
  const parsed = new URL(url, 'https://kube.invalid');
  const parts = parsed.pathname.split('/').filter(Boolean);
  const watch = parsed.searchParams.get('watch') === 'true' || parsed.searchParams.get('watch') === '1';
  let rest: string[];
  let apiGroup = '';
  if (parts[0] === 'api' && parts.length >= 2) rest = parts.slice(2);
  else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1]!;
    rest = parts.slice(3);
  } else return { verb: method.toLowerCase(), apiGroup: '', resource: parsed.pathname };
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource = '', name, subresource] = rest;
  const verbs: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' };
  const verb = watch ? 'watch' : method === 'GET' || method === 'HEAD' ? (name ? 'get' : 'list') : verbs[method] ?? method.toLowerCase();
  return { verb, apiGroup, resource, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
}

/** What an exec or attach asks for: the session's audit fields and recording metadata. */
export interface ExecRequestInfo {
  subresource: 'exec' | 'attach';
  /** NAMESPACE/NAME. */
  pod: string;
  container?: string;
  /** exec: the command's words joined by spaces. */
  command?: string;
  tty: boolean;
}

/** The exec or attach a request asks for (undefined for any other request); lengths capped for audit. */
export function execRequestInfo(method: string, url: string): ExecRequestInfo | undefined {
  const info = kubeRequestInfo(method, url);
  if (info.apiGroup !== '' || info.resource !== 'pods' || (info.subresource !== 'exec' && info.subresource !== 'attach') || !info.name) return undefined;
  const query = new URL(url, 'https://kube.invalid').searchParams;
  const container = query.get('container') ?? undefined;
  return {
    subresource: info.subresource,
    pod: `${info.namespace ?? 'default'}/${info.name}`.slice(0, 512),
    ...(container ? { container: container.slice(0, 253) } : {}),
    ...(info.subresource === 'exec' ? { command: query.getAll('command').join(' ').slice(0, 8192) } : {}),
    tty: query.get('tty') === 'true' || query.get('tty') === '1',
  };
}
