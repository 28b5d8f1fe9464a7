/** Samples a benchmark child's memory at an interval and keeps the highest of each figure. */
import type { BenchChild } from './bench-child.ts';
import type { ChildMemory } from './child-ipc.ts';

export interface MemoryMax {
  samples: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export function emptyMax(): MemoryMax {
  return { samples: 0, rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
}

/** The per-figure maximum of `max` and the sample `m`. */
export function foldMax(max: MemoryMax, m: ChildMemory): MemoryMax {
  return {
    samples: max.samples + 1,
    rss: Math.max(max.rss, m.rss),
    heapTotal: Math.max(max.heapTotal, m.heapTotal),
    heapUsed: Math.max(max.heapUsed, m.heapUsed),
    external: Math.max(max.external, m.external),
    arrayBuffers: Math.max(max.arrayBuffers, m.arrayBuffers),
  };
}

export class MemoryPoller {
  max = emptyMax();
  private timer?: NodeJS.Timeout;
  private busy = false;

  constructor(
    private readonly child: BenchChild,
    private readonly intervalMs = 250,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.child
        .memory()
        .then((m) => (this.max = foldMax(this.max, m)))
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): MemoryMax {
    clearInterval(this.timer);
    return this.max;
  }
}
