import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';

/** Nearest-rank percentile of unsorted samples (p in 0..100); NaN when empty. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Percentiles of a large Float64Array without copying into a JS array. */
export function percentilesOf(samples: Float64Array, ps: number[]): number[] {
  const sorted = Float64Array.from(samples).sort();
  return ps.map((p) => {
    if (sorted.length === 0) return Number.NaN;
    const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
    return sorted[rank - 1] ?? Number.NaN;
  });
}

/** The middle value; of an even count, the mean of the middle two; NaN when empty. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function mean(samples: number[]): number {
  return samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0) / samples.length;
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  const mx = mean(xs.slice(0, n));
  const my = mean(ys.slice(0, n));
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] ?? 0) - mx) * ((ys[i] ?? 0) - my);
    den += ((xs[i] ?? 0) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export const MiB = 1024 * 1024;

export function mib(bytes: number, digits = 1): string {
  return (bytes / MiB).toFixed(digits);
}

export function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function seconds(ms: number, digits = 2): string {
  return Number.isFinite(ms) ? (ms / 1000).toFixed(digits) : 'n/a';
}

export function nowMs(): number {
  return performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
}

export function gcAvailable(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** Samples this process's RSS and heap at a fixed interval; tracks the peak. */
export class MemorySampler {
  peakRss = 0;
  peakHeapUsed = 0;
  samples = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly intervalMs = 200) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): NodeJS.MemoryUsage {
    const m = process.memoryUsage();
    this.samples++;
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.heapUsed > this.peakHeapUsed) this.peakHeapUsed = m.heapUsed;
    return m;
  }

  reset(): void {
    this.peakRss = 0;
    this.peakHeapUsed = 0;
    this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Event-loop delay (lag) of this process, in ms. The histogram records the time between its
 * timer's ticks, so the sampling interval is subtracted to leave the delay.
 */
export class LagMonitor {
  private static readonly RESOLUTION_MS = 10;
  private readonly histogram: ELDHistogram = monitorEventLoopDelay({
    resolution: LagMonitor.RESOLUTION_MS,
  });

  start(): this {
    this.histogram.enable();
    return this;
  }

  /** p50/p99/max since the last read, then resets. */
  read(): { p50: number; p99: number; max: number } {
    const h = this.histogram;
    const lag = (ns: number): number =>
      h.count > 0 ? Math.max(0, ns / 1e6 - LagMonitor.RESOLUTION_MS) : 0;
    const out = { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max) };
    h.reset();
    return out;
  }

  stop(): void {
    this.histogram.disable();
  }
}
