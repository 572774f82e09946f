/** `pctl status` and `pctl auth export`. */
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { outputFormat, printData, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

export async function status(invocation: Invocation): Promise<number> {
  return withAuth(invocation, async ({ client }) => {
    const response = await client.status({});
    const hostPin = response.authorities.find((a) => a.kind === 'host')?.tlsPin ?? '';
    const data = {
      cluster: response.clusterName,
      version: response.version,
      backend: response.backend,
      caller: response.caller,
      ca_pin: hostPin,
      authorities: response.authorities.map((a) => ({ kind: a.kind, tls_pin: a.tlsPin, ssh_fingerprint: a.sshFingerprint })),
    };
    printData(outputFormat(invocation.options.format), data, (d) =>
      `Cluster:  ${d.cluster}\nVersion:  ${d.version}\nBackend:  ${d.backend}\nYou are:  ${d.caller}\nCA pin:   ${d.ca_pin}   (for postern join --ca-pin)\n\n` +
      renderTable(['CA', 'X.509 PIN', 'SSH FINGERPRINT'], d.authorities.map((a) => [a.kind, a.tls_pin || '-', a.ssh_fingerprint || '-'])),
    );
    return 0;
  });
}

export async function authExport(invocation: Invocation): Promise<number> {
  const kind = stringOption(invocation, 'type') ?? '';
  const format = stringOption(invocation, 'format') ?? 'openssh';
  if (!['openssh', 'pem', 'jwks', 'known-hosts'].includes(format)) throw new UsageError('--format must be openssh, known-hosts, pem or jwks');
  return withAuth(invocation, async ({ client }) => {
    const { authorities } = await client.exportAuthorities({ kind });
    for (const ca of authorities) {
      if (format === 'pem' && ca.tlsCertPem) process.stdout.write(ca.tlsCertPem);
      if (format === 'jwks' && ca.jwksJson) process.stdout.write(ca.jwksJson + '\n');
      if (format === 'openssh' && ca.sshPublicKey) process.stdout.write(ca.sshPublicKey + '\n');
      if (format === 'known-hosts' && ca.kind === 'host' && ca.sshPublicKey) {
        for (const key of ca.sshPublicKey.split('\n')) process.stdout.write(`@cert-authority * ${key}\n`);
      }
    }
    return 0;
  });
}
