/**
 * The services this agent serves through its tunnels, by name (`ssh`, `db:NAME`, ...).
 * Every stream a proxy opens names one (`postern-service`); the registry hands it to
 * that service's handler, or refuses it with 404 and the names it does serve.
 *
 * The peer is a proxy of this cluster: the tunnel was only set up after its
 * certificate checked out (proxy-peer.ts). Whether the *caller* it forwards may use the
 * service is the handler's decision, from `dial.identity`.
 */
import { TunnelRejectedError, isValidService, type DialHandler, type IncomingDial } from '../../protocols/tunnel/index.ts';
import { ServiceRegistrationError } from './errors.ts';
import { servedResourceSchema, servedServiceName, type ServedResource } from '../../cluster/access/resources/served-resource.ts';

/** Serves one dial to a service; throw TunnelRejectedError (or a PosternError) to refuse it. */
export type ServiceHandler = (dial: IncomingDial) => void | Promise<void>;

/** Handlers by service name, and the tunnel's stream handler that dispatches to them. */
export class ServiceRegistry {
  readonly #handlers = new Map<string, ServiceHandler>();
  readonly #served = new Map<string, ServedResource>();
  readonly #listeners = new Set<() => void>();
  /** Streams handed to a handler and not closed yet. */
  readonly #open = new Set<IncomingDial['stream']>();
  #draining = false;
  #onIdle: (() => void) | undefined;

  /** Adds a service; returns its removal. Throws for a duplicate or malformed name. */
  register(name: string, handler: ServiceHandler): () => void {
    if (!isValidService(name)) throw new ServiceRegistrationError(`cannot register service ${JSON.stringify(name)}: a service name is 1-255 characters of A-Z a-z 0-9 . _ : @ / - starting with a letter or digit`);
    if (this.#handlers.has(name)) throw new ServiceRegistrationError(`service ${name} is registered already`);
    this.#handlers.set(name, handler);
    this.#changed();
    return () => {
      if (this.#handlers.get(name) === handler) {
        this.#handlers.delete(name);
        this.#changed();
      }
    };
  }

  /**
   * Adds a database, app, Kubernetes cluster or desktop: served as `kind:name` and
   * announced (with its labels and public spec) in the heartbeat. Returns its removal.
   */
  registerServed(resource: ServedResource, handler: ServiceHandler): () => void {
    const checked = servedResourceSchema.safeParse(resource);
    if (!checked.success) throw new ServiceRegistrationError(`cannot register ${resource.kind} ${JSON.stringify(resource.name)}: ${checked.error.issues.map((i) => `${i.path.join('.') || '(resource)'}: ${i.message}`).join('; ')}`);
    const name = servedServiceName(resource);
    if (this.#handlers.has(name)) throw new ServiceRegistrationError(`service ${name} is registered already`);
    // Recorded before registering: register() notifies listeners, who read served().
    this.#served.set(name, checked.data);
    const remove = this.register(name, handler);
    return () => {
      if (this.#handlers.get(name) !== handler) return;
      this.#served.delete(name);
      remove();
    };
  }

  /** The resources registered with registerServed, sorted by service name. */
  served(): ServedResource[] {
    return [...this.#served.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, resource]) => resource);
  }

  /** Registered service names, sorted. */
  names(): string[] {
    return [...this.#handlers.keys()].sort();
  }

  /** Calls `listener` when a service is added or removed (the heartbeat reports them); returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Streams open now (sessions being served). */
  get openStreams(): number {
    return this.#open.size;
  }

  /**
   * Stops taking new streams (they get 503) and resolves with the number still open
   * when they have all closed or `deadlineMs` has passed, whichever comes first.
   */
  async drain(deadlineMs: number): Promise<number> {
    this.#draining = true;
    if (this.#open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadlineMs);
        this.#onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onIdle = undefined;
    }
    return this.#open.size;
  }

  /** The stream handler to give AgentTunnel. */
  readonly onStream: DialHandler = (dial) => {
    if (this.#draining) throw new TunnelRejectedError(503, 'this agent is shutting down; try again when it is back', { service: dial.service });
    const handler = this.#handlers.get(dial.service);
    if (!handler) {
      const served = this.names();
      throw new TunnelRejectedError(404, `this agent does not serve ${dial.service}; it serves ${served.length ? served.join(', ') : 'nothing yet'}`, { service: dial.service });
    }
    this.#track(dial.stream);
    return handler(dial);
  };

  #track(stream: IncomingDial['stream']): void {
    this.#open.add(stream);
    stream.once('close', () => {
      this.#open.delete(stream);
      if (this.#open.size === 0) this.#onIdle?.();
    });
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
