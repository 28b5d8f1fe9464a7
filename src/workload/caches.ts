import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload } from '../api/agentworkload.ts';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { InformerCache, InformerGroup } from '../kube/cache.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import { PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import { claimKeys, WORKLOAD_ID_CLAIM_INDEX, workloadIdOf } from './identity.ts';

export type Pod = IPod & KubeObject;
export type Pvc = IPersistentVolumeClaim & KubeObject;
export type Secret = ISecret & KubeObject;
export type Workload = AgentWorkload & KubeObject;

/** Workloads by the id the shim knows them by (and uid); Pods and Secrets by their id label. */
export const INDEX_WORKLOAD_ID = 'workloadId';
/** Workloads and Pods by the PersistentVolumeClaims they mount. */
export const INDEX_CLAIM = 'claimName';
/** Secrets and claims by the uid of every owner they name. */
export const INDEX_OWNER_UID = 'ownerUid';

export { workloadIdOf };

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

function workloadIds(w: Workload): string[] {
  const ids = new Set([workloadIdOf(w), w.metadata.uid ?? '']);
  ids.delete('');
  return [...ids];
}

function workloadIdLabel(obj: KubeObject): string[] {
  const id = obj.metadata?.labels?.[LABELS.workloadId];
  return id ? [id] : [];
}

function ownerUids(obj: KubeObject): string[] {
  return (obj.metadata?.ownerReferences ?? []).map((r) => r.uid).filter((uid) => uid !== '');
}

const WORKLOAD_INDEXES = {
  [WORKLOAD_ID_CLAIM_INDEX]: claimKeys,
  [INDEX_WORKLOAD_ID]: workloadIds,
  [INDEX_CLAIM]: claimNamesOfWorkload,
};
const POD_INDEXES = { [INDEX_WORKLOAD_ID]: workloadIdLabel, [INDEX_CLAIM]: claimNamesOfPod };
const PVC_INDEXES = { [INDEX_OWNER_UID]: ownerUids };
const SECRET_INDEXES = { [INDEX_WORKLOAD_ID]: workloadIdLabel, [INDEX_OWNER_UID]: ownerUids };

/**
 * The informers of the workload namespace, declared once in the process's cache owner:
 * AgentWorkloads, the Pods the operator manages, claims, and Secrets made for a workload
 * (labelled with a workload id), each with every index the controllers and the shim use.
 */
export class WorkloadCaches extends InformerGroup {
  readonly workloads: Informer<Workload>;
  readonly pods: Informer<Pod>;
  readonly pvcs: Informer<Pvc>;
  readonly secrets: Informer<Secret>;

  constructor(
    readonly cache: InformerCache,
    readonly namespace: string | undefined,
  ) {
    const workloads = cache.informer<Workload>({
      resource: AGENT_WORKLOADS,
      namespace,
      indexes: WORKLOAD_INDEXES,
    });
    const pods = cache.informer<Pod>({
      resource: PODS,
      namespace,
      labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE}`,
      indexes: POD_INDEXES,
    });
    const pvcs = cache.informer<Pvc>({ resource: PVCS, namespace, indexes: PVC_INDEXES });
    const secrets = cache.informer<Secret>({
      resource: SECRETS,
      namespace,
      labelSelector: LABELS.workloadId,
      indexes: SECRET_INDEXES,
    });
    super([workloads, pods, pvcs, secrets]);
    this.workloads = workloads;
    this.pods = pods;
    this.pvcs = pvcs;
    this.secrets = secrets;
  }

  /** The workload id `aw` may use: unique in its namespace (src/workload/identity.ts). */
  claimedIdOf(aw: AgentWorkload): string {
    return workloadIdOf(aw, (id) => this.workloads.byIndex(WORKLOAD_ID_CLAIM_INDEX, id));
  }
}
