import { AGENT_WORKLOADS } from '../api/resources.ts';
import { PODS } from '../kube/resources.ts';
import { workloadIdOf } from '../workload/identity.ts';
import { INDEX_WORKLOAD_ID, podNameOf, type Pod, type Workload } from './caches.ts';
import { invalidArgument, resourceNotFound } from './errors.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { podNameFor } from './translate-start.ts';

export function requireWorkloadId(raw: string): string {
  const id = raw.trim();
  if (id === '') throw invalidArgument('workload_id_required');
  return id;
}

/**
 * The AgentWorkload a workload id names: `workload-<id>` (as the shim names them), else
 * one whose workload id (spec, status or uid) is `id`.
 */
export function findWorkload(shim: ShimContext, id: string): Workload | undefined {
  // Only a workload whose id is `id` (as recorded by the controller once it has checked it is
  // unique); one the controller verified wins over one it has not seen yet.
  const byName = shim.caches.workload(podNameFor(id));
  const matches = [byName, ...shim.caches.workloads.byIndex(INDEX_WORKLOAD_ID, id)].filter(
    (w): w is Workload => w !== undefined && workloadIdOf(w) === id,
  );
  return matches.find((w) => w.status?.workloadId === id) ?? matches[0];
}

export function podOf(shim: ShimContext, workload: Workload): Pod | undefined {
  return shim.caches.pod(podNameOf(workload));
}

/**
 * Stopped or removed, its Pod already gone: the workload no longer exists for the
 * contract, even while its finalizer still runs.
 */
function isGone(shim: ShimContext, workload: Workload): boolean {
  return workload.metadata.deletionTimestamp !== undefined && !podOf(shim, workload);
}

/** The call's context: its signal is made when first read, so the cache-hit path never reads it. */
export type Cancellable = Pick<CallContext, 'signal'>;

/**
 * The workload a call names, from the caches. A miss, or a workload the caches show gone, is
 * confirmed with the API server before it is NOT_FOUND: another replica may have created the
 * workload (again, under the same id) a moment ago, and this replica's watch not have
 * brought it yet.
 */
export async function resolveWorkload(
  shim: ShimContext,
  rawId: string,
  ctx: Cancellable,
): Promise<Workload> {
  const id = requireWorkloadId(rawId);
  const cached = findWorkload(shim, id) ?? shim.recent?.get(podNameFor(id));
  if (cached && !isGone(shim, cached)) return cached;
  const live = await shim.kube
    .resource<Workload>(AGENT_WORKLOADS)
    .find(shim.namespace, podNameFor(id), ctx.signal);
  if (!live || live.metadata.deletionTimestamp || workloadIdOf(live) !== id)
    throw resourceNotFound('agentworkloads.agyn.io', podNameFor(id));
  return live;
}

/** The Pod of a workload the contract still knows (NOT_FOUND for either, as upstream). */
export async function resolvePod(
  shim: ShimContext,
  rawId: string,
  ctx: Cancellable,
): Promise<{ podName: string; pod: Pod }> {
  const podName = podNameOf(await resolveWorkload(shim, rawId, ctx));
  const pod =
    shim.caches.pod(podName) ??
    (await shim.kube.resource<Pod>(PODS).find(shim.namespace, podName, ctx.signal));
  if (!pod) throw resourceNotFound('pods', podName);
  return { podName, pod };
}
