/**
 * `echo`: sends every byte of a tunnel stream back, ending when the caller ends. It
 * proves a path end to end (proxy -> tunnel -> agent) without touching the host;
 * `pipe` keeps it within the stream's flow-control window.
 */
import type { ServiceHandler } from '../tunnel/service-registry.ts';

/** The `echo` service handler. */
export const echoService: ServiceHandler = ({ stream }) => {
  stream.pipe(stream);
};
