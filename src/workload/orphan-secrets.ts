import type { Logger } from 'pino';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import type { KubeClient } from '../kube/client.ts';
import { DEFAULT_WORKERS, type ReconcileResult } from '../kube/controller.ts';
import { deleteIgnoringMissing } from '../kube/delete.ts';
import { objectKey } from '../kube/informer.ts';
import { SECRETS } from '../kube/resources.ts';
import { forKind, TriggeredController, watches } from '../kube/triggers.ts';
import { childLogger } from '../kube/child-logger.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import { INDEX_WORKLOAD_ID, type Secret, type Workload, type WorkloadCaches } from './caches.ts';
import { inlineFilesSecretName, pullSecretName } from './pod-builder.ts';
import { unadoptedSecretOwner, unadoptedWorkloadSecret } from './workload-secrets.ts';

/**
 * A workload Secret (labelled with a workload id, as the gRPC shim writes them) whose
 * workload does not exist this long after its creation is deleted: the start that wrote it
 * failed or its process died before the AgentWorkload was created (or was deleted before
 * adopting it). Longer than any StartWorkload takes between the two writes.
 */
export const ORPHAN_SECRET_GRACE_MS = 60_000;

export interface OrphanSecretCollectorOptions {
  client: KubeClient;
  caches: WorkloadCaches;
  logger: Logger;
  now: () => Date;
  /** Default ORPHAN_SECRET_GRACE_MS. */
  graceMs?: number;
}

const isUnadopted = (secret: Secret): boolean => unadoptedWorkloadSecret(secret) !== undefined;

/** Deletes the shim's workload Secrets that no workload adopted within the grace. */
export class OrphanSecretCollector {
  readonly controller: TriggeredController;
  private readonly logger: Logger;

  constructor(private readonly options: OrphanSecretCollectorOptions) {
    const { caches } = options;
    this.logger = childLogger(options.logger, { controller: 'orphan-secrets' });
    this.controller = new TriggeredController({
      name: 'orphan-secrets',
      workers: DEFAULT_WORKERS,
      logger: this.logger,
      reconcile: (key) => this.collect(key),
      triggers: [
        forKind(caches.secrets, { filter: isUnadopted }),
        // Secrets a deleted workload never adopted are left behind.
        watches(caches.workloads, (aw, event) =>
          event !== 'delete'
            ? []
            : caches.secrets
                .byIndex(INDEX_WORKLOAD_ID, caches.claimedIdOf(aw))
                .filter(isUnadopted)
                .map((s) => objectKey(s)),
        ),
      ],
    });
  }

  private async collect(key: string): Promise<ReconcileResult | void> {
    const { caches, now } = this.options;
    const secret = caches.secrets.getByKey(key);
    const id = secret ? unadoptedWorkloadSecret(secret) : undefined;
    if (!secret || id === undefined || secret.metadata?.deletionTimestamp) return;
    // Its workload exists: that adopts it (or deletes it when it goes).
    if (unadoptedSecretOwner(caches, secret)) return;
    const grace = this.options.graceMs ?? ORPHAN_SECRET_GRACE_MS;
    const createdAt = Date.parse(secret.metadata?.creationTimestamp ?? '');
    const left = (Number.isNaN(createdAt) ? now().getTime() : createdAt) + grace - now().getTime();
    if (left > 0) return { requeueAfterMs: left };
    // Only the shim's own Secrets are collected; one a user labelled for a workload stays.
    if (secret.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE) return;
    // A cache whose watch is down misses workloads: only the API server may say none exists.
    if (await this.workloadExistsLive(secret, id)) return { requeueAfterMs: 1_000 };
    await deleteIgnoringMissing(this.options.client.resource<Secret>(SECRETS), secret);
    this.logger.info(
      { secret: key, workloadId: id },
      'deleted a Secret whose workload does not exist',
    );
  }

  /** Whether the workload the Secret is named after exists on the API server with this id. */
  private async workloadExistsLive(secret: Secret, id: string): Promise<boolean> {
    const name = secret.metadata?.name ?? '';
    const namespace = secret.metadata?.namespace ?? '';
    const workloads = this.options.client.resource<Workload>(AGENT_WORKLOADS);
    for (const suffix of [pullSecretName(''), inlineFilesSecretName('')]) {
      if (!name.endsWith(suffix)) continue;
      const live = await workloads.find(namespace, name.slice(0, -suffix.length));
      if (live && this.options.caches.claimedIdOf(live) === id) return true;
    }
    return false;
  }
}
