// The operator's informers come from one cache owner (src/caches.ts): what main wires is
// what the controllers read, with each informer's transform applied.
import { createOperatorCaches, type OperatorCaches } from '../../src/caches.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import {
  createTestNamespace,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';

const kube = testKubeClient();
let operatorNs: TestNamespace;
let workloadNs: TestNamespace;
let caches: OperatorCaches | undefined;

beforeAll(async () => {
  operatorNs = await createTestNamespace(kube, 'op-caches-op');
  workloadNs = await createTestNamespace(kube, 'op-caches-wl');
});

afterAll(async () => {
  await caches?.stop();
  await workloadNs?.cleanup();
  await operatorNs?.cleanup();
  kube.close();
});

test('the operator Secret cache main wires holds no Helm release (only the Secrets it needs)', async () => {
  const secrets = kube.resource<KubeObject & { type?: string; data?: Record<string, string> }>(
    SECRETS,
  );
  const release = Buffer.alloc(4096, 0x61).toString('base64');
  await secrets.create(operatorNs.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'sh.helm.release.v1.k8s-runner.v1' },
    type: 'helm.sh/release.v1',
    data: { release },
  });
  await secrets.create(operatorNs.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'runner-token', labels: { 'agyn.io/runner-token': 'true' } },
    data: { token: Buffer.from('t').toString('base64') },
  });

  caches = createOperatorCaches(kube, testLogger, {
    operator: operatorNs.name,
    workload: workloadNs.name,
  });
  caches.start();
  await caches.waitForSync();

  const operatorSecrets = caches.operatorSecrets;
  expect(operatorSecrets.get(operatorNs.name, 'runner-token')?.data).toEqual({
    token: Buffer.from('t').toString('base64'),
  });
  expect(operatorSecrets.get(operatorNs.name, 'sh.helm.release.v1.k8s-runner.v1')).toBeUndefined();
});
