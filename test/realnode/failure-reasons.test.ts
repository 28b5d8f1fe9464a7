/**
 * The operator's failure reasons from what a real kubelet reports: an image that is not
 * on the node (every registry is a closed loopback port), an image containerd cannot
 * create a container from, an init container exiting non-zero, and a main container
 * crash-looping under restartPolicy OnFailure (judged by restart counts while the kubelet
 * backs off, as a real kubelet rarely shows CrashLoopBackOff between restarts).
 */
import { randomUUID } from 'node:crypto';
import type { IPod } from 'kubernetes-models/v1/Pod';
import { StartWorkloadRequest } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  BAD_USER_IMAGE,
  BUSYBOX,
  MISSING_IMAGE,
  kubectl,
  realNodeRunner,
  waitForWorkloadPhase,
} from '../support/real-node.ts';
import { createWorkload, workloadManifest } from '../support/workloads.ts';

type Pod = IPod & KubeObject;

let h: GrpcHarness;

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-fail', runner: realNodeRunner() });
});

afterAll(async () => {
  await h?.close();
});

async function start(request: Parameters<typeof StartWorkloadRequest.fromPartial>[0]) {
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ ...request, workloadId: id }),
  );
  return id;
}

test('an image that is not on the node: image_pull_failed, after a real pull attempt', async () => {
  const id = await start({ main: { name: 'agent', image: MISSING_IMAGE, cmd: ['true'] } });
  const aw = await waitForWorkloadPhase(h, id, 'Failed');
  expect(aw.status?.reason).toBe('image_pull_failed');
  expect(aw.status?.message).toContain(`main container "agent" cannot pull its image`);
  expect(aw.status?.message).toContain('127.0.0.1:1');
});

test('an image containerd cannot create a container from: config_invalid', async () => {
  const id = await start({ main: { name: 'agent', image: BAD_USER_IMAGE, cmd: ['true'] } });
  const aw = await waitForWorkloadPhase(h, id, 'Failed');
  expect(aw.status?.reason).toBe('config_invalid');
  expect(aw.status?.message).toContain('main container "agent" cannot be created');
  expect(aw.status?.message).toContain('agent');
  const pod = await h.kube.resource<Pod>(PODS).get(h.ns.name, `workload-${id}`);
  expect(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('CreateContainerError');
});

test('an init container exiting non-zero: start_failed with its exit code', async () => {
  const id = await start({
    initContainers: [{ name: 'setup', image: BUSYBOX, cmd: ['sh', '-c', 'echo no >&2; exit 3'] }],
    main: { name: 'agent', image: BUSYBOX, cmd: ['sleep', '3600'] },
  });
  const aw = await waitForWorkloadPhase(h, id, 'Failed');
  expect(aw.status?.reason).toBe('start_failed');
  expect(aw.status?.message).toContain('init container "setup" exited with code 3');
  const pod = await h.kube.resource<Pod>(PODS).get(h.ns.name, `workload-${id}`);
  expect(pod.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(3);
});

test('a main container crashing under OnFailure: crashloop once the kubelet restarted it past the threshold', async () => {
  const name = `crash-${randomUUID().slice(0, 8)}`;
  await createWorkload(
    h.kube,
    h.ns.name,
    workloadManifest(name, {
      main: { name: 'agent', image: BUSYBOX, args: ['sh', '-c', 'echo crashing; exit 1'] },
      restartPolicy: 'OnFailure',
    }),
  );
  const aw = await waitForWorkloadPhase(h, '', 'Failed', 110_000, name);
  expect(aw.status?.reason).toBe('crashloop');
  expect(aw.status?.message).toMatch(/main container "agent" .*after [2-9] restarts/);
  const pod = await h.kube.resource<Pod>(PODS).get(h.ns.name, aw.status?.podName ?? '');
  const main = pod.status?.containerStatuses?.find((s) => s.name === 'agent');
  expect(main?.restartCount).toBeGreaterThanOrEqual(2);
  expect(main?.lastState?.terminated?.exitCode).toBe(1);
  const events = await kubectl(
    'get',
    'events',
    '-n',
    h.ns.name,
    '--field-selector',
    `involvedObject.name=${pod.metadata?.name},reason=BackOff`,
    '-o',
    'jsonpath={.items[*].message}',
  );
  expect(events).toContain('Back-off restarting failed container agent');
}, 150_000);
