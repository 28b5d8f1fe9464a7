/**
 * The claim a reconcile creates is in the controller's cache at once: while the PVC watch
 * brings nothing (every PVC watch ended by the API fault proxy), the reconciles that follow
 * while the Pod waits to be scheduled do not POST the claim again.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { KubeClient } from '../../src/kube/client.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import {
  createTestNamespace,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  SIM_ANNOTATION_PREFIXES,
  createWorkload,
  fastRunner,
  waitForPhase,
  workloadManifest,
} from '../support/workloads.ts';

const admin = testKubeClient();
let proxy: ApiFaultProxy;
let api: ProxyClient;
let kube: KubeClient;
let ns: TestNamespace;
let controller: WorkloadController;

beforeAll(async () => {
  ns = await createTestNamespace(admin, 'claim-cache');
  proxy = await startApiFaultProxy();
  api = await proxy.addClient('controller');
  api.rules = [{ kind: 'endWatch', match: (r) => r.path.includes('/persistentvolumeclaims') }];
  kube = KubeClient.fromEnvironment(api.kubeconfig);
  controller = new WorkloadController({
    client: kube,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: ns.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
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

test('a workload whose claim the watch never shows is started with one POST of the claim', async () => {
  const claim = 'ws-claim-cache';
  await createWorkload(
    admin,
    ns.name,
    workloadManifest('claim-cache', {
      volumes: [{ name: 'ws', kind: 'Persistent', persistentName: claim, size: '1Gi' }],
    }),
  );
  await waitForPhase(admin, ns.name, 'claim-cache', 'Running');
  const claimRequests = api.records
    .filter((r) => !r.watch && r.path.includes('/persistentvolumeclaims'))
    .map((r) => `${r.method} ${r.path.split('?')[0]}`);
  const claims = `/api/v1/namespaces/${ns.name}/persistentvolumeclaims`;
  // The informer's lists aside: one POST, and no read-back of a claim that "already exists".
  expect(claimRequests.filter((r) => r !== `GET ${claims}`)).toEqual([`POST ${claims}`]);
});
