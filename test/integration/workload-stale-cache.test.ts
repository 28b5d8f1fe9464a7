/**
 * The workload controller while its AgentWorkload watch is broken (every watch ended at once
 * by the API fault proxy, so its cache never sees a new workload): a Secret of a workload that
 * exists but is missing from the cache is not collected as an orphan.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { LABELS, MANAGED_BY_VALUE } from '../../src/api/common.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  SIM_ANNOTATION_PREFIXES,
  createWorkload,
  fastRunner,
  workloadManifest,
} from '../support/workloads.ts';

const admin = testKubeClient();
let proxy: ApiFaultProxy;
let api: ProxyClient;
let kube: KubeClient;
let ns: TestNamespace;
let controller: WorkloadController;

beforeAll(async () => {
  ns = await createTestNamespace(admin, 'stale-cache');
  proxy = await startApiFaultProxy();
  api = await proxy.addClient('controller');
  api.rules = [{ kind: 'endWatch', match: (r) => r.path.includes('/agentworkloads') }];
  kube = KubeClient.fromEnvironment(api.kubeconfig);
  controller = new WorkloadController({
    client: kube,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: ns.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
    orphanSecretGraceMs: 500,
  });
  await controller.startInformers();
  controller.start();
});

afterAll(async () => {
  await controller?.stop();
  await controller?.stopInformers();
  kube?.close();
  await proxy?.close();
  await ns?.cleanup();
  admin.close();
});

test('a Secret whose workload the cache does not show yet is kept once the API server says the workload exists', async () => {
  const id = randomUUID();
  const name = `workload-${id}`;
  await createWorkload(admin, ns.name, workloadManifest(name, { workloadId: id }));
  await admin.resource<KubeObject>(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `${name}-pull`,
      labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.workloadId]: id },
    },
  } as KubeObject);
  // The grace has passed and the controller decided: it asked the API server (and keeps
  // checking), or it deleted the Secret.
  const secrets = admin.resource<KubeObject>(SECRETS);
  const gone = async (): Promise<boolean> =>
    secrets.get(ns.name, `${name}-pull`).then(
      (s) => s.metadata?.deletionTimestamp !== undefined,
      () => true,
    );
  await eventually(
    async () =>
      (await gone()) ||
      api.records.filter(
        (r) => r.method === 'GET' && !r.watch && r.path.endsWith(`/agentworkloads/${name}`),
      ).length >= 2,
    { what: 'the controller deciding about the Secret', timeoutMs: 20_000 },
  );
  expect(controller.hasSynced()).toBe(true);
  expect(await gone()).toBe(false);
});
