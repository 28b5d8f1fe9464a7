/**
 * Stop and forced Remove on a real kubelet: the first Pod delete the kubelet acts on must
 * carry the caller's grace, because kubelet v1.36 keeps the kill it started. The main
 * process is `sleep` as PID 1, which ignores SIGTERM, so only the grace ends it: with the
 * default 30 s grace winning the race the Pod would live past 30 s.
 */
import { randomUUID } from 'node:crypto';
import { StartWorkloadRequest, VolumeKind } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { PODS, PVCS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { BUSYBOX, realNodeRunner, waitForWorkloadPhase } from '../support/real-node.ts';

let h: GrpcHarness;

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-grace', runner: realNodeRunner() });
});

afterAll(async () => {
  await h?.close();
});

/** Far below the 30 s default grace, far above what a 1 s grace needs on this node. */
const WELL_BELOW_DEFAULT_GRACE_MS = 15_000;

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

async function startIgnoringTerm(claim?: string): Promise<string> {
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      volumes: claim
        ? [{ name: 'data', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: claim }]
        : [],
      main: {
        name: 'agent',
        image: BUSYBOX,
        cmd: ['sleep', '3600'],
        mounts: claim ? [{ volume: 'data', mountPath: '/data' }] : [],
      },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
  return id;
}

const pods = () => h.kube.resource<KubeObject>(PODS);

test('StopWorkload(timeout_sec=1) returns with the Pod gone, and the volume is removable at once', async () => {
  const claim = `grace-${randomUUID().slice(0, 8)}`;
  const id = await startIgnoringTerm(claim);
  const started = Date.now();
  await call(h.client, 'stopWorkload', { workloadId: id, timeoutSec: 1 });
  const elapsedMs = Date.now() - started;
  expect(await gone(() => pods().get(h.ns.name, `workload-${id}`))).toBe(true);
  expect(elapsedMs).toBeLessThan(WELL_BELOW_DEFAULT_GRACE_MS);
  expect(await call(h.client, 'removeVolume', { volumeName: claim, force: false })).toEqual({});
  const pvc = await h.kube
    .resource<KubeObject>(PVCS)
    .get(h.ns.name, claim)
    .catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
  expect(pvc === undefined || Boolean(pvc.metadata?.deletionTimestamp)).toBe(true);
});

test('RemoveWorkload(force) kills the container at once, not after the default grace', async () => {
  const id = await startIgnoringTerm();
  const started = Date.now();
  await call(h.client, 'removeWorkload', { workloadId: id, force: true, removeVolumes: false });
  for (;;) {
    if (await gone(() => pods().get(h.ns.name, `workload-${id}`))) break;
    expect(Date.now() - started).toBeLessThan(WELL_BELOW_DEFAULT_GRACE_MS);
    await new Promise((r) => setTimeout(r, 200));
  }
});
