/** One proxy address kept connected (the generic link lives in protocols/tunnel/tunnel-link.ts; the agent's peers are ProxyPeers). */
import { TunnelLink as GenericTunnelLink } from '../../protocols/tunnel/tunnel-link.ts';
import type { ProxyPeer } from '../proxy/proxy-peer.ts';

export type { LinkState, LinkStatus, TunnelLinkOptions } from '../../protocols/tunnel/tunnel-link.ts';

/** The agent's link: its peer is a proxy of its cluster. */
export class TunnelLink extends GenericTunnelLink<ProxyPeer> {}
