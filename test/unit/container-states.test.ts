import type { V1Pod } from '@kubernetes/client-node';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { SidecarSpec } from '../../src/api/agentworkload.ts';
import { containerStatesFromPod, type PodView } from '../../src/workload/container-states.ts';

const sidecars: SidecarSpec[] = [
  { name: 'ziti-sidecar', image: 'openziti/ziti-tunnel:2.0.0-pre8', role: 'ziti' },
  { name: 'mcp-51aa2b3c', image: 'ghcr.io/agynio/files-mcp:latest', role: 'mcp' },
  { name: 'hook-1', image: 'ghcr.io/x/hook:1', role: 'hook' },
];
const spec = { sidecars };

function agentPod(status: IPod['status'] = {}): IPod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'workload-9a0b1c2d' },
    spec: {
      restartPolicy: 'Never',
      initContainers: [
        { name: 'ziti-sidecar', image: 'openziti/ziti-tunnel:2.0.0-pre8', restartPolicy: 'Always' },
        { name: 'ziti-gateway-wait', image: 'busybox:1.37.0' },
        { name: 'agent-init', image: 'ghcr.io/x/agent-init:1' },
      ],
      containers: [
        { name: 'agent', image: 'ghcr.io/x/workspace:1' },
        { name: 'mcp-51aa2b3c', image: 'ghcr.io/agynio/files-mcp:latest' },
        { name: 'hook-1', image: 'ghcr.io/x/hook:1' },
        { name: 'docker-daemon', image: 'docker:27-dind' },
      ],
    },
    status,
  };
}

test('orders init containers, main, then sidecars, with roles', () => {
  const states = containerStatesFromPod(agentPod(), spec);
  expect(states.map((s) => [s.name, s.role, s.sidecarRole])).toEqual([
    ['ziti-sidecar', 'sidecar', 'ziti'],
    ['ziti-gateway-wait', 'init', undefined],
    ['agent-init', 'init', undefined],
    ['agent', 'main', undefined],
    ['mcp-51aa2b3c', 'sidecar', 'mcp'],
    ['hook-1', 'sidecar', 'hook'],
    ['docker-daemon', 'sidecar', 'other'],
  ]);
});

test('a container without a status is waiting with no reason, restart 0 and the spec image', () => {
  const [ziti, wait] = containerStatesFromPod(agentPod(), spec);
  expect(ziti).toStrictEqual({
    name: 'ziti-sidecar',
    role: 'sidecar',
    sidecarRole: 'ziti',
    image: 'openziti/ziti-tunnel:2.0.0-pre8',
    state: 'waiting',
    restartCount: 0,
  });
  expect(wait).toStrictEqual({
    name: 'ziti-gateway-wait',
    role: 'init',
    image: 'busybox:1.37.0',
    state: 'waiting',
    restartCount: 0,
  });
});

test('maps running, waiting and terminated states', () => {
  const states = containerStatesFromPod(
    agentPod({
      phase: 'Running',
      initContainerStatuses: [
        {
          name: 'ziti-sidecar',
          image: 'docker.io/openziti/ziti-tunnel:2.0.0-pre8',
          imageID: 'sha256:aa',
          containerID: 'containerd://z1',
          ready: true,
          restartCount: 1,
          started: true,
          state: { running: { startedAt: '2025-01-01T00:00:02Z' } },
        },
        {
          name: 'ziti-gateway-wait',
          image: 'docker.io/library/busybox:1.37.0',
          imageID: 'sha256:bb',
          containerID: 'containerd://w1',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 0,
              reason: 'Completed',
              startedAt: '2025-01-01T00:00:03Z',
              finishedAt: '2025-01-01T00:00:04Z',
            },
          },
        },
        {
          name: 'agent-init',
          image: 'ghcr.io/x/agent-init:1',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 2,
              reason: 'Error',
              message: 'copy failed',
              startedAt: '2025-01-01T00:00:05Z',
              finishedAt: '2025-01-01T00:00:06Z',
            },
          },
        },
      ],
      containerStatuses: [
        {
          name: 'agent',
          image: '',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'PodInitializing', message: '' } },
        },
        {
          name: 'mcp-51aa2b3c',
          image: 'ghcr.io/agynio/files-mcp:latest',
          imageID: '',
          ready: false,
          restartCount: 4,
          state: { waiting: { reason: 'ErrImagePull', message: 'pull access denied' } },
        },
      ],
    }),
    spec,
  );
  expect(states).toStrictEqual([
    {
      name: 'ziti-sidecar',
      role: 'sidecar',
      sidecarRole: 'ziti',
      image: 'docker.io/openziti/ziti-tunnel:2.0.0-pre8',
      state: 'running',
      restartCount: 1,
      containerId: 'containerd://z1',
      startedAt: '2025-01-01T00:00:02Z',
    },
    {
      name: 'ziti-gateway-wait',
      role: 'init',
      image: 'docker.io/library/busybox:1.37.0',
      state: 'terminated',
      restartCount: 0,
      containerId: 'containerd://w1',
      reason: 'Completed',
      exitCode: 0,
      startedAt: '2025-01-01T00:00:03Z',
      finishedAt: '2025-01-01T00:00:04Z',
    },
    {
      name: 'agent-init',
      role: 'init',
      image: 'ghcr.io/x/agent-init:1',
      state: 'terminated',
      restartCount: 0,
      reason: 'Error',
      message: 'copy failed',
      exitCode: 2,
      startedAt: '2025-01-01T00:00:05Z',
      finishedAt: '2025-01-01T00:00:06Z',
    },
    {
      name: 'agent',
      role: 'main',
      image: 'ghcr.io/x/workspace:1',
      state: 'waiting',
      restartCount: 0,
      reason: 'PodInitializing',
    },
    {
      name: 'mcp-51aa2b3c',
      role: 'sidecar',
      sidecarRole: 'mcp',
      image: 'ghcr.io/agynio/files-mcp:latest',
      state: 'waiting',
      restartCount: 4,
      reason: 'ErrImagePull',
      message: 'pull access denied',
    },
    {
      name: 'hook-1',
      role: 'sidecar',
      sidecarRole: 'hook',
      image: 'ghcr.io/x/hook:1',
      state: 'waiting',
      restartCount: 0,
    },
    {
      name: 'docker-daemon',
      role: 'sidecar',
      sidecarRole: 'other',
      image: 'docker:27-dind',
      state: 'waiting',
      restartCount: 0,
    },
  ]);
});

test('an empty state is treated as no status: restart 0, no container id', () => {
  const [, , , main] = containerStatesFromPod(
    agentPod({
      containerStatuses: [
        {
          name: 'agent',
          image: 'docker.io/x/workspace:1',
          imageID: '',
          containerID: 'containerd://m1',
          ready: false,
          restartCount: 3,
          state: {},
        },
      ],
    }),
    spec,
  );
  expect(main).toStrictEqual({
    name: 'agent',
    role: 'main',
    image: 'docker.io/x/workspace:1',
    state: 'waiting',
    restartCount: 0,
  });
});

test('omits zero and null times, blank reasons and messages', () => {
  const pod = {
    spec: { containers: [{ name: 'agent', image: 'w:1' }] },
    status: {
      containerStatuses: [
        {
          name: 'agent',
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 137,
              reason: ' ',
              message: '',
              startedAt: null,
              finishedAt: '0001-01-01T00:00:00Z',
            },
          },
        },
      ],
    },
  } satisfies PodView;
  expect(containerStatesFromPod(pod, { sidecars: [] })).toStrictEqual([
    {
      name: 'agent',
      role: 'main',
      image: 'w:1',
      state: 'terminated',
      restartCount: 0,
      exitCode: 137,
    },
  ]);
});

test('accepts the Date times of @kubernetes/client-node models', () => {
  const pod: V1Pod = {
    spec: { containers: [{ name: 'agent', image: 'w:1' }] },
    status: {
      containerStatuses: [
        {
          name: 'agent',
          image: 'w:1',
          imageID: '',
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: new Date('2025-01-01T00:00:02Z') } },
        },
      ],
    },
  };
  const [main] = containerStatesFromPod(pod, { sidecars: [] });
  expect(main?.startedAt).toBe('2025-01-01T00:00:02Z');
});

test('a native sidecar from spec.initContainers has sidecarRole other', () => {
  const pod: PodView = {
    spec: {
      initContainers: [{ name: 'proxy', image: 'p:1', restartPolicy: 'Always' }],
      containers: [{ name: 'agent', image: 'w:1' }],
    },
  };
  expect(containerStatesFromPod(pod, { sidecars: [] }).map((s) => [s.role, s.sidecarRole])).toEqual(
    [
      ['sidecar', 'other'],
      ['main', undefined],
    ],
  );
});

test('a Pod without a spec has no containers', () => {
  expect(containerStatesFromPod({}, spec)).toEqual([]);
});
