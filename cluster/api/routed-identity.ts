/**
 * The caller identity a proxy hands an agent's app or Kubernetes service in the tunnel
 * dial (`postern-identity`): the proxy has verified the user's certificate (or their
 * app session, whose certificate auth stored) and passes what it says as base64url
 * JSON. The agent trusts it because the tunnel's peer is a proxy of this cluster
 * (its host certificate was checked before the tunnel came up); it still checks the
 * expiry and makes every access decision itself.
 */
import { z } from 'zod';
import { BadInputError } from '../../protocols/errors.ts';

const text = z.string().max(1_024);

export const routedIdentitySchema = z.strictObject({
  v: z.literal(1),
  username: z.string().min(1).max(253),
  roles: z.array(z.string().max(253)).max(256),
  traits: z.record(z.string().max(253), z.array(text).max(256)),
  cluster: z.string().max(253),
  /** ISO time the user's certificate (or app session) expires. */
  expires: z.iso.datetime(),
  /** How the proxy authenticated the caller. */
  via: z.enum(['certificate', 'app-session']),
  /** The client's address as the proxy saw it. */
  addr: z.string().max(64),
});

export type RoutedIdentity = z.output<typeof routedIdentitySchema>;

/** The header value for a verified identity. */
export function encodeRoutedIdentity(identity: RoutedIdentity): string {
  return Buffer.from(JSON.stringify(identity)).toString('base64url');
}

/** The identity in a dial header; a BadInputError names what is wrong. */
export function decodeRoutedIdentity(header: string): RoutedIdentity {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    throw new BadInputError('the dial identity is not base64url JSON; is the proxy older than this agent?');
  }
  const parsed = routedIdentitySchema.safeParse(value);
  if (!parsed.success) throw new BadInputError(`the dial identity does not parse: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}
