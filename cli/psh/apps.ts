/**
 * `psh apps ls | login NAME | config NAME` and `psh proxy app NAME --port P`.
 *
 * `apps login` trades the profile's certificate for one routed to the app
 * (GenerateRouteCerts; same identity and expiry), kept as `app-NAME.key/.crt` beside the
 * profile. HTTP apps are then reachable with curl at https://NAME.<app domain>:PORT
 * (`apps config` prints the flags); TCP apps through `psh proxy app`, a local listener
 * whose connections go to the proxy as TLS with ALPN postern-tcp and that certificate.
 *
 * Browsers need no certificate: they log in on the app's address. A leaf's app is opened
 * through the login form with `?cluster=LEAF` (`ls` and `login` print that URL), which
 * routes the browser session to the leaf; the plain address would log in to an app of
 * that name in the proxy's own cluster.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { appAddress, browserUrl } from '../../web/src/app-url.ts';
import { loadProfile, profileDir, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';
import { issueRouted, listServed, routedCluster } from './routed-resources.ts';

interface AppRow {
  metadata: { name: string; labels: Record<string, string>; description?: string };
  spec: { protocol?: string; public_addr?: string };
  status: { node_name: string; online: boolean };
}

/** Files of one app's certificate in a profile. */
export function appFiles(proxy: string, app: string): { key: string; cert: string; ca: string } {
  const dir = profileDir(proxy);
  return { key: path.join(dir, `app-${app}.key`), cert: path.join(dir, `app-${app}.crt`), ca: path.join(dir, clusterCaFile) };
}

/** What psh needs of the proxy's discovery document for app addresses. */
interface _AppDiscovery {
  cluster_name: string;
  app_domain?: string;
}

function _discovery(profile: Profile): Promise<_AppDiscovery> {
  return callWebApi<_AppDiscovery>(parseProxyAddress(profile.proxy), 'GET', '/v1/discovery', { caPems: profile.caPems });
}

async function _appDomain(profile: Profile): Promise<string | undefined> {
  return (await _discovery(profile)).app_domain;
}

const _noAppDomain = '(the proxy has no app domain; set proxy.app_domain)';

/**
 * `https://NAME.<app domain>[:PORT]` (no port when 443), or undefined when the proxy serves
 * no HTTP apps. The address and browser URL rules are shared with the web UI's Launch
 * link (web/src/app-url.ts).
 */
function _appAddress(name: string, domain: string | undefined, proxy: string): string | undefined {
  return appAddress(name, domain, parseProxyAddress(proxy).port);
}

export async function appsLs(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const cluster = routedCluster(invocation, profile);
  const rows = await listServed<AppRow>(profile, 'app', cluster);
  const discovery = rows.length > 0 ? await _discovery(profile) : undefined;
  const view = rows.map((r) => {
    const tcp = r.spec.protocol === 'tcp';
    const address = r.spec.public_addr ?? _appAddress(r.metadata.name, discovery?.app_domain, profile.proxy);
    return {
      name: r.metadata.name,
      protocol: r.spec.protocol ?? 'http',
      url: tcp ? `psh proxy app ${r.metadata.name} --port PORT` : address ?? _noAppDomain,
      // A public_addr is the app's own address, not this proxy's: no login form to route.
      ...(!tcp && address && !r.spec.public_addr ? { browser_url: browserUrl(address, cluster, discovery!.cluster_name) } : {}),
      labels: r.metadata.labels,
      node: r.status.node_name,
      online: r.status.online,
    };
  });
  printData(outputFormat(invocation.options.format), view, (list) =>
    renderTable(['NAME', 'PROTOCOL', 'ADDRESS', 'LABELS', 'STATUS'], list.map((a) => [a.name, a.protocol, a.browser_url ?? a.url, formatLabels(a.labels), a.online ? 'online' : 'offline']), 'no apps you can reach; ask an admin for a role with app_labels'),
  );
  return 0;
}

export async function appsLogin(invocation: Invocation): Promise<number> {
  const name = _oneName(invocation);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = await issueRouted(profile, { tlsPublicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string, appName: name, cluster: stringOption(invocation, 'cluster') });
  const files = appFiles(profile.proxy, name);
  await writeFileAtomic(files.key, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  await writeFileAtomic(files.cert, issued.tlsCertificatePem, 0o600);
  // The certificate went where --cluster, else the profile's route, says (auth's default is the same).
  const cluster = routedCluster(invocation, profile);
  const discovery = await _discovery(profile);
  const address = _appAddress(name, discovery.app_domain, profile.proxy);
  const result = {
    app: name,
    cluster: cluster ?? discovery.cluster_name,
    expires: issued.expires,
    cert: files.cert,
    key: files.key,
    ...(address ? { browser_url: browserUrl(address, cluster, discovery.cluster_name) } : {}),
  };
  printData(outputFormat(invocation.options.format), result, (r) =>
    `Logged in to app ${r.app}${r.cluster !== discovery.cluster_name ? ` in cluster ${r.cluster}` : ''} (certificate until ${r.expires}).\n` +
    `  curl:     psh apps config ${r.app}\n  tcp:      psh proxy app ${r.app} --port PORT\n` +
    (r.browser_url ? `  browser:  ${r.browser_url}\n` : ''));
  return 0;
}

export async function appsConfig(invocation: Invocation): Promise<number> {
  const name = _oneName(invocation);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const files = appFiles(profile.proxy, name);
  await readFile(files.cert).catch(() => {
    throw new PosternError('PST_NOT_LOGGED_IN', `no certificate for app ${name}; run psh apps login ${name}`);
  });
  const domain = await _appDomain(profile);
  if (!domain) throw new PosternError('PST_UNAVAILABLE', `the proxy ${profile.proxy} serves no HTTP apps (no app domain); an admin sets proxy.app_domain`);
  const address = parseProxyAddress(profile.proxy);
  const host = `${name}.${domain}`;
  const config = {
    url: `https://${host}:${address.port}/`,
    cert: files.cert,
    key: files.key,
    cacert: files.ca,
    // The app name need not resolve: curl connects to the proxy and still sends the app's name (SNI and Host).
    connect_to: `${host}:${address.port}:${address.host}:${address.port}`,
  };
  printData(outputFormat(invocation.options.format), config, (c) =>
    `curl --cert ${c.cert} --key ${c.key} --cacert ${c.cacert} --connect-to ${c.connect_to} ${c.url}\n`);
  return 0;
}

export async function proxyApp(invocation: Invocation): Promise<number> {
  const name = _oneName(invocation);
  const portText = stringOption(invocation, 'port') ?? '0';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port ${portText} is not a TCP port`);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const files = appFiles(profile.proxy, name);
  const [key, cert, ca] = await Promise.all([files.key, files.cert, files.ca].map((file) => readFile(file, 'utf8').catch(() => {
    throw new PosternError('PST_NOT_LOGGED_IN', `no certificate for app ${name}; run psh apps login ${name}`);
  })));
  const address = parseProxyAddress(profile.proxy);
  const server = net.createServer({ noDelay: true }, (local) => {
    local.on('error', () => {});
    const remote = tls.connect({ host: address.host, port: address.port, key, cert, ca, ALPNProtocols: ['postern-tcp'], servername: net.isIP(address.host) ? undefined : address.host });
    remote.setNoDelay(true);
    remote.on('error', (error) => {
      process.stderr.write(`psh: app ${name}: ${error.message}\n`);
      local.destroy();
    });
    local.pipe(remote);
    remote.pipe(local);
    local.on('close', () => remote.destroy());
    remote.on('close', () => local.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new PosternError('PST_BAD_INPUT', `cannot listen on 127.0.0.1:${port}: ${error.message}`)));
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = server.address() as net.AddressInfo;
  process.stdout.write(`Proxying connections to app ${name} on 127.0.0.1:${bound.port}; Ctrl-C to stop.\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => void server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

function _oneName(invocation: Invocation): string {
  const [name] = invocation.positionals;
  if (!name || invocation.positionals.length > 1) throw new UsageError('expected one app NAME (see psh apps ls)');
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw new UsageError(`"${name}" is not an app name: lowercase letters, digits and dashes`);
  return name;
}
