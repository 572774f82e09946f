/**
 * What a heartbeat says about this agent: the host's facts, its labels (static from the
 * config, plus command labels) and the services it runs, as one plain, serialisable
 * snapshot.
 *
 * A key may be a static label or a command label, not both: `checkLabelConflicts`
 * refuses such a config at load time, so no precedence rule is needed and an operator
 * never wonders which of two values a node carries.
 */
import type { HostFacts } from './host-facts.ts';
import { LabelConfigError } from './errors.ts';

export interface InventorySnapshot {
  hostname: string;
  /** The name users address the node by; the hostname unless the config sets one. */
  nodeName: string;
  addresses: string[];
  os: HostFacts['os'];
  kernel: string;
  arch: string;
  cpu: HostFacts['cpu'];
  memoryBytes: number;
  /** Postern's version on this agent. */
  version: string;
  /** Static and command labels, keys sorted. */
  labels: Record<string, string>;
  /** Names of the services the agent runs, sorted. */
  services: string[];
  /** When the agent started, RFC 3339. */
  startedAt: string;
}

/** The part of CommandLabels the inventory reads; any source of changing labels will do. */
export interface LabelSource {
  /** Every label key the source will fill, including those with no value yet. */
  names(): string[];
  current(): Record<string, string>;
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

export interface InventoryOptions {
  facts: HostFacts;
  version: string;
  startedAt: Date;
  nodeName?: string;
  staticLabels?: Readonly<Record<string, string>>;
  commandLabels?: LabelSource;
  /** Asked on every snapshot, so services started later show up. */
  services?: () => Iterable<string>;
}

/**
 * Throws LabelConfigError naming the first key that `agent.labels` and
 * `agent.command_labels` both define.
 */
export function checkLabelConflicts(staticLabels: Readonly<Record<string, unknown>>, commandLabels: Readonly<Record<string, unknown>>): void {
  const clash = Object.keys(staticLabels)
    .sort()
    .find((key) => Object.hasOwn(commandLabels, key));
  if (clash !== undefined) {
    throw new LabelConfigError(
      clash,
      `label "${clash}" is set both in agent.labels and in agent.command_labels; keep it in one of them`,
    );
  }
}

/** Combines host facts, labels and services into the snapshot a heartbeat carries. */
export class Inventory {
  readonly #options: InventoryOptions;
  #staticLabels: Readonly<Record<string, string>>;
  readonly #listeners = new Set<() => void>();

  /** Throws LabelConfigError when a static label shares a key with a command label. */
  constructor(options: InventoryOptions) {
    this.#options = options;
    this.#staticLabels = { ...options.staticLabels };
    checkLabelConflicts(this.#staticLabels, Object.fromEntries((options.commandLabels?.names() ?? []).map((name) => [name, true])));
  }

  /** A fresh snapshot; callers may keep or change it. */
  snapshot(): InventorySnapshot {
    const { facts, version, startedAt, nodeName, commandLabels, services } = this.#options;
    return {
      hostname: facts.hostname,
      nodeName: nodeName ?? facts.hostname,
      addresses: [...facts.addresses],
      os: { ...facts.os },
      kernel: facts.kernel,
      arch: facts.arch,
      cpu: { ...facts.cpu },
      memoryBytes: facts.memoryBytes,
      version,
      // Static labels are spread last: if a conflict slipped past the config check, the operator's literal value wins.
      labels: _sorted({ ...commandLabels?.current(), ...this.#staticLabels }),
      services: [...new Set(services?.() ?? [])].sort(),
      startedAt: startedAt.toISOString(),
    };
  }

  /** Replaces the static labels (a config reload); throws LabelConfigError like the constructor and then changes nothing. */
  setStaticLabels(labels: Readonly<Record<string, string>>): void {
    checkLabelConflicts(labels, Object.fromEntries((this.#options.commandLabels?.names() ?? []).map((name) => [name, true])));
    this.#staticLabels = { ...labels };
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` when a label changes, so a heartbeat can go out early; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    const source = this.#options.commandLabels;
    source?.on('change', listener);
    return () => {
      this.#listeners.delete(listener);
      source?.off('change', listener);
    };
  }
}

function _sorted(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
