/**
 * The deployed shape end to end: the operator as its own process, a Runner (enrolled with
 * a stand-in gateway) whose scheduling selects the real node, and a workload started over
 * the operator's gRPC port that runs on the real kubelet and answers Exec.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { Runner } from '../../src/api/runner.ts';
import {
  RunnerServiceClient,
  StartWorkloadRequest,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PODS, SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { call } from '../fixtures/grpc-harness.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import {
  startOperator,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import {
  BUSYBOX,
  REAL_NODE,
  REAL_NODE_LABEL,
  REAL_NODE_STORAGE_CLASS,
  exec,
} from '../support/real-node.ts';
import { startTestGateway, testGateway, type TestGateway } from '../support/test-gateway.ts';

type Pod = IPod & KubeObject;

const client = testKubeClient();
const TOKEN = `svc-token-${randomBytes(6).toString('hex')}`;
let ns: TestNamespace;
let wns: TestNamespace;
let gateway: TestGateway;
let operator: OperatorProcess;
let grpc: RunnerServiceClient;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'rn-op');
  wns = await createTestNamespace(client, 'rn-op-wl');
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: JSON.stringify({ runner_id: 'real-node-runner', key: 'k' }),
        serviceName: 'real-node.agyn',
        identityId: 'real-node-identity',
      },
    },
  });
  await client.resource<KubeObject>(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'runner-token',
      namespace: ns.name,
      labels: { 'agyn.io/runner-token': 'true' },
    },
    data: { token: Buffer.from(TOKEN).toString('base64') },
  } as KubeObject);
  await client.resource<Runner>(RUNNERS).create(ns.name, {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name: 'real', namespace: ns.name },
    spec: {
      gateway: testGateway({ url: gateway.url }),
      serviceToken: { secretRef: { name: 'runner-token', key: 'token' } },
      workloadNamespace: wns.name,
      // busybox runs as root.
      workloadSecurity: { allowRoot: true },
      storage: { defaultClass: REAL_NODE_STORAGE_CLASS, defaultSize: '1Gi' },
      scheduling: {
        nodeSelector: { [REAL_NODE_LABEL]: 'true' },
        tolerations: [{ key: REAL_NODE_LABEL, operator: 'Exists', effect: 'NoSchedule' }],
      },
    },
  } as unknown as Runner);
  operator = await startOperator({
    name: 'real-node',
    env: {
      OPERATOR_NAMESPACE: ns.name,
      WORKLOAD_NAMESPACE: wns.name,
      LEADER_ELECTION: 'false',
      GRPC_AUTH_MODE: 'insecure',
    },
  });
  await waitForRunnerReady(client, ns.name, 'real');
  grpc = new RunnerServiceClient(`127.0.0.1:${operator.grpcPort}`, credentials.createInsecure());
});

afterAll(async () => {
  grpc?.close();
  await operator?.stop();
  await gateway?.stop();
  await ns?.cleanup();
  await wns?.cleanup();
  client.close();
});

test('a workload started over the operator gRPC port runs on the real node', async () => {
  const id = randomUUID();
  await call(
    grpc,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: {
        name: 'agent',
        image: BUSYBOX,
        cmd: ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'],
        env: [{ name: 'AGENT_NAME', value: 'reviewer' }],
      },
    }),
  );
  await eventually(
    async () => (await call(grpc, 'inspectWorkload', { workloadId: id })).stateRunning,
    {
      what: 'the workload Running',
      timeoutMs: 60_000,
    },
  );
  const pod = await client.resource<Pod>(PODS).get(wns.name, `workload-${id}`);
  expect(pod.spec?.nodeName).toBe(REAL_NODE);
  const out = await exec(grpc, {
    targetId: `workload-${id}`,
    commandShell: 'echo "$AGENT_NAME"; hostname',
  });
  expect(out.stdout).toBe(`reviewer\nworkload-${id}\n`);
  await call(grpc, 'removeWorkload', { workloadId: id, force: false, removeVolumes: false });
});
