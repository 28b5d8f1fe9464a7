import type { KubeObject } from './client.ts';

interface Entry<W> {
  /** resourceVersions of the object that this process's own writes replaced (the last few). */
  superseded: string[];
  /** The resourceVersion the latest write produced. */
  produced?: string;
  wrote: Partial<W>;
}

/**
 * Read-your-writes for a controller that reads from an informer: what it wrote to an
 * object that its cache may not show yet. A reconcile that reads one of the versions its
 * writes superseded (a watch event still on its way) uses what was written instead, and
 * does not write it all again. `W` is what writes record (e.g. { status, finalizer }).
 */
export class WrittenAhead<W extends object> {
  private readonly entries = new Map<string, Entry<W>>();

  /** What was written ahead of `obj` if the cache still shows a version those writes superseded. */
  of(key: string, obj: KubeObject): Partial<W> | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.superseded.includes(obj.metadata?.resourceVersion ?? '')) return entry.wrote;
    // The cache has caught up (or the object changed otherwise): it is the truth again.
    this.entries.delete(key);
    return undefined;
  }

  /** `from`: the version the write was based on; `result`: the version it produced. */
  note(key: string, from: KubeObject, result: KubeObject, wrote: Partial<W>): void {
    const entry: Entry<W> = this.entries.get(key) ?? { superseded: [], wrote: {} };
    // Every version before the newest one this process produced is out of date.
    const outdated = [from.metadata?.resourceVersion, entry.produced].filter(
      (v): v is string => v !== undefined && v !== result.metadata?.resourceVersion,
    );
    entry.superseded = [...new Set([...entry.superseded, ...outdated])].slice(-8);
    entry.produced = result.metadata?.resourceVersion;
    Object.assign(entry.wrote, wrote);
    this.entries.set(key, entry);
  }

  /** The resourceVersion this process's latest write to the object produced, while remembered. */
  produced(key: string): string | undefined {
    return this.entries.get(key)?.produced;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
