/**
 * CPU time of benchmark processes, read from /proc: what a Postern process spends per
 * operation is the figure that matters on a 2-core machine, where every proxy's CPU comes
 * out of the client's and the server's.
 */
import { readdirSync, readFileSync } from 'node:fs';

const USER_HZ = 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, in seconds. */
  cpu: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / USER_HZ };
  } catch {
    return undefined; // gone between readdir and read
  }
}

/** utime + stime of a running process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = procStat(pid);
  if (!stat) throw new Error(`process ${pid} is gone`);
  return stat.cpu;
}

/**
 * CPU seconds the whole machine has spent busy (every state but idle and iowait, all
 * cores): over a run, divided by its operations, what each operation cost everything
 * that ran, the client and server included.
 */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / USER_HZ;
}

export interface DescendantCpu {
  pid: number;
  /** argv joined by spaces. */
  command: string;
  /** utime + stime at the last sample, in seconds. */
  cpu: number;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/**
 * Samples the CPU time of every descendant of `root` (children that come and go, such as
 * an ssh ProxyCommand) every `intervalMs` until stopped; a process's last sample counts,
 * so up to one interval of a short-lived child's time can be missed.
 */
export function sampleDescendantsCpu(root: number, intervalMs = 100): { stop(): DescendantCpu[] } {
  const lastSeen = new Map<number, DescendantCpu>();
  const sample = (): void => {
    const parents = new Map<number, ProcStat>();
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid)) continue;
      const stat = procStat(pid);
      if (stat) parents.set(pid, stat);
    }
    for (const [pid, stat] of parents) {
      for (let ancestor = stat.ppid; ancestor > 1; ancestor = parents.get(ancestor)?.ppid ?? 0) {
        if (ancestor === root) {
          const known = lastSeen.get(pid);
          if (known) known.cpu = stat.cpu;
          else lastSeen.set(pid, { pid, command: commandLine(pid), cpu: stat.cpu });
          break;
        }
      }
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop(): DescendantCpu[] {
      clearInterval(timer);
      sample();
      return [...lastSeen.values()];
    },
  };
}
