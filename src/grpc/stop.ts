import { status } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { KubeApiError, isConflict, isNotFound } from '../kube/errors.ts';
import { PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import { inlineFilesSecretName, pullSecretName } from '../workload/pod-builder.ts';
import type {
  RemoveWorkloadRequest,
  RemoveWorkloadResponse,
  StopWorkloadRequest,
  StopWorkloadResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import {
  INDEX_CLAIM,
  claimNamesOfWorkload,
  podNameOf,
  type Pod,
  type Pvc,
  type Workload,
} from './caches.ts';
import { workloadIdOf } from '../workload/identity.ts';
import { RpcError, mapKubeError } from './errors.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { resolveWorkload } from './resolve.ts';
import { remainingMs } from './workloads.ts';

/** StopWorkload without timeout_sec waits up to the Pod default grace period and a margin. */
const DEFAULT_STOP_WAIT_SEC = 30;
const STOP_WAIT_MARGIN_MS = 5_000;
/** RemoveWorkload waits this long at most for the caches to show its deletes. */
const REMOVE_WAIT_MS = 10_000;

async function ignoreMissing(promise: Promise<unknown>): Promise<void> {
  try {
    await promise;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Deletes the workload's Pod with `graceSeconds` before anything else can: the kubelet
 * keeps the grace of the first delete it sees, and a later, shorter one only changes the
 * API object. So this runs before the AgentWorkload is deleted (its finalizer, and the
 * garbage collector after it, delete the Pod with the Pod's default grace).
 */
async function deletePodFirst(
  shim: ShimContext,
  workload: Workload,
  graceSeconds: number,
): Promise<void> {
  const podName = podNameOf(workload);
  const cached = shim.caches.pod(podName);
  if (cached?.metadata?.deletionTimestamp && cached.metadata.deletionGracePeriodSeconds === 0)
    return;
  try {
    // Not in the cache yet (just created) is no reason to skip it: the name is the workload's.
    await shim.kube.resource<Pod>(PODS).delete(shim.namespace, podName, {
      gracePeriodSeconds: graceSeconds,
      preconditions: cached?.metadata?.uid ? { uid: cached.metadata.uid } : undefined,
    });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}

/** Deletes the AgentWorkload; its finalizer deletes the Pod and the Secrets and keeps PVCs. */
async function deleteWorkload(shim: ShimContext, workload: Workload): Promise<void> {
  shim.recent?.forget(workload.metadata.name);
  if (workload.metadata.deletionTimestamp) return;
  try {
    await shim.kube
      .resource<Workload>(AGENT_WORKLOADS)
      .delete(shim.namespace, workload.metadata.name, {
        propagationPolicy: 'Background',
        preconditions: { uid: workload.metadata.uid },
      });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}

/**
 * Waits, within the call's deadline, until the caches the other RPCs answer from show
 * what this call did: the Pod gone, and the AgentWorkload gone (or, unless
 * `workloadGone`, terminating). A wait that runs out is logged; the deletes were sent.
 */
async function waitForCaches(
  shim: ShimContext,
  workload: Workload,
  ctx: CallContext,
  wait: { wantedMs: number; podGone: boolean; workloadGone: boolean },
): Promise<void> {
  const until = Date.now() + remainingMs(ctx, wait.wantedMs);
  const podName = podNameOf(workload);
  const { uid } = workload.metadata;
  const podGone =
    !wait.podGone ||
    (await shim.caches.waitFor(
      'pods',
      podName,
      (p) => p === undefined,
      until - Date.now(),
      ctx.signal,
    ));
  const workloadLeft = (w: Workload | undefined): boolean =>
    w === undefined ||
    w.metadata.uid !== uid ||
    (!wait.workloadGone && w.metadata.deletionTimestamp !== undefined);
  const done =
    podGone &&
    (await shim.caches.waitFor(
      'workloads',
      workload.metadata.name,
      workloadLeft,
      until - Date.now(),
      ctx.signal,
    ));
  if (!done && !ctx.signal.aborted) {
    ctx.logger.warn(
      { pod: podName },
      'the caches still showed the workload when the call returned',
    );
  }
}

/**
 * Stop is deletion, as upstream: the Pod goes (with `timeout_sec` as its grace when > 0)
 * with the AgentWorkload and its Secrets; PVCs stay. Returns once the Pod and the
 * AgentWorkload have left the cache (or the wait ran out), so that InspectWorkload then
 * answers NOT_FOUND and a StartWorkload with the same id starts a new workload.
 */
export async function stopWorkload(
  shim: ShimContext,
  req: StopWorkloadRequest,
  ctx: CallContext,
): Promise<StopWorkloadResponse> {
  const workload = await resolveWorkload(shim, req.workloadId, ctx);
  if (req.timeoutSec > 0) await deletePodFirst(shim, workload, req.timeoutSec);
  await deleteWorkload(shim, workload);
  const waitSec = req.timeoutSec > 0 ? req.timeoutSec : DEFAULT_STOP_WAIT_SEC;
  const wantedMs = waitSec * 1000 + STOP_WAIT_MARGIN_MS;
  await waitForCaches(shim, workload, ctx, { wantedMs, podGone: true, workloadGone: true });
  return {};
}

export async function removeWorkload(
  shim: ShimContext,
  req: RemoveWorkloadRequest,
  ctx: CallContext,
): Promise<RemoveWorkloadResponse> {
  const workload = await resolveWorkload(shim, req.workloadId, ctx);
  const podName = podNameOf(workload);
  const claims = claimNamesOfWorkload(workload);

  if (req.force) await deletePodFirst(shim, workload, 0);
  await deleteWorkload(shim, workload);
  // Owned Secrets go with the CR; these two may not be adopted yet when Remove follows Start closely.
  const ownSecrets = [pullSecretName(podName), inlineFilesSecretName(podName)].filter(
    (s) =>
      s === workload.spec.imagePullSecretRef?.name ||
      s === workload.spec.inlineFiles?.secretRef.name,
  );
  for (const secret of ownSecrets) {
    try {
      await shim.kube.resource(SECRETS).delete(shim.namespace, secret);
    } catch (err) {
      if (!isNotFound(err)) ctx.logger.warn({ err, secret }, 'could not delete a workload Secret');
    }
  }
  // Without force the Pod terminates with its grace and is listed meanwhile, as upstream.
  await waitForCaches(shim, workload, ctx, {
    wantedMs: REMOVE_WAIT_MS,
    podGone: req.force,
    workloadGone: false,
  });

  if (req.removeVolumes) {
    const id = workloadIdOf(workload);
    for (const claim of claims) {
      const skip = volumeRemovalBlocker(shim, claim, id);
      if (skip) {
        ctx.logger.info({ pvc: claim, reason: skip }, 'kept a volume of a removed workload');
        continue;
      }
      try {
        await ignoreMissing(shim.kube.resource<Pvc>(PVCS).delete(shim.namespace, claim));
      } catch (err) {
        const detail = err instanceof KubeApiError ? mapKubeError(err).message : String(err);
        throw new RpcError(status.INTERNAL, `pvc_cleanup_failed: ${claim}: ${detail}`);
      }
    }
  }
  return {};
}

/**
 * Why a PVC of a removed workload is kept: unlike upstream, volumes the operator did not
 * create, and volumes another workload still uses, are never deleted.
 */
function volumeRemovalBlocker(
  shim: ShimContext,
  claim: string,
  workloadId: string,
): string | undefined {
  const pvc = shim.caches.pvc(claim);
  if (pvc && pvc.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE)
    return 'not created by the operator';
  const otherPod = shim.caches.pods
    .byIndex(INDEX_CLAIM, claim)
    .find(
      (p) =>
        p.metadata?.labels?.[LABELS.workloadId] !== workloadId && !p.metadata?.deletionTimestamp,
    );
  if (otherPod) return `mounted by Pod ${otherPod.metadata?.name}`;
  const otherWorkload = shim.caches.workloads
    .byIndex(INDEX_CLAIM, claim)
    .find(
      (w) => workloadIdOf(w) !== workloadId && !w.spec.stopped && !w.metadata.deletionTimestamp,
    );
  if (otherWorkload) return `used by AgentWorkload ${otherWorkload.metadata.name}`;
  return undefined;
}
