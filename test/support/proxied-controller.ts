/**
 * A WorkloadController whose API traffic goes through the API fault proxy (its own client of
 * it, with `rules`), in a test namespace of its own, with its informers synced and started.
 */
import { KubeClient } from '../../src/kube/client.ts';
import {
  WorkloadController,
  type WorkloadControllerOptions,
} from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import { startApiFaultProxy, type ProxyClient } from './api-fault-proxy.ts';
import type { FaultRule } from './api-fault-rules.ts';
import { createTestNamespace, testLogger, type TestNamespace } from './kube.ts';
import { SIM_ANNOTATION_PREFIXES, fastRunner } from './workloads.ts';

export interface ProxiedController {
  ns: TestNamespace;
  /** The proxy's client: its rules and the requests it recorded. */
  api: ProxyClient;
  controller: WorkloadController;
  /** Stops the controller, its client and the proxy, and removes the namespace. */
  stop(): Promise<void>;
}

export async function startProxiedController(
  admin: KubeClient,
  namespacePrefix: string,
  rules: FaultRule[],
  options: Partial<WorkloadControllerOptions> = {},
): Promise<ProxiedController> {
  const ns = await createTestNamespace(admin, namespacePrefix);
  const proxy = await startApiFaultProxy();
  const api = await proxy.addClient('controller');
  api.rules = rules;
  const kube = KubeClient.fromEnvironment(api.kubeconfig);
  const controller = new WorkloadController({
    client: kube,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: ns.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
    ...options,
  });
  await controller.startInformers();
  controller.start();
  return {
    ns,
    api,
    controller,
    stop: async () => {
      await controller.stop();
      await controller.stopInformers();
      kube.close();
      await proxy.close();
      await ns.cleanup();
    },
  };
}
