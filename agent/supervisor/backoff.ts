/** Restart delays for the agent's supervisor and links: the shared jittered back-off (protocols/tunnel/backoff.ts). */
export { backoffCap, backoffDelay, defaultBackoff, type BackoffOptions } from '../../protocols/tunnel/backoff.ts';
