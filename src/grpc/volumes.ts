import { status } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { isNotFound } from '../kube/errors.ts';
import { PVCS } from '../kube/resources.ts';
import type {
  ListVolumesResponse,
  ListWorkloadsByVolumeRequest,
  ListWorkloadsByVolumeResponse,
  RemoveVolumeRequest,
  RemoveVolumeResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { workloadIdOf } from '../workload/identity.ts';
import { INDEX_CLAIM, type Pvc } from './caches.ts';
import { RpcError, invalidArgument } from './errors.ts';
import type { ShimContext } from './rpc.ts';

const VOLUME_KEY_LABEL = 'volume_key';

function requireVolumeName(raw: string): string {
  const name = raw.trim();
  if (name === '') throw invalidArgument('volume_name_required');
  return name;
}

/** Managed PVCs that carry a volume_key label. */
export function listVolumes(shim: ShimContext): Promise<ListVolumesResponse> {
  const volumes = [];
  for (const pvc of shim.caches.pvcs.list()) {
    const labels = pvc.metadata?.labels;
    const key = labels?.[VOLUME_KEY_LABEL];
    if (labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE || key === undefined || !pvc.metadata?.name)
      continue;
    volumes.push({ instanceId: pvc.metadata.name, volumeKey: key });
  }
  return Promise.resolve({ volumes });
}

/** Workloads whose Pod mounts the PVC, plus workloads meant to run that declare it. */
export function listWorkloadsByVolume(
  shim: ShimContext,
  req: ListWorkloadsByVolumeRequest,
): Promise<ListWorkloadsByVolumeResponse> {
  const claim = requireVolumeName(req.volumeName);
  const ids = new Set<string>();
  for (const pod of shim.caches.pods.byIndex(INDEX_CLAIM, claim)) {
    const id = pod.metadata?.labels?.[LABELS.workloadId];
    if (id) ids.add(id);
  }
  for (const workload of shim.caches.workloads.byIndex(INDEX_CLAIM, claim)) {
    if (!workload.spec.stopped && !workload.metadata.deletionTimestamp)
      ids.add(workloadIdOf(workload));
  }
  return Promise.resolve({ targetIds: [...ids] });
}

/**
 * Idempotent: a missing or terminating PVC is OK. A PVC a workload Pod mounts is refused
 * with FAILED_PRECONDITION unless `force`.
 */
export async function removeVolume(
  shim: ShimContext,
  req: RemoveVolumeRequest,
): Promise<RemoveVolumeResponse> {
  const name = requireVolumeName(req.volumeName);
  const cached = shim.caches.pvc(name);
  if (cached?.metadata?.deletionTimestamp) return {};
  if (!req.force) {
    const users = shim.caches.pods
      .byIndex(INDEX_CLAIM, name)
      .map((p) => p.metadata?.labels?.[LABELS.workloadId] ?? p.metadata?.name ?? '');
    if (users.length > 0) {
      throw new RpcError(
        status.FAILED_PRECONDITION,
        `volume_in_use: ${name} is mounted by workload ${users.join(', ')}`,
      );
    }
  }
  try {
    await shim.kube.resource<Pvc>(PVCS).delete(shim.namespace, name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return {};
}
