import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execRequestInfo, kubeRequestInfo } from './kube-request.ts';

test('requests map to verb, group, resource, namespace and name as the API server sees them', () => {
  assert.deepEqual(kubeRequestInfo('GET', '/api/v1/namespaces/default/pods?limit=500'), { verb: 'list', apiGroup: '', resource: 'pods', namespace: 'default' });
  assert.deepEqual(kubeRequestInfo('GET', '/api/v1/namespaces/default/pods?watch=true&resourceVersion=10'), { verb: 'watch', apiGroup: '', resource: 'pods', namespace: 'default' });
  assert.deepEqual(kubeRequestInfo('POST', '/api/v1/namespaces/ops/pods/web-1/exec?command=sh'), { verb: 'create', apiGroup: '', resource: 'pods', subresource: 'exec', namespace: 'ops', name: 'web-1' });
  assert.deepEqual(kubeRequestInfo('DELETE', '/apis/apps/v1/namespaces/ops/deployments/api'), { verb: 'delete', apiGroup: 'apps', resource: 'deployments', namespace: 'ops', name: 'api' });
  assert.deepEqual(kubeRequestInfo('GET', '/api/v1/namespaces/ops'), { verb: 'get', apiGroup: '', resource: 'namespaces', name: 'ops' });
  assert.deepEqual(kubeRequestInfo('GET', '/version'), { verb: 'get', apiGroup: '', resource: '/version' });
});

test('exec and attach requests give the pod, container, command and tty; other requests none', () => {
  assert.deepEqual(execRequestInfo('GET', '/api/v1/namespaces/ops/pods/web-1/exec?command=sh&command=-c&command=echo%20hi&container=main&stdin=true&tty=true'), { subresource: 'exec', pod: 'ops/web-1', container: 'main', command: 'sh -c echo hi', tty: true });
  assert.deepEqual(execRequestInfo('POST', '/api/v1/namespaces/default/pods/web-1/attach?stdout=1'), { subresource: 'attach', pod: 'default/web-1', tty: false });
  assert.equal(execRequestInfo('POST', '/api/v1/namespaces/default/pods/web-1/portforward'), undefined);
  assert.equal(execRequestInfo('GET', '/api/v1/namespaces/default/pods/web-1'), undefined);
  assert.equal(execRequestInfo('POST', '/apis/apps/v1/namespaces/default/deployments/web/exec'), undefined);
  assert.equal(execRequestInfo('POST', '/apis/example.com/v1/namespaces/default/pods/web/exec'), undefined);
});
