/**
 * Figures that change while the agent runs, cheap enough to read on every heartbeat:
 * `node:os` and `/proc` only, never a child process.
 */
import os from 'node:os';
import { readdir } from 'node:fs/promises';

export interface HostStats {
  /** 1, 5 and 15 minute load averages. */
  loadAverage: [number, number, number];
  memoryTotalBytes: number;
  /** What the kernel could hand out now (libuv reads MemAvailable from /proc/meminfo on Linux). */
  memoryAvailableBytes: number;
  uptimeSeconds: number;
  process: {
    rssBytes: number;
    heapUsedBytes: number;
    /** CPU time since the process started, in microseconds. */
    cpuUserMicros: number;
    cpuSystemMicros: number;
    uptimeSeconds: number;
    /** Open file descriptors, from /proc/self/fd; absent where /proc is not mounted. */
    openFiles?: number;
  };
}

/** Reads the host's and this process's current figures without starting any process. */
export async function readHostStats(options: { procRoot?: string } = {}): Promise<HostStats> {
  const [one = 0, five = 0, fifteen = 0] = os.loadavg();
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  const openFiles = await _countOpenFiles(options.procRoot ?? '/proc');
  return {
    loadAverage: [one, five, fifteen],
    memoryTotalBytes: os.totalmem(),
    memoryAvailableBytes: os.freemem(),
    uptimeSeconds: Math.floor(os.uptime()),
    process: {
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      cpuUserMicros: cpu.user,
      cpuSystemMicros: cpu.system,
      uptimeSeconds: Math.floor(process.uptime()),
      ...(openFiles === undefined ? {} : { openFiles }),
    },
  };
}

async function _countOpenFiles(procRoot: string): Promise<number | undefined> {
  try {
    // The listing itself holds one descriptor open while it runs; do not count it.
    return Math.max(0, (await readdir(`${procRoot}/self/fd`)).length - 1);
  } catch {
    return undefined;
  }
}
