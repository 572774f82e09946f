/**
 * The diagnostics listener every daemon runs: `/healthz` (the process is alive),
 * `/readyz` (every component reports ready; 503 with the reasons otherwise) and
 * `/metrics` (Prometheus text from the process's registry).
 */
import http from 'node:http';
import { once } from 'node:events';
import { Registry, collectDefaultMetrics } from 'prom-client';

export type ReadinessCheck = () => { ready: boolean; reason?: string };

export class DiagServer {
  readonly registry = new Registry();
  readonly #checks = new Map<string, ReadinessCheck>();
  #server?: http.Server;

  constructor() {
    // The event-loop lag histogram samples with a libuv timer: prom-client's 10 ms default
    // woke an idle agent 100 times a second (about 6 ms of CPU per second, most of an idle
    // agent's). Every 100 ms still sees any stall longer than that.
    collectDefaultMetrics({ register: this.registry, prefix: 'postern_', eventLoopMonitoringPrecision: 100 });
  }

  /** Registers a named readiness check; `/readyz` is ready only when all are. */
  addReadinessCheck(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }

  readiness(): { ready: boolean; components: Record<string, { ready: boolean; reason?: string }> } {
    const components: Record<string, { ready: boolean; reason?: string }> = {};
    let ready = true;
    for (const [name, check] of this.#checks) {
      const result = check();
      components[name] = result;
      ready &&= result.ready;
    }
    return { ready, components };
  }

  /** Starts listening on `host:port`; resolves with the bound port. */
  async listen(address: string): Promise<number> {
    const [host, port] = splitHostPort(address);
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
    this.#server.listen(port, host);
    await once(this.#server, 'listening');
    return (this.#server.address() as { port: number }).port;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (url === '/readyz') {
      const readiness = this.readiness();
      return sendJson(res, readiness.ready ? 200 : 503, readiness);
    }
    if (url === '/metrics') {
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(await this.registry.metrics());
      return;
    }
    sendJson(res, 404, { error: `no such endpoint ${url}; try /healthz, /readyz or /metrics` });
  }

  async close(): Promise<void> {
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

/** Splits `host:port` (IPv6 in brackets) into its parts. */
export function splitHostPort(address: string): [string, number] {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!match) throw new Error(`cannot parse address "${address}": expected host:port`);
  return [match[1] ?? '', Number(match[2])];
}
