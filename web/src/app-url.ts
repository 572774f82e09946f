/**
 * Where a browser opens an HTTP app. Shared by the web UI's Launch link
 * (pages/resources.tsx) and psh (`psh apps ls`, `psh apps login`; cli/psh/apps.ts),
 * so both name the same address. Pure: no DOM and no Node APIs (only the URL API, which
 * both have), so the browser bundle and Node import it alike; keep it that way.
 *
 * - an app in the proxy's own cluster: `https://NAME.<app_domain>[:PORT]/`, PORT the
 *   proxy's public port, left out when it is 443;
 * - an app in a leaf cluster C: the app login form on the same host routed to the leaf,
 *   `https://NAME.<app_domain>[:PORT]/.postern/login?cluster=C` (cluster/proxy/app-sessions.ts);
 * - an app with its own `spec.public_addr`: `https://PUBLIC_ADDR/` (the app's own address,
 *   not this proxy's, so no login form to route);
 * - tcp:// apps and proxies without an app domain: no browser address.
 */

/** An app name as agents serve it (cluster/common/config.ts appConfigSchema): one DNS label. */
const _appName = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** An app domain as the proxy's configuration allows it. */
const _appDomain = /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/;

/**
 * `https://NAME.<app domain>[:PORT]` (no trailing slash; no port when it is 443), or
 * undefined when the proxy has no app domain or the name or domain is not a host name
 * (never pasted into a URL unchecked).
 */
export function appAddress(name: string, appDomain: string | undefined, port: number): string | undefined {
  if (!appDomain || !_appName.test(name) || !_appDomain.test(appDomain) || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  const url = new URL('https://app.invalid/');
  url.hostname = `${name}.${appDomain}`;
  url.port = String(port); // the URL API drops https' default port itself
  return url.hostname === `${name}.${appDomain}` ? url.origin : undefined;
}

/**
 * Where a browser opens the HTTP app at `address` (from appAddress): the address itself
 * when the app is in the proxy's own cluster (`cluster` undefined or `proxyCluster`); for
 * an app in a leaf, the login form naming the leaf (the session is routed there).
 * `redirect`, a path on the app's host, is where the form sends the browser after the
 * login (the proxy's default is `/`); in the own cluster the URL opens that path.
 */
export function browserUrl(address: string, cluster: string | undefined, proxyCluster: string, redirect?: string): string {
  if (redirect !== undefined && (!redirect.startsWith('/') || redirect.startsWith('//') || redirect.startsWith('/\\'))) {
    throw new Error(`redirect ${JSON.stringify(redirect)} is not a path on the app's host`);
  }
  const url = new URL(address);
  if (!cluster || cluster === proxyCluster) return new URL(redirect ?? '/', url).href;
  url.pathname = '/.postern/login';
  url.searchParams.set('cluster', cluster);
  if (redirect !== undefined) url.searchParams.set('redirect', redirect);
  return url.href;
}

/**
 * An app's own `public_addr` as a browser address: `host[:port]` becomes
 * `https://host[:port]/`; an http(s) URL stays as it is. Undefined for anything else
 * (another scheme, text that is not an address).
 */
export function publicAddrUrl(publicAddr: string): string | undefined {
  const text = publicAddr.trim();
  if (!text) return undefined;
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    return undefined;
  }
  return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname ? url.href : undefined;
}

/** The app as the resources page knows it. */
export interface LaunchableApp {
  name: string;
  /** `spec.protocol`: `http` (also for https upstreams) or `tcp`. */
  protocol?: string;
  /** `spec.public_addr`. */
  publicAddr?: string;
  /** The cluster that serves the app. */
  cluster: string;
}

/** What the browser knows of the proxy: discovery's `app_domain` and `cluster_name`, and the port it reached the proxy on. */
export interface LaunchProxy {
  appDomain?: string;
  cluster: string;
  port: number;
}

/** A URL to open, or why there is none (shown as the row's tooltip). */
export type AppLaunch = { url: string; reason?: undefined } | { url?: undefined; reason: string };

/** Where the web UI's Launch opens `app`, as psh apps ls shows it. */
export function appLaunch(app: LaunchableApp, proxy: LaunchProxy): AppLaunch {
  if (app.protocol === 'tcp') return { reason: `a TCP app: use psh proxy app ${app.name}` };
  if (app.publicAddr) {
    const url = publicAddrUrl(app.publicAddr);
    return url ? { url } : { reason: `its public_addr ${JSON.stringify(app.publicAddr)} is not an address` };
  }
  if (!proxy.appDomain) return { reason: 'the proxy has no app domain' };
  const address = appAddress(app.name, proxy.appDomain, proxy.port);
  if (!address) return { reason: `${JSON.stringify(app.name)} is not a host name under ${proxy.appDomain}` };
  return { url: browserUrl(address, app.cluster, proxy.cluster, '/') };
}
