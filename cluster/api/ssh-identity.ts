/**
 * A user identity inside an OpenSSH certificate, both ways: the auth server writes it
 * (`sshUserExtensions`), agents read it (`sshUserIdentityFromCertificate`). Principals
 * are the logins; the rest travels in extensions under `@postern.dev` names
 * (PROTOCOL.certkeys lets a CA add `name@domain` extensions; OpenSSH ignores ones it
 * does not know). Each value is one JSON text or a plain string.
 */
import { BadInputError } from '../../protocols/errors.ts';

/** The extension names the user CA writes. */
export const posternSshExtensions = {
  roles: 'roles@postern.dev',
  traits: 'traits@postern.dev',
  cluster: 'cluster@postern.dev',
  routeToCluster: 'route-to-cluster@postern.dev',
  username: 'user@postern.dev',
} as const;

const MAX_DATE_SECONDS = 8_640_000_000_000n;

/** The person behind an SSH session, as the certificate states it. */
export interface SshUserIdentity {
  username: string;
  roles: string[];
  traits: Record<string, string[]>;
  /** The certificate's principals: the logins it may use. */
  logins: string[];
  cluster: string;
  routeToCluster: string;
  expires: Date;
  /** OpenSSH's `permit-*` extensions. */
  permit: { pty: boolean; portForwarding: boolean; agentForwarding: boolean; x11Forwarding: boolean; userRc: boolean };
  /** The certificate's key ID and serial, for audit. */
  keyId: string;
  serial: string;
}

/** Decodes the identity from a verified certificate; throws BadInputError when a Postern extension is missing or malformed. */
export function sshUserIdentityFromCertificate(cert: { principals: string[]; extensions: Map<string, string>; validBefore: bigint; keyId: string; serial: bigint }): SshUserIdentity {
  const get = (name: string): string => {
    const value = cert.extensions.get(name);
    if (value === undefined) throw new BadInputError(`SSH certificate ${JSON.stringify(cert.keyId)} lacks the ${name} extension; it was not issued by a Postern cluster`);
    return value;
  };
  const json = (name: string): unknown => {
    try {
      return JSON.parse(get(name));
    } catch (error) {
      if (error instanceof BadInputError) throw error;
      throw new BadInputError(`SSH certificate extension ${name} is not valid JSON`);
    }
  };
  const roles = json(posternSshExtensions.roles);
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) {
    throw new BadInputError(`SSH certificate extension ${posternSshExtensions.roles} must be a JSON list of role names`);
  }
  const traitsValue = json(posternSshExtensions.traits);
  if (typeof traitsValue !== 'object' || traitsValue === null || Array.isArray(traitsValue)) {
    throw new BadInputError(`SSH certificate extension ${posternSshExtensions.traits} must be a JSON object of string lists`);
  }
  const entries = Object.entries(traitsValue);
  for (const [key, values] of entries) {
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
      throw new BadInputError(`SSH certificate extension ${posternSshExtensions.traits} must be a JSON object of string lists; ${JSON.stringify(key)} is not`);
    }
  }
  // fromEntries defines own properties, so a `__proto__` trait stays a plain key.
  const traits: Record<string, string[]> = Object.fromEntries(entries);
  const flag = (name: string): boolean => cert.extensions.has(name);
  // JavaScript dates end at 8.64e12 seconds; `forever` (2^64-1) becomes that end.
  const seconds = cert.validBefore > MAX_DATE_SECONDS ? MAX_DATE_SECONDS : cert.validBefore;
  return {
    username: get(posternSshExtensions.username),
    roles,
    traits,
    logins: [...cert.principals],
    cluster: get(posternSshExtensions.cluster),
    routeToCluster: get(posternSshExtensions.routeToCluster),
    expires: new Date(Number(seconds) * 1000),
    permit: {
      pty: flag('permit-pty'),
      portForwarding: flag('permit-port-forwarding'),
      agentForwarding: flag('permit-agent-forwarding'),
      x11Forwarding: flag('permit-X11-forwarding'),
      userRc: flag('permit-user-rc'),
    },
    keyId: cert.keyId,
    serial: cert.serial.toString(),
  };
}

/** What a certificate lets its holder do besides log in (OpenSSH's permit-* flags). */
export interface SshPermissions {
  pty: boolean;
  portForwarding: boolean;
  agentForwarding: boolean;
}

/** The extensions a user certificate carries for `identity`, with the permit-* flags. */
export function sshUserExtensions<I extends { username: string; roles: string[]; traits: Record<string, string[]>; cluster: string; routeToCluster: string }>(
  identity: I,
  permit: SshPermissions,
): Record<string, string> {
  const extensions: Record<string, string> = {
    [posternSshExtensions.cluster]: identity.cluster,
    [posternSshExtensions.roles]: JSON.stringify(identity.roles),
    [posternSshExtensions.routeToCluster]: identity.routeToCluster,
    [posternSshExtensions.traits]: JSON.stringify(identity.traits),
    [posternSshExtensions.username]: identity.username,
  };
  if (permit.agentForwarding) extensions['permit-agent-forwarding'] = '';
  if (permit.portForwarding) extensions['permit-port-forwarding'] = '';
  if (permit.pty) extensions['permit-pty'] = '';
  return extensions;
}
