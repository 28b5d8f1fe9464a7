import type { ShimCaches, Workload } from './caches.ts';

/**
 * Longer than a watch event takes to arrive, even through the informer's longest relist
 * backoff (30 s + jitter) after API faults; an entry the cache never confirms goes then.
 */
const RECENT_TTL_MS = 120_000;

/**
 * AgentWorkloads this process created that its cache may not show yet: a call right after
 * StartWorkload finds its workload (read-your-writes) without StartWorkload waiting for the
 * watch. An entry goes as soon as the cache shows that name (or its deletion), when the
 * workload is stopped or removed here, or after RECENT_TTL_MS.
 */
export class RecentStarts {
  private readonly entries = new Map<string, { workload: Workload; timer: NodeJS.Timeout }>();

  constructor(
    private readonly caches: ShimCaches,
    private readonly ttlMs = RECENT_TTL_MS,
  ) {
    const forget = (w: Workload): void => this.forget(w.metadata.name);
    caches.workloads.addHandler({ onAdd: forget, onDelete: forget });
  }

  note(workload: Workload): void {
    const name = workload.metadata.name;
    // The watch was faster than the create's answer.
    if (this.caches.workload(name)) return;
    this.forget(name);
    const timer = setTimeout(() => this.entries.delete(name), this.ttlMs);
    timer.unref();
    this.entries.set(name, { workload, timer });
  }

  get(name: string): Workload | undefined {
    return this.entries.get(name)?.workload;
  }

  forget(name: string): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.entries.delete(name);
  }

  /** The recent workloads, for what the cache's indexes cannot answer yet. */
  workloads(): Workload[] {
    return [...this.entries.values()].map((e) => e.workload);
  }

  get size(): number {
    return this.entries.size;
  }
}
