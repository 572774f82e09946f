import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './config.ts';

const base = 'agent:\n  proxy_addr: 127.0.0.1:3080\n  desktops:\n';

describe('agent.desktops config', () => {
  it('reads desktops, resolving password files against the config file', () => {
    const config = parseConfig(`${base}    - name: win-1\n      addr: 10.0.0.5:3389\n      labels: { os: windows }\n      logins:\n        - { login: alice, password_file: secrets/alice }\n        - { login: Administrator, password_env: WIN1_ADMIN }\n`, '/etc/postern/postern.yaml');
    const desktop = config.agent?.desktops[0];
    assert.equal(desktop?.addr, '10.0.0.5:3389');
    assert.equal(desktop?.logins[0]?.password_file, '/etc/postern/secrets/alice');
    assert.equal(desktop?.logins[1]?.password_env, 'WIN1_ADMIN');
  });

  it('refuses a login with no password source, or two', () => {
    assert.throws(() => parseConfig(`${base}    - { name: d, addr: 'h:3389', logins: [{ login: a }] }\n`, 'p.yaml'), /logins\.0.*exactly one of password_file or password_env/s);
    assert.throws(() => parseConfig(`${base}    - { name: d, addr: 'h:3389', logins: [{ login: a, password_file: f, password_env: E }] }\n`, 'p.yaml'), /exactly one of password_file or password_env/);
  });

  it('refuses a password in the file itself, duplicate names and a bad address', () => {
    assert.throws(() => parseConfig(`${base}    - { name: d, addr: 'h:3389', logins: [{ login: a, password: hunter2 }] }\n`, 'p.yaml'), /password/);
    assert.throws(() => parseConfig(`${base}    - { name: d, addr: 'h:3389', logins: [{ login: a, password_env: E }] }\n    - { name: d, addr: 'h:3389', logins: [{ login: a, password_env: E }] }\n`, 'p.yaml'), /desktop names must be unique/);
    assert.throws(() => parseConfig(`${base}    - { name: d, addr: 'h', logins: [{ login: a, password_env: E }] }\n`, 'p.yaml'), /host:port/);
  });
});
