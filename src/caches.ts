import type { Logger } from 'pino';
import type { Runner } from './api/runner.ts';
import { ShimCaches } from './grpc/caches.ts';
import type { KubeClient, KubeObject } from './kube/client.ts';
import { Informer } from './kube/informer.ts';
import { RUNNERS, SECRETS } from './kube/resources.ts';
import type { Secret } from './runner/controller.ts';

export interface OperatorCaches {
  runners: Informer<Runner & KubeObject>;
  operatorSecrets: Informer<Secret>;
  shim: ShimCaches;
  start(): void;
  waitForSync(): Promise<void>;
  stop(): Promise<void>;
}

/** The informers the operator process reads. */
export function createOperatorCaches(
  client: KubeClient,
  logger: Logger,
  namespaces: { operator: string; workload: string },
): OperatorCaches {
  const caches = {
    runners: new Informer(client.resource<Runner & KubeObject>(RUNNERS), {
      namespace: namespaces.operator,
      logger,
    }),
    operatorSecrets: new Informer(client.resource<Secret>(SECRETS), {
      namespace: namespaces.operator,
      logger,
    }),
    shim: new ShimCaches(client, namespaces.workload, logger),
  };
  return {
    ...caches,
    start: () => {
      caches.runners.start();
      caches.operatorSecrets.start();
      caches.shim.start();
    },
    waitForSync: async () => {
      await Promise.all([
        caches.runners.waitForSync(),
        caches.operatorSecrets.waitForSync(),
        caches.shim.waitForSync(),
      ]);
    },
    stop: async () => {
      await Promise.all([caches.runners.stop(), caches.operatorSecrets.stop(), caches.shim.stop()]);
    },
  };
}
