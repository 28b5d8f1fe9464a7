import type { VolumeSpec } from '../api/agentworkload.ts';
import { isAlreadyExists, isNotFound } from '../kube/errors.ts';
import { PVCS } from '../kube/resources.ts';
import {
  buildPersistentVolumeClaim,
  claimName,
  WorkloadConfigError,
} from '../workload/pod-builder.ts';
import type { RunnerSettings } from '../workload/runner-settings.ts';
import { mayMount, volumeGrantLabel } from '../workload/volume-access.ts';
import { invalidArgument } from './errors.ts';
import { INDEX_CLAIM, type Pvc } from './caches.ts';
import type { ShimContext } from './rpc.ts';
import type { StartPlan } from './translate-start.ts';

function claimsOf(workload: Pick<StartPlan['workload'], 'spec'>): Set<string> {
  return new Set(workload.spec.volumes.filter((v) => v.kind === 'Persistent').map(claimName));
}

/**
 * A gRPC caller is trusted with every volume of the workload namespace. Before it creates
 * the AgentWorkload, StartWorkload ensures each claim the workload names, as the platform's
 * runner does: a missing one is created now (labelled with the new workload's id, with the
 * storage of the Runner the workload is then pinned to), an existing one is granted to the
 * new workload id (the label agyn.io/grant-<id>). Starts racing on one brand-new claim are
 * thereby safe: the one whose create loses finds the claim and grants itself.
 */
export async function ensureVolumes(
  shim: ShimContext,
  plan: StartPlan,
  waitMs: number,
): Promise<void> {
  const persistent = plan.workload.spec.volumes.filter((v) => v.kind === 'Persistent');
  if (persistent.length === 0) return;
  const runner = runnerFor(shim, plan);
  if (!runner) {
    await grantWhenCreated(shim, plan, waitMs);
    return;
  }
  const created = await Promise.all(persistent.map((v) => ensureClaim(shim, plan, runner, v)));
  // The claims carry this Runner's storage: the workload goes where they were made.
  if (created.some(Boolean) && runner.name !== '' && !plan.workload.spec.runnerRef)
    plan.workload.spec.runnerRef = { name: runner.name };
}

/** The Runner the workload is pinned to, else the one placement picks now; none when no Runner can take it. */
function runnerFor(shim: ShimContext, plan: StartPlan): RunnerSettings | undefined {
  if (!shim.runners) return undefined;
  const ref = plan.workload.spec.runnerRef?.name;
  if (ref) return shim.runners.settings(ref);
  const decision = shim.runners.place(plan.workload);
  return decision.placed ? decision.runner : undefined;
}

/** Creates the claim, or grants the existing one; true when this call created it. */
async function ensureClaim(
  shim: ShimContext,
  plan: StartPlan,
  runner: RunnerSettings,
  volume: VolumeSpec,
): Promise<boolean> {
  const name = claimName(volume);
  const client = shim.kube.resource<Pvc>(PVCS);
  const cached = shim.caches.pvc(name);
  if (!cached) {
    let pvc: Pvc;
    try {
      pvc = buildPersistentVolumeClaim(
        { workload: plan.workload, workloadId: plan.workloadId, podName: plan.podName, runner },
        volume,
      ) as Pvc;
    } catch (err) {
      if (err instanceof WorkloadConfigError) throw invalidArgument(err.code, err.message);
      throw err;
    }
    try {
      await client.create(shim.namespace, pvc);
      return true;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  const existing = cached ?? (await client.get(shim.namespace, name));
  if (!mayMount(existing, plan.workload, plan.workloadId)) await grant(shim, name, plan.workloadId);
  return false;
}

async function grant(shim: ShimContext, claim: string, workloadId: string): Promise<void> {
  try {
    await shim.kube.resource<Pvc>(PVCS).mergePatch(shim.namespace, claim, {
      metadata: { labels: { [volumeGrantLabel(workloadId)]: 'true' } },
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Without a Runner to make claims for (none Ready yet), the workload controller creates
 * them: existing claims are granted now, and one another workload (in the cache, or just
 * created here) is about to create is waited for (up to `waitMs`) and granted.
 */
async function grantWhenCreated(shim: ShimContext, plan: StartPlan, waitMs: number): Promise<void> {
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
    if (pvc && !mayMount(pvc, plan.workload, plan.workloadId))
      await grant(shim, claim, plan.workloadId);
  }
}
