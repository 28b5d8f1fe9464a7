/**
 * RemoveWorkload answers for what the caller sees next: with the shim's caches lagging
 * behind the API server (every watch event held by the API fault proxy), the RPCs that
 * answer from the caches must not name a workload that RemoveWorkload(force) removed.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  StartWorkloadRequest,
  VolumeKind,
  type DeepPartial,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { eventually } from '../support/kube.ts';
import { call, codeOf, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';

const WATCH_LAG_MS = 600;

let h: GrpcHarness;

beforeAll(async () => {
  h = await startHarness({ prefix: 'remove-lag', watchLagMs: WATCH_LAG_MS });
});

afterAll(async () => {
  await h?.close();
});

function start(partial: DeepPartial<StartWorkloadRequest>) {
  return call(h.client, 'startWorkload', StartWorkloadRequest.fromPartial(partial));
}

test('after RemoveWorkload(force), ListWorkloadsByVolume, ListWorkloads and Inspect no longer name it', async () => {
  const claim = `lag-${randomUUID().slice(0, 8)}`;
  const volumes = [{ name: 'ws', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: claim }];
  const mounts = [{ volume: 'ws', mountPath: '/w' }];
  const [a, b] = [randomUUID(), randomUUID()];
  for (const id of [a, b]) await start({ workloadId: id, main: { image: 'x', mounts }, volumes });
  for (const id of [a, b]) {
    await eventually(
      async () => (await call(h.client, 'inspectWorkload', { workloadId: id })).stateRunning,
      { timeoutMs: 30_000, what: `${id} to run` },
    );
  }

  await call(h.client, 'removeWorkload', { workloadId: a, force: true, removeVolumes: false });
  const byVolume = await call(h.client, 'listWorkloadsByVolume', { volumeName: claim });
  expect(byVolume.targetIds).toEqual([b]);
  const listed = (await call(h.client, 'listWorkloads', {})).workloads.map((w) => w.instanceId);
  expect(listed).not.toContain(a);
  const inspect = call(h.client, 'inspectWorkload', { workloadId: a });
  expect((await codeOf(inspect)).code).toBe(status.NOT_FOUND);
});
