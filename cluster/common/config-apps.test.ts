import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './config.ts';

const agent = (body: string) => `agent:\n  proxy_addr: 127.0.0.1:3080\n${body}`;

test('agent.apps and agent.kube.clusters parse with defaults', () => {
  const config = parseConfig(agent('  apps:\n    - { name: web, uri: "http://127.0.0.1:3000" }\n  kube:\n    clusters:\n      - { name: prod, kubeconfig: /etc/k.yaml }\n'), 'postern.yaml');
  assert.deepEqual(config.agent?.apps[0], { name: 'web', uri: 'http://127.0.0.1:3000', labels: {}, rewrite: { headers: {} }, insecure_skip_verify: false });
  assert.equal(config.agent?.kube.clusters[0]?.name, 'prod');
  assert.deepEqual(parseConfig(agent(''), 'postern.yaml').agent?.apps, []);
});

test('bad app and kube entries are refused with the field path', () => {
  assert.throws(() => parseConfig(agent('  apps:\n    - { name: Web_1, uri: "http://x:1" }\n'), 'postern.yaml'), /apps\.0\.name.*DNS label/s);
  assert.throws(() => parseConfig(agent('  apps:\n    - { name: web, uri: "ftp://x:1" }\n'), 'postern.yaml'), /apps\.0\.uri.*http:\/\/host:port/s);
  assert.throws(() => parseConfig(agent('  kube:\n    clusters:\n      - { name: k, kubeconfig: /k, api_addr: "https://x:6443" }\n'), 'postern.yaml'), /exactly one of kubeconfig and api_addr/);
  assert.throws(() => parseConfig('proxy:\n  app_domain: "*.bad"\n', 'postern.yaml'), /app_domain/);
});
