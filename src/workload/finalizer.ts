import { WORKLOAD_FINALIZER } from '../api/common.ts';
import type { KubeClient } from '../kube/client.ts';
import { deleteIgnoringMissing } from '../kube/delete.ts';
import { isNotFound } from '../kube/errors.ts';
import { PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import {
  INDEX_OWNER_UID,
  INDEX_WORKLOAD_ID,
  type Pod,
  type Workload,
  type WorkloadCaches,
} from './caches.ts';
import { isOwnedBy, ownSecretNames, unadoptedWorkloadSecret } from './workload-secrets.ts';

/** Adds the workload finalizer by a minimal patch (precondition: the version read). */
export async function addFinalizer(client: KubeClient, aw: Workload): Promise<Workload> {
  const patched = await client
    .resource<Workload>(AGENT_WORKLOADS)
    .mergePatch(aw.metadata.namespace, aw.metadata.name, {
      metadata: {
        finalizers: [...(aw.metadata.finalizers ?? []), WORKLOAD_FINALIZER],
        resourceVersion: aw.metadata.resourceVersion,
      },
    });
  delete patched.metadata.managedFields;
  return patched;
}

/**
 * A deleted workload takes its Pod, its Secrets (adopted or not yet: a workload deleted
 * before its Pod was created) and, when asked, its claims with it; then its finalizer goes.
 */
export async function finalizeWorkload(
  client: KubeClient,
  caches: WorkloadCaches,
  aw: Workload,
  pod: Pod | undefined,
): Promise<void> {
  if (!aw.metadata.finalizers?.includes(WORKLOAD_FINALIZER)) return;
  if (pod && isOwnedBy(pod, aw) && !pod.metadata?.deletionTimestamp)
    await deleteIgnoringMissing(client.resource(PODS), pod);
  const id = caches.claimedIdOf(aw);
  const uid = aw.metadata.uid ?? '';
  const candidates = new Set([
    ...caches.secrets.byIndex(INDEX_OWNER_UID, uid),
    ...caches.secrets.byIndex(INDEX_WORKLOAD_ID, id),
  ]);
  for (const secret of candidates) {
    if (secret.metadata?.namespace !== aw.metadata.namespace) continue;
    const named = ownSecretNames(aw).includes(secret.metadata?.name ?? '');
    if (isOwnedBy(secret, aw) || (named && unadoptedWorkloadSecret(secret) === id)) {
      await deleteIgnoringMissing(client.resource(SECRETS), secret);
    }
  }
  if (aw.spec.deleteVolumesWithWorkload) {
    for (const pvc of caches.pvcs.byIndex(INDEX_OWNER_UID, uid)) {
      if (pvc.metadata?.namespace === aw.metadata.namespace && isOwnedBy(pvc, aw)) {
        await deleteIgnoringMissing(client.resource(PVCS), pvc);
      }
    }
  }
  try {
    await client
      .resource<Workload>(AGENT_WORKLOADS)
      .mergePatch(aw.metadata.namespace, aw.metadata.name, {
        metadata: {
          finalizers: aw.metadata.finalizers.filter((f) => f !== WORKLOAD_FINALIZER),
          resourceVersion: aw.metadata.resourceVersion,
        },
      });
  } catch (err) {
    // A stale cache entry of a workload an earlier reconcile already finalized: it is gone.
    if (!isNotFound(err)) throw err;
  }
}
