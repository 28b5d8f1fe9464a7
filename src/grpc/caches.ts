import { InformerGroup } from '../kube/cache.ts';
import type { Informer } from '../kube/informer.ts';
import type { Pod, Pvc, Workload, WorkloadCaches } from '../workload/caches.ts';

export {
  INDEX_CLAIM,
  INDEX_WORKLOAD_ID,
  claimNamesOfPod,
  claimNamesOfWorkload,
  workloadIdOf,
  type Pod,
  type Pvc,
  type Workload,
} from '../workload/caches.ts';

/** The Pod of a workload has the CR's name (status.podName mirrors it). */
export function podNameOf(workload: Workload): string {
  return workload.status?.podName ?? workload.metadata.name;
}

type Kind = 'pods' | 'workloads' | 'pvcs';
type ObjectOf<K extends Kind> = K extends 'pods' ? Pod : K extends 'workloads' ? Workload : Pvc;
type Listener<T> = (obj: T | undefined) => void;

/**
 * What the shim reads of the workload namespace's caches (Pods of workloads, claims and
 * AgentWorkloads, from the process's cache owner), and a way to wait for changes of one object.
 */
export class ShimCaches extends InformerGroup {
  readonly namespace: string;
  readonly pods: Informer<Pod>;
  readonly workloads: Informer<Workload>;
  readonly pvcs: Informer<Pvc>;
  private readonly listeners: { [K in Kind]: Map<string, Set<Listener<ObjectOf<K>>>> } = {
    pods: new Map(),
    workloads: new Map(),
    pvcs: new Map(),
  };

  constructor(caches: WorkloadCaches) {
    super([caches.pods, caches.workloads, caches.pvcs]);
    if (caches.namespace === undefined) throw new Error('the shim serves one workload namespace');
    this.namespace = caches.namespace;
    this.pods = caches.pods;
    this.workloads = caches.workloads;
    this.pvcs = caches.pvcs;
    this.dispatchFrom('pods', this.pods);
    this.dispatchFrom('workloads', this.workloads);
    this.dispatchFrom('pvcs', this.pvcs);
  }

  pod(name: string): Pod | undefined {
    return this.pods.get(this.namespace, name);
  }

  workload(name: string): Workload | undefined {
    return this.workloads.get(this.namespace, name);
  }

  pvc(name: string): Pvc | undefined {
    return this.pvcs.get(this.namespace, name);
  }

  /** Calls `listener` with the object (undefined once deleted) on every change of it. */
  subscribe<K extends Kind>(kind: K, name: string, listener: Listener<ObjectOf<K>>): () => void {
    const map = this.listeners[kind] as Map<string, Set<Listener<ObjectOf<K>>>>;
    let set = map.get(name);
    if (!set) map.set(name, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && map.get(name) === set) map.delete(name);
    };
  }

  /**
   * Resolves true once `check` holds for the cached object (undefined = absent), false
   * when the timeout passes or the signal aborts first.
   */
  waitFor<K extends Kind>(
    kind: K,
    name: string,
    check: (obj: ObjectOf<K> | undefined) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const current = this.current(kind, name);
    if (check(current)) return Promise.resolve(true);
    if (signal?.aborted || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (result: boolean): void => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        resolve(result);
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      const unsubscribe = this.subscribe(kind, name, (obj) => {
        if (check(obj)) finish(true);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private current<K extends Kind>(kind: K, name: string): ObjectOf<K> | undefined {
    const informer = { pods: this.pods, workloads: this.workloads, pvcs: this.pvcs }[kind];
    return informer.get(this.namespace, name) as ObjectOf<K> | undefined;
  }

  private dispatchFrom<K extends Kind>(kind: K, informer: Informer<ObjectOf<K>>): void {
    const notify = (obj: ObjectOf<K>, gone: boolean): void => {
      if (obj.metadata?.namespace !== this.namespace) return;
      const set = (this.listeners[kind] as Map<string, Set<Listener<ObjectOf<K>>>>).get(
        obj.metadata.name ?? '',
      );
      if (!set) return;
      for (const listener of [...set]) listener(gone ? undefined : obj);
    };
    informer.addHandler({
      onAdd: (obj) => notify(obj, false),
      onUpdate: (_old, obj) => notify(obj, false),
      onDelete: (obj) => notify(obj, true),
    });
  }
}
