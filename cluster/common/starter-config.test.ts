import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderStarterConfig } from './starter-config.ts';
import { parseConfig } from './config.ts';

test('every starter config parses with the schema it documents', () => {
  for (const roles of [['auth', 'proxy'], ['agent'], ['auth', 'proxy', 'agent']] as const) {
    const text = renderStarterConfig({ clusterName: 'example', dataDir: '/var/lib/postern', roles: [...roles], token: 't', caPin: `sha256:${'a'.repeat(64)}` });
    const config = parseConfig(text, 'postern.yaml');
    assert.equal(Boolean(config.auth), roles.includes('auth' as never));
    assert.equal(Boolean(config.agent), roles.includes('agent' as never));
  }
});
