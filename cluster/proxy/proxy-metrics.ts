/**
 * The proxy's Prometheus metrics. Counters live in plain objects the code bumps
 * (cheap, readable by tests) and are read by the registry at scrape time; byte counts
 * come from the sockets' own counters, so the data path does no per-chunk work.
 */
import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PortRouterStats } from '../../protocols/mux/port-router.ts';

/** Dial outcomes counted by {@link ProxyMetrics}. */
export type DialOutcome = 'ok' | 'rejected' | 'timeout' | 'no-tunnel' | 'error';

/** Byte paths counted by {@link ProxyMetrics}. */
export type BytePath = 'auth-passthrough' | 'tunnel' | 'ssh' | 'db';

/** Plain counters, bumped by the proxy's parts. */
export interface ProxyStats {
  /** Connections the proxy handled itself, by protocol (auth-passthrough). */
  connections: Record<string, number>;
  /** Connections refused by the proxy, by reason. */
  rejected: Record<string, number>;
  dials: Record<DialOutcome, number>;
}

interface _Meter {
  in: number;
  out: number;
}

/** The metrics of one proxy, registered on `registry`. */
export class ProxyMetrics {
  readonly stats: ProxyStats = { connections: {}, rejected: {}, dials: { 'ok': 0, 'rejected': 0, 'timeout': 0, 'no-tunnel': 0, 'error': 0 } };
  readonly dialSeconds: Histogram;
  readonly tunnels: Gauge;
  readonly #routers: PortRouterStats[] = [];
  readonly #closedBytes = new Map<BytePath, _Meter>();
  readonly #liveSockets = new Map<Socket, BytePath>();

  constructor(registry: Registry) {
    const self = this;
    new Counter({
      name: 'postern_proxy_connections_total',
      help: 'Connections on the public port handed to a handler, by protocol (auth-passthrough, ssh, postgres, or the TLS ALPN id)',
      labelNames: ['protocol'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [protocol, n] of Object.entries(self.#sumRouted())) this.inc({ protocol }, n);
      },
    });
    new Counter({
      name: 'postern_proxy_rejected_connections_total',
      help: 'Connections on the public port closed without being served, by reason',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(self.#sumRejected())) if (n > 0) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'postern_proxy_tunnel_dials_total',
      help: 'Streams opened through reverse tunnels, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(self.stats.dials)) this.inc({ outcome }, n);
      },
    });
    new Counter({
      name: 'postern_proxy_bytes_total',
      help: 'Bytes through the proxy, by path and direction (in = read from the client or agent)',
      labelNames: ['path', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [path, meter] of self.#byteTotals()) {
          this.inc({ path, direction: 'in' }, meter.in);
          this.inc({ path, direction: 'out' }, meter.out);
        }
      },
    });
    this.tunnels = new Gauge({ name: 'postern_proxy_tunnels', help: 'Reverse tunnels connected to this proxy', registers: [registry] });
    this.dialSeconds = new Histogram({
      name: 'postern_proxy_tunnel_dial_seconds',
      help: 'Time from opening a tunnel stream to the agent accepting or refusing it',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5],
      registers: [registry],
    });
  }

  /** Includes a port router's counters in the connection metrics. */
  addRouter(stats: PortRouterStats): void {
    this.#routers.push(stats);
  }

  /** Counts a connection the proxy refused itself. */
  reject(reason: string): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
  }

  /** Counts a connection the proxy served itself (not through the router). */
  connection(protocol: string): void {
    this.stats.connections[protocol] = (this.stats.connections[protocol] ?? 0) + 1;
  }

  /** Counts the socket's bytes under `path` while it lives and after it closes. */
  meter(socket: Socket, path: BytePath): void {
    this.#liveSockets.set(socket, path);
    socket.once('close', () => {
      this.#liveSockets.delete(socket);
      const meter = this.#closed(path);
      meter.in += socket.bytesRead;
      meter.out += socket.bytesWritten;
    });
  }

  #closed(path: BytePath): _Meter {
    let meter = this.#closedBytes.get(path);
    if (meter === undefined) this.#closedBytes.set(path, (meter = { in: 0, out: 0 }));
    return meter;
  }

  #byteTotals(): Map<BytePath, _Meter> {
    const totals = new Map<BytePath, _Meter>();
    for (const [path, meter] of this.#closedBytes) totals.set(path, { ...meter });
    for (const [socket, path] of this.#liveSockets) {
      const meter = totals.get(path) ?? { in: 0, out: 0 };
      meter.in += socket.bytesRead;
      meter.out += socket.bytesWritten;
      totals.set(path, meter);
    }
    return totals;
  }

  #sumRouted(): Record<string, number> {
    const out: Record<string, number> = { ...this.stats.connections };
    for (const router of this.#routers) for (const [id, n] of Object.entries(router.routed)) out[id] = (out[id] ?? 0) + n;
    return out;
  }

  #sumRejected(): Record<string, number> {
    const out: Record<string, number> = { ...this.stats.rejected };
    for (const router of this.#routers) for (const [reason, n] of Object.entries(router.dropped)) out[reason] = (out[reason] ?? 0) + n;
    return out;
  }
}
