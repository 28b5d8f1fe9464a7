/**
 * CPU seconds of the dedicated cluster's processes (their pid files in the state dir) and of
 * the whole machine, read from /proc, so that a benchmark phase can say where the machine's
 * cores went: on this 2-core machine every component shares them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PhaseCpu } from './workload-options.ts';

/** Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface CpuSnapshot {
  at: number;
  /** CPU seconds so far, by cluster component (etcd, kube-apiserver, …). */
  components: Record<string, number>;
  /** Busy and total CPU time of the machine, all cores, in /proc's ticks. */
  machineBusyTicks: number;
  machineTotalTicks: number;
}

export interface CpuUse {
  seconds: number;
  components: Record<string, number>;
  /** Share of the machine's cores busy over the window (1.0: every core, all the time). */
  machineBusyShare: number;
  cores: number;
}

function processCpuSeconds(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function componentCpu(stateDir: string): Record<string, number> {
  const pidDir = path.join(stateDir, 'pids');
  const out: Record<string, number> = {};
  let files: string[];
  try {
    files = readdirSync(pidDir).filter((f) => f.endsWith('.pid'));
  } catch {
    return out;
  }
  for (const file of files) {
    const pid = Number(readFileSync(path.join(pidDir, file), 'utf8').trim());
    const seconds = processCpuSeconds(pid);
    if (seconds !== undefined) out[file.slice(0, -'.pid'.length)] = seconds;
  }
  return out;
}

function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  // idle and iowait
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

export function cpuSnapshot(stateDir: string | undefined): CpuSnapshot {
  const machine = machineCpu();
  return {
    at: Date.now(),
    components: stateDir ? componentCpu(stateDir) : {},
    machineBusyTicks: machine.busy,
    machineTotalTicks: machine.total,
  };
}

export function cpuSince(start: CpuSnapshot, end: CpuSnapshot): CpuUse {
  const components: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(end.components)) {
    const before = start.components[name];
    if (before !== undefined) components[name] = seconds - before;
  }
  const total = end.machineTotalTicks - start.machineTotalTicks;
  return {
    seconds: (end.at - start.at) / 1000,
    components,
    machineBusyShare:
      total > 0 ? (end.machineBusyTicks - start.machineBusyTicks) / total : Number.NaN,
    cores: os.cpus().length,
  };
}

/** The CPU a phase uses: the cluster's components, the machine, this process (and a controller's). */
export class PhaseCpuMeter {
  private readonly start: CpuSnapshot;
  private readonly self = process.cpuUsage();

  constructor(private readonly stateDir: string | undefined) {
    this.start = cpuSnapshot(stateDir);
  }

  read(controllerSeconds?: number): PhaseCpu {
    const self = process.cpuUsage(this.self);
    return {
      ...cpuSince(this.start, cpuSnapshot(this.stateDir)),
      loadGenerator: (self.user + self.system) / 1e6,
      ...(controllerSeconds === undefined ? {} : { controller: controllerSeconds }),
    };
  }
}
