/**
 * runtime_lost from real node loss: the real node's kubelet is killed while the workload
 * runs. The node controller marks the node unreachable (after the cluster's 60 s node
 * monitor grace), the taint eviction removes the Pod after the Runner's toleration, and
 * the operator reports the workload Failed / runtime_lost once its grace has passed. On a
 * cluster of this file's own, so no other test loses its node.
 */
import { randomUUID } from 'node:crypto';
import { StartWorkloadRequest } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  BUSYBOX,
  REAL_NODE_LABEL,
  realNodeRunner,
  startPrivateRealNodeCluster,
  waitForWorkloadPhase,
  type PrivateRealNodeCluster,
} from '../support/real-node.ts';

let cluster: PrivateRealNodeCluster | undefined;
let h: GrpcHarness | undefined;

afterAll(async () => {
  await h?.close().catch(() => undefined);
  await cluster?.down();
}, 180_000);

test('a workload whose node stops is Failed / runtime_lost', async () => {
  cluster = await startPrivateRealNodeCluster();
  h = await startHarness({
    prefix: 'rn-lost',
    kubeconfig: cluster.kubeconfig,
    runner: realNodeRunner({
      scheduling: {
        nodeSelector: { [REAL_NODE_LABEL]: 'true' },
        tolerations: [
          { key: REAL_NODE_LABEL, operator: 'Exists', effect: 'NoSchedule' },
          // Evicted 1 s after the node is found unreachable (Kubernetes' default is 300 s).
          {
            key: 'node.kubernetes.io/unreachable',
            operator: 'Exists',
            effect: 'NoExecute',
            tolerationSeconds: 1,
          },
        ],
      },
    }),
  });
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: { name: 'agent', image: BUSYBOX, cmd: ['sleep', '3600'] },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
  process.kill(cluster.kubeletPid(), 'SIGKILL');
  const aw = await waitForWorkloadPhase(h, id, 'Failed', 200_000);
  expect(aw.status?.reason).toBe('runtime_lost');
}, 300_000);
