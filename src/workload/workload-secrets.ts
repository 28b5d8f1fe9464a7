import type { AgentWorkload } from '../api/agentworkload.ts';
import { AGENT_WORKLOAD_KIND } from '../api/agentworkload.ts';
import { LABELS, ownerReference } from '../api/common.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Secret, Workload, WorkloadCaches } from './caches.ts';
import { WORKLOAD_ID_CLAIM_INDEX } from './identity.ts';
import { inlineFilesSecretName, pullSecretName } from './pod-builder.ts';

/** The names of the Secrets the shim writes for a workload: named after the AgentWorkload. */
export function ownSecretNames(aw: AgentWorkload): string[] {
  return [pullSecretName(aw.metadata.name), inlineFilesSecretName(aw.metadata.name)];
}

export function isOwnedBy(obj: KubeObject, aw: AgentWorkload): boolean {
  return obj.metadata?.ownerReferences?.some((r) => r.uid === aw.metadata.uid) ?? false;
}

/** A Secret written for a workload (it carries the workload id) that no AgentWorkload owns yet. */
export function unadoptedWorkloadSecret(secret: KubeObject): string | undefined {
  const id = secret.metadata?.labels?.[LABELS.workloadId];
  if (!id || secret.metadata?.ownerReferences?.some((r) => r.kind === 'AgentWorkload'))
    return undefined;
  return id;
}

/**
 * The existing workload an unadopted workload Secret was written for (it adopts it), if
 * any. The shim names its Secrets after the workload, so look there first.
 */
export function unadoptedSecretOwner(caches: WorkloadCaches, secret: Secret): Workload | undefined {
  const id = unadoptedWorkloadSecret(secret);
  if (id === undefined || secret.metadata?.deletionTimestamp) return undefined;
  const namespace = secret.metadata?.namespace;
  const name = secret.metadata?.name ?? '';
  const named = [pullSecretName(''), inlineFilesSecretName('')]
    .filter((suffix) => name.endsWith(suffix))
    .map((suffix) => caches.workloads.get(namespace, name.slice(0, -suffix.length)));
  const mine = (aw: Workload | undefined): aw is Workload =>
    aw !== undefined && aw.metadata.namespace === namespace && caches.claimedIdOf(aw) === id;
  return named.find(mine) ?? caches.workloads.byIndex(WORKLOAD_ID_CLAIM_INDEX, id).find(mine);
}

/** The owner reference a workload adds to a Secret it adopts (garbage-collected with it). */
export function adoptingOwnerReference(aw: AgentWorkload) {
  return ownerReference(AGENT_WORKLOAD_KIND, aw, { controller: false, blockOwnerDeletion: true });
}
