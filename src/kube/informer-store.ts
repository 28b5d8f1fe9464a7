import type { KubeObject } from './client.ts';
import { IndexedStore } from './indexed-store.ts';

/** One change of an informer's store, as its handlers hear of it. */
export type StoreChange<T> =
  { type: 'add'; obj: T } | { type: 'update'; old: T; obj: T } | { type: 'delete'; obj: T };

const UNSIGNED_INTEGER = /^(0|[1-9][0-9]*)$/;

/**
 * Orders two resourceVersions as client-go does where it has to (its MutationCache's
 * comparator, apimachinery's CompareResourceVersion): as unsigned integers, compared by
 * length and then digit by digit (no precision is lost). Undefined when either is not one:
 * resourceVersions are opaque, and an unknown format orders nothing.
 */
export function compareResourceVersions(
  a: string | undefined,
  b: string | undefined,
): -1 | 0 | 1 | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (!UNSIGNED_INTEGER.test(a) || !UNSIGNED_INTEGER.test(b)) return undefined;
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

const versionOf = (obj: KubeObject | undefined): string | undefined =>
  obj?.metadata?.resourceVersion;

/**
 * An informer's store: the objects its list and watch brought, and the ones this process
 * wrote itself before the watch brought them (client-go's MutationCache, kept in the store).
 * A written object stays until the watch or a list shows that version or a later one; an
 * event or a list older than it leaves it in place; a deletion removes it.
 */
export class InformerStore<T extends KubeObject> extends IndexedStore<T> {
  /** Keys whose object is one this process wrote and nothing has confirmed yet: its version. */
  private readonly written = new Map<string, string>();

  /**
   * Takes `obj` (the API server's answer to a write) if it is newer than the stored object
   * of the same uid, or nothing is stored; otherwise it changes nothing. Versions that
   * cannot be compared are not taken.
   */
  write(key: string, obj: T): StoreChange<T> | undefined {
    const version = versionOf(obj);
    if (version === undefined) return undefined;
    const old = this.get(key);
    if (old) {
      // An earlier object of that name is still cached: its deletion comes first, by watch.
      if (old.metadata?.uid !== obj.metadata?.uid) return undefined;
      if (compareResourceVersions(version, versionOf(old)) !== 1) return undefined;
    }
    this.set(key, obj);
    this.written.set(key, version);
    return old ? { type: 'update', old, obj } : { type: 'add', obj };
  }

  /** A watch event; the change it makes (none when it only confirms a write, or is older than it). */
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', key: string, obj: T): StoreChange<T> | undefined {
    const written = this.written.get(key);
    if (type === 'DELETED') {
      this.written.delete(key);
      this.delete(key);
      return { type: 'delete', obj };
    }
    // An event from before this process's write (it was on its way): the write stays.
    if (written !== undefined && compareResourceVersions(versionOf(obj), written) === -1)
      return undefined;
    this.written.delete(key);
    const old = this.get(key);
    this.set(key, obj);
    if (!old) return { type: 'add', obj };
    if (versionOf(old) !== versionOf(obj)) return { type: 'update', old, obj };
    return undefined;
  }

  /**
   * Replaces everything with a list's objects (`listVersion`: the list's resourceVersion).
   * A write newer than the list stays as it is.
   */
  replace(fresh: Map<string, T>, listVersion: string | undefined): StoreChange<T>[] {
    for (const [key, version] of this.written) {
      const obj = this.get(key);
      if (obj && compareResourceVersions(listVersion, version) === -1) fresh.set(key, obj);
      else this.written.delete(key);
    }
    const changes: StoreChange<T>[] = [];
    for (const [key, old] of this.entries()) {
      if (!fresh.has(key)) {
        this.delete(key);
        changes.push({ type: 'delete', obj: old });
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.get(key);
      this.set(key, obj);
      if (!old) changes.push({ type: 'add', obj });
      else if (versionOf(old) !== versionOf(obj)) changes.push({ type: 'update', old, obj });
    }
    return changes;
  }
}
