/**
 * Two replicas serve the same namespace, and the second one's caches lag behind the API
 * server (every watch event held by the API fault proxy). A workload the first replica has
 * just started is not NOT_FOUND on the second, and a volume whose workload the first has just
 * stopped is not in use on the second, and one started again under the same id is not taken
 * for the stopped one: a cache miss, or a workload the cache shows gone, is confirmed with the
 * API server before a call answers NOT_FOUND, and a cached user before it refuses.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { StartWorkloadRequest, WorkloadStatus } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import type { Pvc, Workload } from '../../src/grpc/caches.ts';
import { PVCS } from '../../src/kube/resources.ts';
import { eventually } from '../support/kube.ts';
import {
  call,
  codeOf,
  namedVolumeWorkload,
  startHarness,
  type GrpcHarness,
} from '../fixtures/grpc-harness.ts';

const WATCH_LAG_MS = 3_000;

let leader: GrpcHarness;
let lagging: GrpcHarness;

beforeAll(async () => {
  leader = await startHarness({ prefix: 'replica-lag', watchLagMs: 0 });
  lagging = await startHarness({
    prefix: 'replica-lag',
    watchLagMs: WATCH_LAG_MS,
    namespace: leader.ns,
    withController: false,
  });
});

afterAll(async () => {
  await lagging?.close();
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
    StartWorkloadRequest.fromPartial(namedVolumeWorkload(id, claim)),
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

test('a workload started again under the same id on one replica is found on the other while its cache shows the stopped one', async () => {
  const id = randomUUID();
  const name = `workload-${id}`;
  const request = StartWorkloadRequest.fromPartial({ workloadId: id, main: { image: 'x' } });
  const workloads = leader.kube.resource<Workload>(AGENT_WORKLOADS);
  await call(leader.client, 'startWorkload', request);
  await eventually(() => lagging.caches.pod(name) !== undefined, {
    timeoutMs: 30_000,
    what: "the workload's Pod in the lagging replica's cache",
  });
  // A finalizer of the test's own holds the stopped workload: the lagging cache comes to show
  // it terminating with its Pod gone, which the contract calls gone.
  const first = await workloads.get(leader.ns.name, name);
  const hold = 'test.agyn.io/hold';
  await workloads.mergePatch(leader.ns.name, name, {
    metadata: { finalizers: [...(first.metadata.finalizers ?? []), hold] },
  });
  await call(leader.client, 'stopWorkload', { workloadId: id, timeoutSec: 1 });
  await eventually(
    () =>
      lagging.caches.workload(name)?.metadata.deletionTimestamp !== undefined &&
      lagging.caches.pod(name) === undefined,
    { timeoutMs: 30_000, what: 'the lagging cache to show the workload stopped' },
  );
  expect((await codeOf(call(lagging.client, 'inspectWorkload', { workloadId: id }))).code).toBe(
    status.NOT_FOUND,
  );
  const held = await workloads.get(leader.ns.name, name);
  await workloads.mergePatch(leader.ns.name, name, {
    metadata: { finalizers: (held.metadata.finalizers ?? []).filter((f) => f !== hold) },
  });
  await eventually(async () => (await workloads.find(leader.ns.name, name)) === undefined, {
    intervalMs: 50,
    what: 'the stopped workload to go',
  });

  await call(leader.client, 'startWorkload', request);
  expect(lagging.caches.workload(name)?.metadata.uid).toBe(first.metadata.uid);
  const inspected = await call(lagging.client, 'inspectWorkload', { workloadId: id });
  expect(inspected.id).toBe(id);
});
