import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { parseDuration } from '../common/duration.ts';
import { BadInputError } from '../../protocols/errors.ts';
import type { PosternConfig } from '../common/config.ts';
import type { DiagServer } from '../common/diag-server.ts';
import type { Logger } from '../common/logger.ts';
import { splitHostPort } from '../common/diag-server.ts';
import { joinedProxyIdentity, localProxyIdentity, proxyIdentityPath, proxyNames, renewProxyIdentity, type LocalAuth } from './proxy-identity.ts';
import type { PublicCertificate } from './proxy-credentials.ts';
import type { ProxyExtension } from './proxy-extension.ts';
import { startProxy, type RunningProxy } from './start-proxy.ts';
import { connectAuth } from '../api/auth-client.ts';
import { writeIdentityFile, type IdentityFile } from '../api/identity-file.ts';

/** What `postern start` hands the proxy besides its config. */
export interface ProxyServiceContext {
  logger: Logger;
  diag?: DiagServer;
  /** The auth server of this process, when `auth` is enabled too. */
  localAuth?: LocalAuth;
  /** Trusted clusters (root/, leaf/) and other additions from outside the core. */
  extensions?: readonly ProxyExtension[];
}

/**
 * Starts the proxy that `config.proxy` describes: with the auth server of this process
 * when there is one, otherwise by joining the auth service at `proxy.auth_addr` (first
 * start: `proxy.token` and `proxy.ca_pin`; later starts reuse `data_dir/proxy-identity.json`).
 */
export async function startProxyService(config: PosternConfig, context: ProxyServiceContext): Promise<RunningProxy> {
  const proxy = config.proxy;
  if (!proxy) throw new BadInputError('proxy: the section is missing');
  const logger = context.logger.child({ component: 'proxy' });
  context.diag?.addReadinessCheck('proxy', () => ({ ready: false, reason: 'starting' }));
  const names = proxyNames(proxy.public_addr ? splitHostPort(proxy.public_addr)[0] : undefined, proxy.app_domain);
  const local = context.localAuth;
  const authAddr = local?.address ?? proxy.auth_addr;
  if (!authAddr) throw new BadInputError('proxy.auth_addr: required when auth is not enabled in this process; set it to the auth API (host:3025) or another proxy\'s public address');
  const identity = local ? await localProxyIdentity(local, config.data_dir, names) : await joinedProxyIdentity({ dataDir: config.data_dir, authAddr, token: proxy.token, caPin: proxy.ca_pin, names, logger });
  const renewIdentity = async (current: IdentityFile): Promise<IdentityFile> => {
    if (local) return localProxyIdentity(local, config.data_dir, names);
    const connection = connectAuth(authAddr, current);
    try {
      const renewed = await renewProxyIdentity(connection.client, current, names);
      await writeIdentityFile(proxyIdentityPath(config.data_dir), renewed);
      return renewed;
    } finally {
      connection.close();
    }
  };
  return startProxy({
    identity,
    renewIdentity,
    authAddr,
    listenAddr: proxy.listen_addr,
    publicAddr: proxy.public_addr,
    appDomain: proxy.app_domain,
    mysqlListenAddr: proxy.mysql_listen_addr,
    publicCertificate: await _publicCertificate(proxy.tls_cert_file, proxy.tls_key_file),
    logger,
    metricsRegistry: context.diag?.registry,
    diag: context.diag,
    webIdleTimeoutSeconds: parseDuration(proxy.web_idle_timeout) / 1000,
    extensions: context.extensions,
  });
}

async function _publicCertificate(certFile: string | undefined, keyFile: string | undefined): Promise<PublicCertificate | undefined> {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new BadInputError('proxy.tls_cert_file and proxy.tls_key_file: set both or neither');
  const read = async (file: string, field: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new BadInputError(`proxy.${field}: cannot read ${file}: ${(error as Error).message}`);
    }
  };
  const certificate = { certPem: await read(certFile, 'tls_cert_file'), keyPem: await read(keyFile, 'tls_key_file') };
  try {
    tls.createSecureContext({ cert: certificate.certPem, key: certificate.keyPem });
  } catch (error) {
    throw new BadInputError(`proxy.tls_cert_file, proxy.tls_key_file: ${certFile} and ${keyFile} do not make a usable certificate and key (${(error as Error).message})`);
  }
  return certificate;
}
