/**
 * Served resources (db, app, kube_cluster) as psh lists them, here or in a leaf, and
 * the routed certificate that reaches one: `--cluster LEAF`, else where `psh login`
 * routed the profile, else the proxy's own cluster.
 *
 * A leaf's resources come through the root proxy's web API (`POST /v1/resources`, the
 * root checks cluster_labels, the leaf lists); the certificate comes from the user's
 * own auth (`IssueRoutedCertificate`), which checks cluster_labels again.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { connectAuth } from '../../cluster/api/auth-client.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import type { Certificates } from '../../cluster/api/gen/postern/auth/v1/auth_pb.ts';
import { PosternError } from '../../protocols/errors.ts';
import { stringOption, type Invocation } from '../command.ts';
import { profileDir, profileFiles, type Profile } from './profile.ts';
import { clusterCaFile } from './proxy-ssh.ts';

/** The leaf `--cluster` or the profile's route names; undefined for the proxy's own cluster. */
export function routedCluster(invocation: Invocation, profile: Profile): string | undefined {
  return stringOption(invocation, 'cluster') || profile.route || undefined;
}

/** Resources of a served kind in `cluster` (a leaf) or here, as auth lists them. */
export async function listServed<T>(profile: Profile, kind: 'db' | 'app' | 'kube_cluster', cluster: string | undefined, name = ''): Promise<T[]> {
  const { key, cert, ca } = await _files(profile);
  if (cluster) {
    const answer = await callWebApi<{ resources: T[] }>(parseProxyAddress(profile.proxy), 'POST', '/v1/resources', { caPems: [ca], clientCert: { keyPem: key, certPem: cert }, body: { cluster, kind } });
    return answer.resources;
  }
  const connection = connectAuth(profile.proxy, { key_pem: key, cert_pem: cert, ca_pems: [ca] });
  try {
    return JSON.parse((await connection.client.getResources({ kind, name }, { deadlineMs: 10_000 })).resourcesJson) as T[];
  } finally {
    connection.close();
  }
}

/** A certificate for `tlsPublicKey` routed to `cluster` (default: the profile's route) and the resource named. */
export async function issueRouted(profile: Profile, request: { tlsPublicKey: string; cluster?: string; dbService?: string; dbUser?: string; dbName?: string; appName?: string; kubeCluster?: string }): Promise<Certificates> {
  const { key, cert, ca } = await _files(profile);
  const connection = connectAuth(profile.proxy, { key_pem: key, cert_pem: cert, ca_pems: [ca] });
  try {
    return await connection.client.issueRoutedCertificate({
      tlsPublicKey: request.tlsPublicKey,
      routeToCluster: request.cluster ?? '',
      dbService: request.dbService ?? '',
      dbUser: request.dbUser ?? '',
      dbName: request.dbName ?? '',
      appName: request.appName ?? '',
      appPublicAddr: '',
      kubeCluster: request.kubeCluster ?? '',
    }, { deadlineMs: 10_000 });
  } finally {
    connection.close();
  }
}

async function _files(profile: Profile): Promise<{ key: string; cert: string; ca: string }> {
  const dir = profileDir(profile.proxy);
  const [key, cert, ca] = await Promise.all([profileFiles.tlsKey, profileFiles.tlsCert, clusterCaFile].map((file) =>
    readFile(path.join(dir, file), 'utf8').catch(() => {
      throw new PosternError('PST_NOT_LOGGED_IN', `the profile for ${profile.proxy} has no ${file}; run psh login --proxy ${profile.proxy}`);
    })));
  return { key: key!, cert: cert!, ca: ca! };
}
