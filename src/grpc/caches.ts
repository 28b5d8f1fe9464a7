import type { Logger } from 'pino';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { AgentWorkload } from '../api/agentworkload.ts';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import { Informer } from '../kube/informer.ts';
import { PODS, PVCS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import { workloadIdOf } from '../workload/identity.ts';

export type Pod = IPod & KubeObject;
export type Pvc = IPersistentVolumeClaim & KubeObject;
export type Workload = AgentWorkload & KubeObject;

export const INDEX_WORKLOAD_ID = 'workloadId';
export const INDEX_CLAIM = 'claimName';

/** The Pod of a workload has the CR's name (status.podName mirrors it). */
export function podNameOf(workload: Workload): string {
  return workload.status?.podName ?? workload.metadata.name;
}

export function claimNamesOfPod(pod: Pod): string[] {
  const names = new Set<string>();
  for (const volume of pod.spec?.volumes ?? []) {
    const claim = volume.persistentVolumeClaim?.claimName;
    if (claim) names.add(claim);
  }
  return [...names];
}

export function claimNamesOfWorkload(workload: Workload): string[] {
  const names = new Set<string>();
  for (const volume of workload.spec.volumes ?? []) {
    if (volume.kind === 'Persistent') names.add(volume.persistentName ?? volume.name);
  }
  return [...names];
}

type Kind = 'pods' | 'workloads' | 'pvcs';
type ObjectOf<K extends Kind> = K extends 'pods' ? Pod : K extends 'workloads' ? Workload : Pvc;
type Listener<T> = (obj: T | undefined) => void;

/**
 * The informer caches the shim reads (Pods of workloads, PersistentVolumeClaims and
 * AgentWorkloads in the workload namespace). They are configured like the workload
 * controller's, so one set can serve both.
 */
export class ShimCaches {
  readonly pods: Informer<Pod>;
  readonly workloads: Informer<Workload>;
  readonly pvcs: Informer<Pvc>;
  private readonly listeners: { [K in Kind]: Map<string, Set<Listener<ObjectOf<K>>>> } = {
    pods: new Map(),
    workloads: new Map(),
    pvcs: new Map(),
  };

  constructor(
    kube: KubeClient,
    readonly namespace: string,
    logger: Logger,
  ) {
    const managed = `${LABELS.managedBy}=${MANAGED_BY_VALUE}`;
    this.pods = new Informer(kube.resource<Pod>(PODS), {
      namespace,
      logger,
      labelSelector: managed,
    });
    this.workloads = new Informer(kube.resource<Workload>(AGENT_WORKLOADS), { namespace, logger });
    this.pvcs = new Informer(kube.resource<Pvc>(PVCS), { namespace, logger });

    this.workloads.addIndex(INDEX_WORKLOAD_ID, (w) => {
      const ids = new Set([workloadIdOf(w), w.metadata.uid ?? '']);
      ids.delete('');
      return [...ids];
    });
    this.pods.addIndex(INDEX_WORKLOAD_ID, (p) => {
      const id = p.metadata?.labels?.[LABELS.workloadId];
      return id ? [id] : [];
    });
    this.pods.addIndex(INDEX_CLAIM, claimNamesOfPod);
    this.workloads.addIndex(INDEX_CLAIM, claimNamesOfWorkload);

    this.dispatchFrom('pods', this.pods);
    this.dispatchFrom('workloads', this.workloads);
    this.dispatchFrom('pvcs', this.pvcs);
  }

  start(): void {
    this.pods.start();
    this.workloads.start();
    this.pvcs.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([
      this.pods.waitForSync(),
      this.workloads.waitForSync(),
      this.pvcs.waitForSync(),
    ]);
  }

  hasSynced(): boolean {
    return this.pods.hasSynced() && this.workloads.hasSynced() && this.pvcs.hasSynced();
  }

  async stop(): Promise<void> {
    await Promise.all([this.pods.stop(), this.workloads.stop(), this.pvcs.stop()]);
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
