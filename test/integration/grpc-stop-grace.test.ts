import { randomUUID } from 'node:crypto';
import type { IPod } from 'kubernetes-models/v1/Pod';
import { StartWorkloadRequest } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { PODS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { eventually, testLogger } from '../support/kube.ts';
import type { Workload } from '../support/workloads.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';

/**
 * The kubelet keeps the grace period of the first delete it sees; a later, shorter one only
 * changes the API object. So the Pod's deletion must start with the grace the caller asked
 * for, before the AgentWorkload is marked (stopped or deleted), which is what makes the
 * controller and the garbage collector delete the Pod with its default grace.
 */
interface FirstMark {
  /** resourceVersion of the write, as the watch reported it. */
  rv: bigint;
  /** deletionGracePeriodSeconds as first set; 'deleted' when the Pod went at once. */
  grace?: number | 'deleted';
}

let h: GrpcHarness;
let podWatch: Informer<IPod & KubeObject>;
let workloadWatch: Informer<Workload>;
const podDeletions = new Map<string, FirstMark>();
const workloadMarks = new Map<string, FirstMark>();

function note(map: Map<string, FirstMark>, obj: KubeObject, grace?: number | 'deleted'): void {
  const name = obj.metadata?.name ?? '';
  if (!map.has(name)) map.set(name, { rv: BigInt(obj.metadata?.resourceVersion ?? '0'), grace });
}

beforeAll(async () => {
  h = await startHarness({ prefix: 'grpc-grace', runnerName: 'local' });
  // Watches of their own on the API server (not the shim's caches).
  podWatch = new Informer(h.kube.resource<IPod & KubeObject>(PODS), {
    namespace: h.ns.name,
    logger: testLogger,
  });
  workloadWatch = new Informer(h.kube.resource<Workload>(AGENT_WORKLOADS), {
    namespace: h.ns.name,
    logger: testLogger,
  });
  podWatch.addHandler({
    onUpdate: (_old, pod) => {
      if (pod.metadata?.deletionTimestamp)
        note(podDeletions, pod, pod.metadata.deletionGracePeriodSeconds ?? undefined);
    },
    onDelete: (pod) => note(podDeletions, pod, 'deleted'),
  });
  const markWorkload = (w: Workload): void => {
    if (w.spec.stopped || w.metadata.deletionTimestamp) note(workloadMarks, w);
  };
  workloadWatch.addHandler({ onUpdate: (_old, w) => markWorkload(w), onDelete: markWorkload });
  podWatch.start();
  workloadWatch.start();
  await Promise.all([podWatch.waitForSync(), workloadWatch.waitForSync()]);
});

afterAll(async () => {
  await podWatch?.stop();
  await workloadWatch?.stop();
  await h?.close();
});

async function startRunning(): Promise<string> {
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ workloadId: id, main: { image: 'agent:1' } }),
  );
  await eventually(
    async () => (await call(h.client, 'inspectWorkload', { workloadId: id })).stateRunning,
    { timeoutMs: 30_000, what: `${id} to run` },
  );
  return id;
}

/** The Pod's first deletion, and that it came before anything marked its workload. */
async function firstDeletionOf(id: string): Promise<FirstMark> {
  const name = `workload-${id}`;
  const [pod, workload] = await eventually(
    () => {
      const p = podDeletions.get(name);
      const w = workloadMarks.get(name);
      return p && w ? ([p, w] as const) : undefined;
    },
    { what: `the watch to see ${name} deleted` },
  );
  // One etcd: resourceVersions are its revisions, so they order writes across resources.
  expect(pod.rv < workload.rv).toBe(true);
  return pod;
}

test('StopWorkload(timeout_sec) makes the first Pod delete carry timeout_sec as its grace', async () => {
  const id = await startRunning();
  await call(h.client, 'stopWorkload', { workloadId: id, timeoutSec: 7 });
  expect((await firstDeletionOf(id)).grace).toBe(7);
});

test('RemoveWorkload(force) deletes the Pod at once, before the workload is deleted', async () => {
  const id = await startRunning();
  await call(h.client, 'removeWorkload', { workloadId: id, force: true, removeVolumes: false });
  expect([0, 'deleted']).toContain((await firstDeletionOf(id)).grace);
});
