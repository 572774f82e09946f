/**
 * A user identity inside an OpenSSH certificate: principals are the logins, and the
 * rest travels in extensions under our own `@postern.dev` names (PROTOCOL.certkeys
 * lets a CA add extensions named `name@domain`; OpenSSH ignores ones it does not know).
 * Each value is one JSON text, so roles and traits keep their structure.
 */
import { z } from 'zod';
import { BadInputError } from '../../../protocols/errors.ts';
import type { UserIdentity } from './identity.ts';

export const sshExtensionNames = {
  roles: 'roles@postern.dev',
  traits: 'traits@postern.dev',
  cluster: 'cluster@postern.dev',
  routeToCluster: 'route-to-cluster@postern.dev',
  username: 'user@postern.dev',
} as const;

const traitsSchema = z.record(z.string(), z.array(z.string()));
const rolesSchema = z.array(z.string());

export interface SshPermissions {
  pty: boolean;
  portForwarding: boolean;
  agentForwarding: boolean;
}

/** The extensions a user certificate carries for `identity`, with OpenSSH's permit-* flags. */
export function sshUserExtensions(identity: UserIdentity, permit: SshPermissions): Record<string, string> {
  const extensions: Record<string, string> = {
    [sshExtensionNames.cluster]: identity.cluster,
    [sshExtensionNames.roles]: JSON.stringify(identity.roles),
    [sshExtensionNames.routeToCluster]: identity.routeToCluster,
    [sshExtensionNames.traits]: JSON.stringify(identity.traits),
    [sshExtensionNames.username]: identity.username,
  };
  if (permit.agentForwarding) extensions['permit-agent-forwarding'] = '';
  if (permit.portForwarding) extensions['permit-port-forwarding'] = '';
  if (permit.pty) extensions['permit-pty'] = '';
  return extensions;
}

/** Reads the identity back from a verified certificate's principals, extensions and expiry. */
export function userIdentityFromSsh(cert: { principals: string[]; extensions: Map<string, string>; validBefore: bigint }): UserIdentity {
  const get = (name: string): string => {
    const value = cert.extensions.get(name);
    if (value === undefined) throw new BadInputError(`SSH certificate lacks the ${name} extension; it was not issued by a Postern cluster`);
    return value;
  };
  const json = (name: string): unknown => {
    try {
      return JSON.parse(get(name));
    } catch {
      throw new BadInputError(`SSH certificate extension ${name} is not valid JSON`);
    }
  };
  const roles = rolesSchema.safeParse(json(sshExtensionNames.roles));
  const traits = traitsSchema.safeParse(json(sshExtensionNames.traits));
  if (!roles.success || !traits.success) throw new BadInputError('SSH certificate roles or traits are malformed');
  return {
    kind: 'user',
    username: get(sshExtensionNames.username),
    roles: roles.data,
    traits: traits.data,
    logins: cert.principals,
    cluster: get(sshExtensionNames.cluster),
    routeToCluster: get(sshExtensionNames.routeToCluster),
    mfaVerified: false,
    bot: false,
    expires: new Date(Number(cert.validBefore) * 1000),
  };
}
