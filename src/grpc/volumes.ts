import { status } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { isNotFound } from '../kube/errors.ts';
import { PODS, PVCS } from '../kube/resources.ts';
import type {
  ListVolumesResponse,
  ListWorkloadsByVolumeRequest,
  ListWorkloadsByVolumeResponse,
  RemoveVolumeRequest,
  RemoveVolumeResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { workloadIdOf } from '../workload/identity.ts';
import { INDEX_CLAIM, claimNamesOfPod, type Pod, type Pvc } from './caches.ts';
import { RpcError, invalidArgument } from './errors.ts';
import type { Cancellable } from './resolve.ts';
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
 * The workloads whose Pods mount the claim: those the cache shows, each confirmed with the
 * API server (another replica may have deleted it a moment ago, and this one's watch not
 * have brought the deletion yet). Only a refusal costs the reads.
 */
async function claimUsers(shim: ShimContext, claim: string, ctx: Cancellable): Promise<string[]> {
  const cached = shim.caches.pods.byIndex(INDEX_CLAIM, claim);
  if (cached.length === 0) return [];
  const pods = shim.kube.resource<Pod>(PODS);
  const live = await Promise.all(
    cached.map((p) => pods.find(shim.namespace, p.metadata?.name ?? '', ctx.signal)),
  );
  return live
    .filter((p): p is Pod => p !== undefined && claimNamesOfPod(p).includes(claim))
    .map((p) => p.metadata?.labels?.[LABELS.workloadId] ?? p.metadata?.name ?? '');
}

/**
 * Idempotent: a missing or terminating PVC is OK. A PVC a workload Pod mounts is refused
 * with FAILED_PRECONDITION unless `force`.
 */
export async function removeVolume(
  shim: ShimContext,
  req: RemoveVolumeRequest,
  ctx: Cancellable,
): Promise<RemoveVolumeResponse> {
  const name = requireVolumeName(req.volumeName);
  const cached = shim.caches.pvc(name);
  if (cached?.metadata?.deletionTimestamp) return {};
  if (!req.force) {
    const users = await claimUsers(shim, name, ctx);
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
