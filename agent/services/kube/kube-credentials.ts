/**
 * How the Kubernetes service reaches one API server with its own credentials: the
 * server URL, the CA to check it with, and a bearer token or a client certificate,
 * read from a kubeconfig (a context, default current-context; inline `-data` fields or
 * files relative to the kubeconfig) or from the config's explicit fields.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BadInputError } from '../../../protocols/errors.ts';
import type { PosternConfig } from '../../../cluster/common/config.ts';

export type KubeClusterConfig = NonNullable<PosternConfig['agent']>['kube']['clusters'][number];

export interface KubeCredentials {
  server: URL;
  ca?: string;
  token?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify: boolean;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string } }>;
  clusters?: Array<{ name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean } }>;
  users?: Array<{ name: string; user: { token?: string; tokenFile?: string; 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string } }>;
}

async function _read(file: string, what: string, base?: string): Promise<string> {
  const full = base && !path.isAbsolute(file) ? path.join(base, file) : file;
  try {
    return await readFile(full, 'utf8');
  } catch (error) {
    throw new BadInputError(`cannot read the ${what} ${full}: ${(error as Error).message}`);
  }
}

const _b64 = (text: string): string => Buffer.from(text, 'base64').toString('utf8');

/** Loads the credentials of one configured cluster; a BadInputError names the field and file. */
export async function loadKubeCredentials(config: KubeClusterConfig): Promise<KubeCredentials> {
  if (config.api_addr) {
    return {
      server: new URL(config.api_addr),
      ca: config.ca_file ? await _read(config.ca_file, 'CA file (ca_file)') : undefined,
      token: config.token_file ? (await _read(config.token_file, 'token file (token_file)')).trim() : undefined,
      cert: config.client_cert_file ? await _read(config.client_cert_file, 'client certificate (client_cert_file)') : undefined,
      key: config.client_key_file ? await _read(config.client_key_file, 'client key (client_key_file)') : undefined,
      insecureSkipVerify: false,
    };
  }
  const file = config.kubeconfig!;
  const base = path.dirname(file);
  const kubeconfig = parseYaml(await _read(file, 'kubeconfig')) as KubeconfigFile;
  const contextName = config.context ?? kubeconfig['current-context'];
  const context = kubeconfig.contexts?.find((c) => c.name === contextName)?.context;
  if (!context) throw new BadInputError(`kube cluster ${config.name}: ${file} has no context ${JSON.stringify(contextName)}; set agent.kube.clusters[].context`);
  const cluster = kubeconfig.clusters?.find((c) => c.name === context.cluster)?.cluster;
  const user = kubeconfig.users?.find((u) => u.name === context.user)?.user ?? {};
  if (!cluster?.server) throw new BadInputError(`kube cluster ${config.name}: ${file} has no cluster ${JSON.stringify(context.cluster)} with a server`);
  return {
    server: new URL(cluster.server),
    ca: cluster['certificate-authority-data'] ? _b64(cluster['certificate-authority-data']) : cluster['certificate-authority'] ? await _read(cluster['certificate-authority'], 'certificate-authority', base) : undefined,
    token: user.token ?? (user.tokenFile ? (await _read(user.tokenFile, 'tokenFile', base)).trim() : undefined),
    cert: user['client-certificate-data'] ? _b64(user['client-certificate-data']) : user['client-certificate'] ? await _read(user['client-certificate'], 'client-certificate', base) : undefined,
    key: user['client-key-data'] ? _b64(user['client-key-data']) : user['client-key'] ? await _read(user['client-key'], 'client-key', base) : undefined,
    insecureSkipVerify: cluster['insecure-skip-tls-verify'] === true,
  };
}
