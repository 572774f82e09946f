/**
 * The browser address of an HTTP app (web/src/app-url.ts), shared by the web UI's
 * Launch link and psh apps ls / apps login.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appAddress, appLaunch, browserUrl, publicAddrUrl } from '../web/src/app-url.ts';

const proxy = { appDomain: 'apps.example.com', cluster: 'root', port: 3080 };

test('appAddress: the port is left out at 443 and kept otherwise; no app domain, no address', () => {
  assert.equal(appAddress('grafana', 'apps.example.com', 443), 'https://grafana.apps.example.com');
  assert.equal(appAddress('grafana', 'apps.example.com', 3080), 'https://grafana.apps.example.com:3080');
  assert.equal(appAddress('grafana', undefined, 3080), undefined);
  assert.equal(appAddress('grafana', '', 3080), undefined);
  assert.equal(appAddress('grafana', 'apps.example.com', 0), undefined);
  assert.equal(appAddress('grafana', 'apps.example.com', 70_000), undefined);
});

test('appAddress: names and domains that are not host names give no address (never pasted into a URL)', () => {
  for (const name of ['', 'Grafana', 'a b', 'evil.com/x', 'x@evil.com', 'x:1', 'x#', 'x?', '-x', 'é', 'a'.repeat(64)]) {
    assert.equal(appAddress(name, 'apps.example.com', 3080), undefined, name);
  }
  for (const domain of ['apps.example.com/', 'evil.com#', 'a b.com', '.example.com', 'example.com.']) {
    assert.equal(appAddress('grafana', domain, 3080), undefined, domain);
  }
});

test('browserUrl: the app itself in the own cluster, the login form routed to a leaf; psh\'s forms are kept', () => {
  const address = 'https://leafweb.root.localhost:1234';
  // psh apps login / ls --cluster leaf (test/trusted-clusters-protocols.test.ts pins these).
  assert.equal(browserUrl(address, 'leaf', 'root'), 'https://leafweb.root.localhost:1234/.postern/login?cluster=leaf');
  assert.equal(browserUrl(address, undefined, 'root'), 'https://leafweb.root.localhost:1234/');
  assert.equal(browserUrl(address, 'root', 'root'), 'https://leafweb.root.localhost:1234/');
  // The web UI's Launch names the landing path.
  assert.equal(browserUrl(address, 'leaf', 'root', '/'), 'https://leafweb.root.localhost:1234/.postern/login?cluster=leaf&redirect=%2F');
  assert.equal(browserUrl(address, 'root', 'root', '/'), 'https://leafweb.root.localhost:1234/');
  // A cluster name is a query value, escaped.
  assert.equal(browserUrl(address, 'le af&x=1#y', 'root'), 'https://leafweb.root.localhost:1234/.postern/login?cluster=le+af%26x%3D1%23y');
  assert.equal(new URL(browserUrl(address, 'le af&x=1#y', 'root')).searchParams.get('cluster'), 'le af&x=1#y');
  for (const bad of ['//evil.example/', 'https://evil.example/', '/\\evil', 'x']) assert.throws(() => browserUrl(address, 'leaf', 'root', bad), /not a path/);
});

test('publicAddrUrl: host[:port] becomes https://host[:port]/, http(s) URLs stay, other schemes are refused', () => {
  assert.equal(publicAddrUrl('grafana.example.com'), 'https://grafana.example.com/');
  assert.equal(publicAddrUrl('grafana.example.com:8443'), 'https://grafana.example.com:8443/');
  assert.equal(publicAddrUrl('grafana.example.com:443'), 'https://grafana.example.com/');
  assert.equal(publicAddrUrl('https://grafana.example.com/d/1'), 'https://grafana.example.com/d/1');
  assert.equal(publicAddrUrl('http://intranet.example.com'), 'http://intranet.example.com/');
  for (const bad of ['', '  ', 'javascript:alert(1)', 'javascript://%0aalert(1)', 'ftp://files.example.com', 'data:text/html,x', 'a b']) {
    assert.equal(publicAddrUrl(bad), undefined, bad);
  }
});

test('appLaunch: own cluster, leaf, public_addr, tcp and a proxy without an app domain', () => {
  assert.deepEqual(appLaunch({ name: 'grafana', protocol: 'http', cluster: 'root' }, proxy), { url: 'https://grafana.apps.example.com:3080/' });
  assert.deepEqual(appLaunch({ name: 'grafana', protocol: 'http', cluster: 'root' }, { ...proxy, port: 443 }), { url: 'https://grafana.apps.example.com/' });
  assert.deepEqual(appLaunch({ name: 'grafana', cluster: 'leaf' }, proxy), { url: 'https://grafana.apps.example.com:3080/.postern/login?cluster=leaf&redirect=%2F' });
  assert.deepEqual(appLaunch({ name: 'grafana', cluster: 'leaf' }, { ...proxy, port: 443 }), { url: 'https://grafana.apps.example.com/.postern/login?cluster=leaf&redirect=%2F' });
  // Its own address wins, in a leaf too, and needs no app domain.
  assert.deepEqual(appLaunch({ name: 'grafana', publicAddr: 'grafana.example.com', cluster: 'leaf' }, proxy), { url: 'https://grafana.example.com/' });
  assert.deepEqual(appLaunch({ name: 'grafana', publicAddr: 'grafana.example.com:8443', cluster: 'root' }, { cluster: 'root', port: 3080 }), { url: 'https://grafana.example.com:8443/' });
  assert.match(appLaunch({ name: 'grafana', publicAddr: 'javascript:alert(1)', cluster: 'root' }, proxy).reason ?? '', /public_addr "javascript:alert\(1\)" is not an address/);
  assert.deepEqual(appLaunch({ name: 'pg', protocol: 'tcp', cluster: 'root' }, proxy), { reason: 'a TCP app: use psh proxy app pg' });
  assert.deepEqual(appLaunch({ name: 'grafana', protocol: 'http', cluster: 'root' }, { cluster: 'root', port: 3080 }), { reason: 'the proxy has no app domain' });
  assert.match(appLaunch({ name: 'x/../evil', cluster: 'root' }, proxy).reason ?? '', /is not a host name under apps\.example\.com/);
});
