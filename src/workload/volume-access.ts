import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { AgentWorkload } from '../api/agentworkload.ts';
import { LABELS } from '../api/common.ts';
import type { KubeObject, ResourceClient } from '../kube/client.ts';
import { isAlreadyExists } from '../kube/errors.ts';
import type { Informer } from '../kube/informer.ts';
import { buildPersistentVolumeClaim, claimName, type PodBuildInput } from './pod-builder.ts';

type Pvc = IPersistentVolumeClaim & KubeObject;

/** On a PVC: any workload of the namespace may mount it (an admin's explicit opt-in). */
export const VOLUME_SHARED_LABEL = 'agyn.io/volume-shared';
/** On a PVC: the workload with this id may mount it (the gRPC shim grants its workloads so). */
export function volumeGrantLabel(workloadId: string): string {
  return `agyn.io/grant-${workloadId}`;
}

/** Whether a workload may mount an existing claim. */
export function mayMount(
  pvc: IPersistentVolumeClaim,
  workload: AgentWorkload,
  workloadId: string,
): boolean {
  const labels = pvc.metadata?.labels ?? {};
  return (
    (workloadId !== '' && labels[LABELS.workloadId] === workloadId) ||
    labels[LABELS.workloadName] === workload.metadata.name ||
    (workloadId !== '' && labels[volumeGrantLabel(workloadId)] === 'true') ||
    labels[VOLUME_SHARED_LABEL] === 'true'
  );
}

/** A persistent volume the workload may not mount; `field` names its spec entry. */
export class VolumeAccessError extends Error {
  override readonly name = 'VolumeAccessError';
  constructor(
    readonly claim: string,
    readonly field: string,
  ) {
    super(
      `volume_not_allowed: PersistentVolumeClaim ${JSON.stringify(claim)} belongs to another workload (${field})`,
    );
  }
}

/** The first existing claim of the spec the workload may not mount. */
export function refusedVolume(
  workload: AgentWorkload,
  workloadId: string,
  existing: (claim: string) => IPersistentVolumeClaim | undefined,
): VolumeAccessError | undefined {
  for (const [i, volume] of workload.spec.volumes.entries()) {
    if (volume.kind !== 'Persistent') continue;
    const claim = volume.persistentName ?? volume.name;
    const pvc = existing(claim);
    if (pvc && !mayMount(pvc, workload, workloadId))
      return new VolumeAccessError(claim, `spec.volumes[${i}].persistentName`);
  }
  return undefined;
}

/**
 * Creates the workload's missing claims, labelled with its id. A claim that exists after
 * all (the cache did not show it yet) is used only if the workload may mount it.
 */
export async function ensureClaims(
  input: PodBuildInput,
  cache: Informer<Pvc>,
  client: ResourceClient<Pvc>,
): Promise<void> {
  const aw = input.workload;
  const namespace = aw.metadata.namespace;
  await Promise.all(
    aw.spec.volumes.map(async (volume, i) => {
      if (volume.kind !== 'Persistent' || cache.get(namespace, claimName(volume))) return;
      try {
        // In the cache at once: a reconcile before the watch brings it would POST it again.
        cache.recordWrite(
          await client.create(namespace, buildPersistentVolumeClaim(input, volume) as Pvc),
        );
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        const live = await client.get(namespace, claimName(volume));
        if (!mayMount(live, aw, input.workloadId))
          throw new VolumeAccessError(claimName(volume), `spec.volumes[${i}].persistentName`);
      }
    }),
  );
}
