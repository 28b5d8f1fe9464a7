/**
 * The child's side of a benchmark child process (bench/lib/bench-child.ts): it answers the
 * parent over IPC with its request tally, memory (peak included, from the kernel's VmHWM),
 * CPU and event-loop lag, and stops on request.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { LagMonitor } from './stats.ts';

export type ChildRequest =
  | { type: 'counts' }
  | { type: 'memory'; gc?: boolean; resetPeak?: boolean }
  | { type: 'lag' }
  | { type: 'stop' };

export interface ChildCounts {
  type: 'counts';
  requestCounts: Array<[string, number]>;
  byResource: Array<[string, number]>;
}

export interface ChildMemory {
  type: 'memory';
  rss: number;
  /** Peak RSS (VmHWM) since the last resetPeak (or the start). */
  peakRss: number;
  /** Peak RSS over the process's whole life, resets notwithstanding. */
  lifetimePeakRss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** CPU time this process has used since it started (user + system). */
  cpuMs: number;
}

export interface ChildLag {
  type: 'lag';
  /** Event-loop lag since the last read, ms. */
  p99: number;
  max: number;
}

export interface ChildHandlers {
  counts?: () => Partial<Omit<ChildCounts, 'type'>>;
  stop: () => Promise<void>;
}

function vmHwm(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  const kib = Number(line?.replace(/[^0-9]/g, ''));
  return Number.isFinite(kib) && kib > 0 ? kib * 1024 : process.memoryUsage().rss;
}

let lifetimePeak = 0;

/** Resets VmHWM to the current RSS (Linux: clear_refs 5); the lifetime peak is kept. */
function resetPeak(): void {
  lifetimePeak = Math.max(lifetimePeak, vmHwm());
  writeFileSync('/proc/self/clear_refs', '5');
}

export function memory(): ChildMemory {
  const usage = process.memoryUsage();
  const cpu = process.cpuUsage();
  const peakRss = vmHwm();
  return {
    type: 'memory',
    rss: usage.rss,
    peakRss,
    lifetimePeakRss: Math.max(lifetimePeak, peakRss),
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** Answers the parent's requests; `ready` (sent at once unless null) carries `info`. */
export function serveParent(
  handlers: ChildHandlers,
  info: Record<string, unknown> | null = {},
): void {
  const lag = new LagMonitor().start();
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw) => {
    const request = raw as ChildRequest;
    const answer = async (): Promise<unknown> => {
      switch (request.type) {
        case 'counts':
          return { type: 'counts', requestCounts: [], byResource: [], ...handlers.counts?.() };
        case 'memory': {
          if (request.gc) globalThis.gc?.();
          const m = memory();
          if (request.resetPeak) resetPeak();
          return m;
        }
        case 'lag':
          return { type: 'lag', ...lag.read() } satisfies ChildLag;
        case 'stop':
          lag.stop();
          await handlers.stop();
          return { type: 'stopped' };
      }
    };
    answer().then(
      (reply) => process.send?.(reply),
      (err: unknown) => process.send?.({ type: 'error', message: String(err) }),
    );
  });
  if (info) process.send?.({ type: 'ready', ...info });
}
