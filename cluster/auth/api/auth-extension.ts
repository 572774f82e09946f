/**
 * How code outside cluster/ (root/, leaf/) adds to the Auth Service without the core
 * importing it: extra gRPC handlers, and hooks around writes of the resource kinds it
 * owns. `postern start` passes the extensions to AuthServer.start.
 *
 * ```ts
 * AuthServer.start({ ...options, extensions: [rootAuthExtension(), leafAuthExtension()] });
 * ```
 */
export type { AuthExtension, AuthHandlers, ResourceHooks } from './auth-deps.ts';
