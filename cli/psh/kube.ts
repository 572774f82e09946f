/**
 * `psh kube ls | login CLUSTER`.
 *
 * `kube login` trades the profile's certificate for one routed to the cluster
 * (GenerateRouteCerts; same identity and expiry), keeps it as `kube-NAME.key/.crt` in
 * the profile, and writes a kubeconfig context `postern-NAME` (server = the proxy,
 * tls-server-name kube.postern, certificate-authority = the cluster CA) into
 * $KUBECONFIG or ~/.kube/config (or --kubeconfig), made current. Other contexts in the
 * file are kept.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { writeFileAtomic } from '../../cluster/api/identity-file.ts';
import { PosternError } from '../../protocols/errors.ts';
import { loadProfile, profileDir, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';
import { issueRouted, listServed, routedCluster } from './routed-resources.ts';

/** The SNI the proxy routes kubectl by (cluster/proxy/kube-web.ts). */
const kubeServerName = 'kube.postern';

interface KubeRow {
  metadata: { name: string; labels: Record<string, string> };
  status: { node_name: string; online: boolean };
}

interface Kubeconfig {
  apiVersion?: string;
  kind?: string;
  'current-context'?: string;
  clusters?: Array<{ name: string; cluster: Record<string, unknown> }>;
  users?: Array<{ name: string; user: Record<string, unknown> }>;
  contexts?: Array<{ name: string; context: Record<string, unknown> }>;
  [key: string]: unknown;
}

export async function kubeLs(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const rows = await listServed<KubeRow>(profile, 'kube_cluster', routedCluster(invocation, profile));
  const view = rows.map((r) => ({ name: r.metadata.name, labels: r.metadata.labels, node: r.status.node_name, online: r.status.online }));
  printData(outputFormat(invocation.options.format), view, (list) =>
    renderTable(['NAME', 'LABELS', 'STATUS'], list.map((k) => [k.name, formatLabels(k.labels), k.online ? 'online' : 'offline']), 'no Kubernetes clusters you can reach; ask an admin for a role with kubernetes_labels'));
  return 0;
}

/** Issues (IssueRoutedCertificate, to the leaf `cluster` or the profile's route) and stores the route certificate for one Kubernetes cluster. */
async function _issue(profile: Profile, name: string, cluster: string | undefined): Promise<{ keyFile: string; certFile: string; keyPem: string; certPem: string; expires: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = await issueRouted(profile, { tlsPublicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string, kubeCluster: name, cluster });
  const dir = profileDir(profile.proxy);
  const keyFile = path.join(dir, `kube-${name}.key`);
  const certFile = path.join(dir, `kube-${name}.crt`);
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await writeFileAtomic(keyFile, keyPem, 0o600);
  await writeFileAtomic(certFile, issued.tlsCertificatePem, 0o600);
  return { keyFile, certFile, keyPem, certPem: issued.tlsCertificatePem, expires: issued.expires };
}

export async function kubeLogin(invocation: Invocation): Promise<number> {
  const name = _cluster(invocation);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const dir = profileDir(profile.proxy);
  const leaf = stringOption(invocation, 'cluster');
  const issued = await _issue(profile, name, leaf);
  const { keyFile, certFile } = issued;
  const file = stringOption(invocation, 'kubeconfig') ?? process.env.KUBECONFIG?.split(path.delimiter)[0] ?? path.join(os.homedir(), '.kube', 'config');
  const context = `postern-${name}`;
  const config = await _readKubeconfig(file);
  const upsert = <T extends { name: string }>(list: T[] | undefined, item: T): T[] => [...(list ?? []).filter((i) => i.name !== item.name), item];
  config.clusters = upsert(config.clusters, { name: context, cluster: { server: `https://${profile.proxy}`, 'certificate-authority': path.join(dir, clusterCaFile), 'tls-server-name': kubeServerName } });
  const user = invocation.options.exec === true
    ? { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [..._selfArgs(), 'psh', 'kube', 'credentials', name, '--proxy', profile.proxy, ...(leaf ? ['--cluster', leaf] : [])], interactiveMode: 'Never', ...(process.env.POSTERN_HOME ? { env: [{ name: 'POSTERN_HOME', value: process.env.POSTERN_HOME }] } : {}) } }
    : { 'client-certificate': certFile, 'client-key': keyFile };
  config.users = upsert(config.users, { name: context, user });
  config.contexts = upsert(config.contexts, { name: context, context: { cluster: context, user: context } });
  config['current-context'] = context;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, stringifyYaml(config), 0o600);
  process.stdout.write(`Logged in to Kubernetes cluster ${name} (certificate until ${issued.expires}).\nkubectl context ${context} in ${file} is now current: kubectl get pods\n`);
  return 0;
}

/**
 * `psh kube credentials CLUSTER`: kubectl's exec credential plugin. Prints an
 * ExecCredential with the stored route certificate while it has more than a minute
 * left, else a fresh one from the current profile (so psh login is all it takes).
 */
export async function kubeCredentials(invocation: Invocation): Promise<number> {
  const name = _cluster(invocation);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const dir = profileDir(profile.proxy);
  let stored: { keyPem: string; certPem: string; expires: string } | undefined;
  try {
    const [keyPem, certPem] = await Promise.all([readFile(path.join(dir, `kube-${name}.key`), 'utf8'), readFile(path.join(dir, `kube-${name}.crt`), 'utf8')]);
    const expires = new X509Certificate(certPem).validToDate;
    if (expires.getTime() - Date.now() > 60_000) stored = { keyPem, certPem, expires: expires.toISOString() };
  } catch {
    // none stored yet, or unreadable: issue a new one
  }
  const credential = stored ?? (await _issue(profile, name, stringOption(invocation, 'cluster')));
  process.stdout.write(JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: { clientCertificateData: credential.certPem, clientKeyData: credential.keyPem, expirationTimestamp: new Date(credential.expires).toISOString() },
  }) + '\n');
  return 0;
}

function _cluster(invocation: Invocation): string {
  const [name] = invocation.positionals;
  if (!name || invocation.positionals.length > 1) throw new UsageError('expected one CLUSTER (see psh kube ls)');
  return name;
}

/** How to run this psh again: the script when running from source, nothing for the single binary. */
function _selfArgs(): string[] {
  const script = process.argv[1] ?? '';
  return /\.(ts|js|cjs|mjs)$/.test(script) ? [script] : [];
}

async function _readKubeconfig(file: string): Promise<Kubeconfig> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (!text.trim()) return { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  const parsed = parseYaml(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new PosternError('PST_BAD_INPUT', `${file} is not a kubeconfig (expected a YAML mapping); move it aside or pass --kubeconfig`);
  return parsed as Kubeconfig;
}
