/**
 * Two replicas serve the same namespace, and the second one's caches lag behind the API
 * server (every watch event held by the API fault proxy). A workload the first replica has
 * just started is not NOT_FOUND on the second, and a volume whose workload the first has just
 * stopped is not in use on the second: a cache miss is confirmed with the API server before a
 * call answers NOT_FOUND, and a cached user before it refuses.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  StartWorkloadRequest,
  VolumeKind,
  WorkloadStatus,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Pvc } from '../../src/grpc/caches.ts';
import { PVCS } from '../../src/kube/resources.ts';
import { eventually } from '../support/kube.ts';
import { startApiFaultProxy, type ApiFaultProxy } from '../support/api-fault-proxy.ts';
import { call, codeOf, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';

const WATCH_LAG_MS = 3_000;

let proxy: ApiFaultProxy;
let leader: GrpcHarness;
let lagging: GrpcHarness;

beforeAll(async () => {
  leader = await startHarness({ prefix: 'replica-lag' });
  proxy = await startApiFaultProxy();
  const client = await proxy.addClient('lagging');
  client.rules = [{ kind: 'lagWatch', ms: WATCH_LAG_MS }];
  lagging = await startHarness({
    prefix: 'replica-lag',
    kubeconfig: client.kubeconfig,
    namespace: leader.ns,
    withController: false,
  });
});

afterAll(async () => {
  await lagging?.close();
  await proxy?.close();
  await leader?.close();
});

test('a workload just started on one replica is found on the other before its cache shows it', async () => {
  const id = randomUUID();
  const started = await call(
    leader.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ workloadId: id, main: { image: 'x' } }),
  );
  expect(started.status).toBe(WorkloadStatus.WORKLOAD_STATUS_STARTING);
  expect(lagging.caches.workloads.list()).toEqual([]);

  const inspected = await call(lagging.client, 'inspectWorkload', { workloadId: id });
  expect(inspected.id).toBe(id);
  const labels = await call(lagging.client, 'getWorkloadLabels', { workloadId: id });
  expect(labels.labels).toMatchObject({ 'agyn.io/workload-id': id });
  expect(await call(lagging.client, 'touchWorkload', { workloadId: id })).toEqual({});
  // Still unseen by the lagging caches: every answer above came from the API server.
  expect(lagging.caches.workloads.list()).toEqual([]);

  const unknown = call(lagging.client, 'inspectWorkload', { workloadId: randomUUID() });
  expect((await codeOf(unknown)).code).toBe(status.NOT_FOUND);
});

test('a volume whose workload was just stopped on one replica is removable on the other before its cache shows the stop', async () => {
  const id = randomUUID();
  const claim = `lag-${id.slice(0, 8)}`;
  const pod = `workload-${id}`;
  await call(
    leader.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: { image: 'x', mounts: [{ volume: 'ws', mountPath: '/w' }] },
      volumes: [
        {
          name: 'ws',
          kind: VolumeKind.VOLUME_KIND_NAMED,
          persistentName: claim,
          labels: { volume_key: claim },
        },
      ],
    }),
  );
  await eventually(() => lagging.caches.pod(pod) !== undefined, {
    timeoutMs: 30_000,
    what: "the workload's Pod in the lagging replica's cache",
  });
  await call(leader.client, 'stopWorkload', { workloadId: id, timeoutSec: 1 });

  expect(await call(lagging.client, 'removeVolume', { volumeName: claim, force: false })).toEqual(
    {},
  );
  // Still shown by the lagging cache: the refusal it would have given was checked live.
  expect(lagging.caches.pod(pod)).toBeDefined();
  const pvc = await leader.kube.resource<Pvc>(PVCS).find(leader.ns.name, claim);
  expect(pvc === undefined || pvc.metadata?.deletionTimestamp !== undefined).toBe(true);
});
