import { isNotFound } from '../kube/errors.ts';
import { PVCS } from '../kube/resources.ts';
import { claimName } from '../workload/pod-builder.ts';
import { mayMount, volumeGrantLabel } from '../workload/volume-access.ts';
import { INDEX_CLAIM, type Pvc } from './caches.ts';
import type { ShimContext } from './rpc.ts';
import type { StartPlan } from './translate-start.ts';

function claimsOf(workload: Pick<StartPlan['workload'], 'spec'>): Set<string> {
  return new Set(workload.spec.volumes.filter((v) => v.kind === 'Persistent').map(claimName));
}

/**
 * A gRPC caller is trusted with every volume of the workload namespace: before it creates
 * the AgentWorkload, StartWorkload grants the new workload id each existing claim it names
 * (the label agyn.io/grant-<id>), which the workload controller then lets it mount. A claim
 * that does not exist yet is created by the controller, labelled with the workload's id;
 * one that another workload (in the cache, or just created here) is about to create is waited for (up to `waitMs`) and granted.
 */
export async function grantVolumes(
  shim: ShimContext,
  plan: StartPlan,
  waitMs: number,
): Promise<void> {
  const claims = claimsOf(plan.workload);
  const recent = shim.recent?.workloads() ?? [];
  const coming = [...claims].filter(
    (claim) =>
      !shim.caches.pvc(claim) &&
      (shim.caches.workloads.byIndex(INDEX_CLAIM, claim).length > 0 ||
        recent.some((w) => claimsOf(w).has(claim))),
  );
  await Promise.all(
    coming.map((claim) => shim.caches.waitFor('pvcs', claim, (p) => p !== undefined, waitMs)),
  );
  for (const claim of claims) {
    const pvc = shim.caches.pvc(claim);
    if (!pvc || mayMount(pvc, plan.workload, plan.workloadId)) continue;
    try {
      await shim.kube.resource<Pvc>(PVCS).mergePatch(shim.namespace, claim, {
        metadata: { labels: { [volumeGrantLabel(plan.workloadId)]: 'true' } },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
