/** What a Kubernetes API request does, for its audit event: verb, resource, namespace, name. */

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
