/**
 * Facts about the host that do not change while the agent runs, collected once at start.
 *
 * `systeminformation` is asked only for what `node:os` cannot tell: the distribution
 * (osInfo) and the CPU's make and physical cores (cpu). Its calls cost 50–550 ms and
 * spawn processes, so the two run in parallel under one deadline; a call that fails or
 * misses the deadline is replaced by values from `node:os` and `/etc/os-release`, and
 * its name is listed in `fallbacks`. Hostname, kernel, architecture, memory and
 * addresses come from `node:os` directly: the same values, no child processes.
 */
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../cluster/common/logger.ts';

export interface HostFacts {
  hostname: string;
  os: { platform: string; distro: string; release: string; codename: string };
  kernel: string;
  arch: string;
  cpu: { model: string; cores: number; physicalCores: number };
  memoryBytes: number;
  /** Addresses of external interfaces: no loopback or internal ones, no link-local ones. */
  addresses: string[];
  /** Probes whose values came from node:os because systeminformation failed or was slow. */
  fallbacks: Array<'os' | 'cpu'>;
}

export type OsProbeResult = Pick<HostFacts['os'], 'distro' | 'release' | 'codename'>;
export type CpuProbeResult = Pick<HostFacts['cpu'], 'model' | 'physicalCores'>;

/** Where the slow facts come from; tests substitute one that fails or hangs. */
export interface HostProbe {
  os(): Promise<OsProbeResult>;
  cpu(): Promise<CpuProbeResult>;
}

export interface CollectHostFactsOptions {
  /** How long to wait for systeminformation before using fallbacks. Default 2 s. */
  timeoutMs?: number;
  logger?: Logger;
  probe?: HostProbe;
}

/** Collects the host's facts, falling back to node:os for any probe that fails or misses the deadline. */
export async function collectHostFacts(options: CollectHostFactsOptions = {}): Promise<HostFacts> {
  const probe = options.probe ?? systeminformationProbe;
  const deadline = _deadline(options.timeoutMs ?? 2000);
  const fallbacks: HostFacts['fallbacks'] = [];
  const attempt = async <T>(name: 'os' | 'cpu', run: () => Promise<T>, fallback: () => Promise<T> | T): Promise<T> => {
    try {
      return await Promise.race([run(), deadline.promise]);
    } catch (error) {
      fallbacks.push(name);
      options.logger?.warn({ probe: name, err: error }, 'host facts: systeminformation failed; using node:os values');
      return fallback();
    }
  };
  try {
    const [osFacts, cpuFacts] = await Promise.all([attempt('os', () => probe.os(), _osFallback), attempt('cpu', () => probe.cpu(), _cpuFallback)]);
    return {
      hostname: os.hostname(),
      os: { platform: os.platform(), ...osFacts },
      kernel: os.release(),
      arch: os.arch(),
      cpu: { ...cpuFacts, cores: os.availableParallelism() },
      memoryBytes: os.totalmem(),
      addresses: hostAddresses(),
      fallbacks: fallbacks.sort(),
    };
  } finally {
    deadline.cancel();
  }
}

/** The host's external addresses: not internal (loopback), not link-local, IPv4 first. */
export function hostAddresses(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  const all = Object.values(interfaces).flatMap((list) => list ?? []);
  const external = all.filter((info) => !info.internal && !_isLinkLocal(info.address));
  const v4 = external.filter((info) => info.family === 'IPv4').map((info) => info.address);
  const v6 = external.filter((info) => info.family === 'IPv6').map((info) => info.address);
  return [...new Set([...v4, ...v6])];
}

/** The default probe: systeminformation, loaded on first use (it is large and only needed once). */
export const systeminformationProbe: HostProbe = {
  async os() {
    const si = (await import('systeminformation')).default;
    const info = await si.osInfo();
    return { distro: info.distro, release: info.release, codename: info.codename };
  },
  async cpu() {
    const si = (await import('systeminformation')).default;
    const info = await si.cpu();
    const model = [info.manufacturer, info.brand].filter(Boolean).join(' ');
    return { model: model || _cpuModel(), physicalCores: info.physicalCores || os.availableParallelism() };
  },
};

async function _osFallback(): Promise<OsProbeResult> {
  try {
    return parseOsRelease(await readFile('/etc/os-release', 'utf8'));
  } catch {
    return { distro: os.type(), release: '', codename: '' };
  }
}

function _cpuFallback(): CpuProbeResult {
  return { model: _cpuModel(), physicalCores: os.availableParallelism() };
}

function _cpuModel(): string {
  return os.cpus()[0]?.model.trim() || 'unknown';
}

/** Reads NAME, VERSION_ID and VERSION_CODENAME from os-release(5) text. */
export function parseOsRelease(text: string): OsProbeResult {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) fields.set(match[1]!, match[2]!.replace(/^(["'])(.*)\1$/, '$2'));
  }
  return { distro: fields.get('NAME') ?? os.type(), release: fields.get('VERSION_ID') ?? '', codename: fields.get('VERSION_CODENAME') ?? '' };
}

function _isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address) || address.startsWith('169.254.');
}

function _deadline(ms: number): { promise: Promise<never>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  promise.catch(() => {}); // a deadline nobody raced against must not be an unhandled rejection
  return { promise, cancel: () => clearTimeout(timer) };
}
