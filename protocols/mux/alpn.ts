/** The ALPN protocol ids Postern routes on its single public port. */
export const ALPN = {
  join: 'postern-join',
  tunnel: 'postern-tunnel',
  ssh: 'postern-ssh',
  postgres: 'postern-postgres',
  mysql: 'postern-mysql',
  kube: 'postern-kube',
  tcp: 'postern-tcp',
  h2: 'h2',
  http1: 'http/1.1',
  /** What libpq 17+ offers, in direct-SSL mode and after an SSLRequest. */
  postgresql: 'postgresql',
} as const;

/** One of the ALPN ids in {@link ALPN}. */
export type AlpnId = (typeof ALPN)[keyof typeof ALPN];

/** True when `id` can be sent as an ALPN protocol name (1-255 bytes of printable ASCII). */
export function isValidAlpnId(id: string): boolean {
  return /^[\x21-\x7e]{1,255}$/.test(id);
}
