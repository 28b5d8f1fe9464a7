import type { Logger } from 'pino';
import { ShimCaches } from './grpc/caches.ts';
import { InformerCache } from './kube/cache.ts';
import type { KubeClient } from './kube/client.ts';
import { RunnerCaches } from './runner/caches.ts';
import { WorkloadCaches } from './workload/caches.ts';

/**
 * Every informer the operator process reads, owned by one cache: the operator namespace's
 * (Runners, Secrets) and the workload namespace's (AgentWorkloads, Pods, claims, workload
 * Secrets). The controllers and the gRPC shim are handed views of it.
 */
export class OperatorCaches extends InformerCache {
  readonly runner: RunnerCaches;
  readonly workload: WorkloadCaches;
  readonly shim: ShimCaches;

  constructor(
    client: KubeClient,
    logger: Logger,
    namespaces: { operator: string; workload: string },
  ) {
    super(client, logger);
    this.runner = new RunnerCaches(this, namespaces.operator);
    this.workload = new WorkloadCaches(this, namespaces.workload);
    this.shim = new ShimCaches(this.workload);
  }

  get runners() {
    return this.runner.runners;
  }

  get operatorSecrets() {
    return this.runner.secrets;
  }
}

export function createOperatorCaches(
  client: KubeClient,
  logger: Logger,
  namespaces: { operator: string; workload: string },
): OperatorCaches {
  return new OperatorCaches(client, logger, namespaces);
}
