/**
 * `psh clusters` lists the cluster you logged in to and the leaves your roles reach;
 * `psh login LEAF` switches your default route: the root reissues your certificates
 * (same identity, same expiry) with route-to-cluster LEAF, after checking your roles'
 * cluster_labels, and `psh ls`, `psh ssh` and `psh config` then go to that leaf.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { formatLabels, outputFormat, printData, renderTable } from '../output.ts';
import { connectAuth, type AuthConnection } from '../../cluster/api/auth-client.ts';
import { formatAuthorizedKey } from '../../protocols/ssh/public-key.ts';
import { formatOpenSshPrivateKey } from '../../protocols/ssh/private-key.ts';
import { stringOption, type Invocation } from '../command.ts';
import { loadProfile, profileDir, profileFiles, saveProfile, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';

interface ClusterView {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { state: string; last_heartbeat?: string };
}

async function _connect(profile: Profile): Promise<AuthConnection> {
  const dir = profileDir(profile.proxy);
  const [key, cert, ca] = await Promise.all([profileFiles.tlsKey, profileFiles.tlsCert, clusterCaFile].map((file) => readFile(path.join(dir, file), 'utf8')));
  return connectAuth(profile.proxy, { key_pem: key!, cert_pem: cert!, ca_pems: [ca!] });
}

export async function clusters(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const connection = await _connect(profile);
  try {
    const { clusterName } = await connection.client.status({}, { deadlineMs: 10_000 });
    const leaves = JSON.parse((await connection.client.getResources({ kind: 'remote_cluster', name: '' }, { deadlineMs: 10_000 })).resourcesJson) as ClusterView[];
    const route = profile.route || clusterName;
    const rows = [
      { name: clusterName, type: 'root', status: 'online', labels: {} as Record<string, string>, selected: route === clusterName },
      ...leaves.map((l) => ({ name: l.metadata.name, type: 'leaf', status: l.status?.state ?? 'offline', labels: l.metadata.labels ?? {}, selected: route === l.metadata.name })),
    ];
    printData(outputFormat(invocation.options.format), rows, (list) =>
      renderTable(['CLUSTER', 'TYPE', 'STATUS', 'LABELS', 'SELECTED'], list.map((r) => [r.name, r.type, r.status, formatLabels(r.labels), r.selected ? '*' : '']), 'no clusters'),
    );
    return 0;
  } finally {
    connection.close();
  }
}

/** `psh login CLUSTER` with a current profile: new certificates routed to CLUSTER. */
export async function loginCluster(invocation: Invocation, cluster: string): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const connection = await _connect(profile);
  try {
    const ssh = generateKeyPairSync('ed25519');
    const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const issued = await connection.client.reissueUserCertificates(
      {
        routeToCluster: cluster,
        sshPublicKey: formatAuthorizedKey(ssh.publicKey, `${profile.username}@psh`),
        tlsPublicKey: tls.publicKey.export({ type: 'spki', format: 'pem' }) as string,
      },
      { deadlineMs: 10_000 },
    );
    const { clusterName } = await connection.client.status({}, { deadlineMs: 10_000 });
    const route = cluster === clusterName ? '' : cluster;
    await saveProfile(
      { ...profile, route, roles: issued.roles, logins: issued.logins, expires: issued.expires, sshHostCaKeys: issued.sshHostCaKeys },
      {
        tlsKeyPem: tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        tlsCertPem: issued.tlsCertificatePem,
        sshKeyPem: formatOpenSshPrivateKey(ssh.privateKey, { comment: `${profile.username}@psh` }),
        sshCert: issued.sshCertificate,
      },
    );
    process.stdout.write(`Logged in as ${issued.username} at ${profile.proxy}, routed to cluster ${cluster}\n  expires: ${issued.expires}\n`);
    return 0;
  } finally {
    connection.close();
  }
}
