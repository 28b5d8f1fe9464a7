import type { Logger } from 'pino';
import { ShimCaches } from './grpc/caches.ts';
import { InformerCache } from './kube/cache.ts';
import type { KubeClient } from './kube/client.ts';
import type { Informer } from './kube/informer.ts';
import { RunnerCaches } from './runner/caches.ts';
import { workloadNamespaceInformer, type Namespace } from './runner/namespace-informer.ts';
import { WorkloadCaches } from './workload/caches.ts';

export interface OperatorCacheOptions {
  operator: string;
  workload: string;
  /** The gRPC token Secret, cached by name (token auth). */
  grpcTokenSecret?: string;
  /** Standalone: one static Runner, so no Namespace labels are read. */
  standalone?: boolean;
}

/**
 * Every informer the operator process reads, owned by one cache: the operator namespace's
 * (Runners, Secrets) and the workload namespace's (AgentWorkloads, Pods, claims, workload
 * Secrets). The controllers and the gRPC shim are handed views of it.
 */
export class OperatorCaches extends InformerCache {
  readonly runner: RunnerCaches;
  readonly workload: WorkloadCaches;
  readonly shim: ShimCaches;
  /** The workload Namespace (its labels: organization, Runners' acceptedNamespaces), unless standalone. */
  readonly workloadNamespace?: Informer<Namespace>;

  constructor(client: KubeClient, logger: Logger, options: OperatorCacheOptions) {
    super(client, logger);
    this.runner = new RunnerCaches(this, options.operator, options.grpcTokenSecret);
    this.workload = new WorkloadCaches(this, options.workload);
    this.shim = new ShimCaches(this.workload);
    if (!options.standalone)
      this.workloadNamespace = workloadNamespaceInformer(this, options.workload);
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
  options: OperatorCacheOptions,
): OperatorCaches {
  return new OperatorCaches(client, logger, options);
}
