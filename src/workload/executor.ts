import type { Logger } from 'pino';
import type { KubeClient, ResourceClient } from '../kube/client.ts';
import { deleteIgnoringMissing } from '../kube/delete.ts';
import { isAlreadyExists, isConflict, isInvalid, isNotFound } from '../kube/errors.ts';
import { PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import type { Pod, Pvc, Secret, Workload, WorkloadCaches } from './caches.ts';
import { refusedStatus, type Action, type Decision } from './decide.ts';
import type { StatusFacts } from './desired-status.ts';
import type { RunnerSettings } from './runner-settings.ts';
import { ensureClaims, VolumeAccessError } from './volume-access.ts';
import { adoptingOwnerReference } from './workload-secrets.ts';

type CreatePod = Extract<Action, { kind: 'createPod' }>;

/** What applying a decision came to. */
export interface Applied {
  /** The status to write: the decision's, unless the API server refused the new objects. */
  status: StatusFacts;
  /** A Pod was created that the cache does not show yet. */
  podCreated: boolean;
}

/** Applies decide()'s actions to the API server: the only writer of a workload's objects. */
export class WorkloadExecutor {
  private readonly workloads: ResourceClient<Workload>;
  private readonly pods: ResourceClient<Pod>;
  private readonly pvcs: ResourceClient<Pvc>;
  private readonly secrets: ResourceClient<Secret>;

  constructor(
    client: KubeClient,
    private readonly caches: WorkloadCaches,
  ) {
    this.workloads = client.resource(AGENT_WORKLOADS);
    this.pods = client.resource(PODS);
    this.pvcs = client.resource(PVCS);
    this.secrets = client.resource(SECRETS);
  }

  /**
   * Secrets are adopted beside the rest (a workload stopped before its Pod was created has
   * Secrets too, and they must go with it); the other actions run in order.
   */
  async apply(
    aw: Workload,
    workloadId: string,
    decision: Decision,
    log: () => Logger,
  ): Promise<Applied> {
    const adoptions = decision.actions.filter((a) => a.kind === 'adoptSecret');
    const others = decision.actions.filter((a) => a.kind !== 'adoptSecret');
    const [applied] = await Promise.all([
      this.applyInOrder(aw, workloadId, decision.status, others, log),
      Promise.all(adoptions.map((a) => this.adopt(aw, a.secret))),
    ]);
    return applied;
  }

  private async applyInOrder(
    aw: Workload,
    workloadId: string,
    status: StatusFacts,
    actions: Action[],
    log: () => Logger,
  ): Promise<Applied> {
    let applied: Applied = { status, podCreated: false };
    for (const action of actions) {
      switch (action.kind) {
        case 'ensureClaims':
          await this.ensureClaims(aw, workloadId, action.runner);
          break;
        case 'deletePod':
          if (action.why) log().info({ pod: action.pod.metadata?.name }, action.why);
          await deleteIgnoringMissing(this.pods, action.pod);
          break;
        case 'deleteWorkload':
          log().info('stopped longer than its TTL; deleting the workload');
          await deleteIgnoringMissing(this.workloads, aw);
          break;
        case 'createPod': {
          const outcome = await this.createPod(aw, workloadId, action, log);
          applied = { status: outcome.refused ?? status, podCreated: outcome.podCreated };
          break;
        }
        case 'adoptSecret':
          await this.adopt(aw, action.secret);
          break;
      }
    }
    return applied;
  }

  private ensureClaims(aw: Workload, workloadId: string, runner: RunnerSettings): Promise<void> {
    const input = { workload: aw, workloadId, podName: aw.metadata.name, runner };
    return ensureClaims(input, this.caches.pvcs, this.pvcs);
  }

  private async createPod(
    aw: Workload,
    workloadId: string,
    action: CreatePod,
    log: () => Logger,
  ): Promise<{ refused?: StatusFacts; podCreated: boolean }> {
    const [volumes, created] = await Promise.allSettled([
      this.ensureClaims(aw, workloadId, action.runner),
      this.pods.create(aw.metadata.namespace, action.pod as Pod),
    ]);
    const failures = [volumes, created]
      .filter((r) => r.status === 'rejected')
      .map((r) => (r as PromiseRejectedResult).reason as unknown)
      .filter((err) => !isAlreadyExists(err));
    const invalid = failures.find((e) => isInvalid(e) || e instanceof VolumeAccessError);
    if (invalid) {
      // A Pod that was created beside a refused claim could never start.
      if (created.status === 'fulfilled') await deleteIgnoringMissing(this.pods, created.value);
      const message =
        invalid instanceof VolumeAccessError
          ? invalid.message
          : `the API server refused the workload's objects: ${(invalid as Error).message}`;
      return { refused: refusedStatus(action.unstarted, message), podCreated: false };
    }
    if (failures.length > 0) throw failures[0];
    // Already there: an earlier reconcile created it.
    if (created.status !== 'fulfilled') return { podCreated: false };
    log().info({ pod: aw.metadata.name, runner: action.runner.name }, 'created Pod');
    const cached = this.caches.pods.get(aw.metadata.namespace, aw.metadata.name);
    return { podCreated: !cached };
  }

  private async adopt(aw: Workload, secret: Secret): Promise<void> {
    try {
      await this.secrets.mergePatch(aw.metadata.namespace, secret.metadata?.name ?? '', {
        metadata: {
          ownerReferences: [
            ...(secret.metadata?.ownerReferences ?? []),
            adoptingOwnerReference(aw),
          ],
          resourceVersion: secret.metadata?.resourceVersion,
        },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}
