import type { ContainerState } from '../../src/api/agentworkload.ts';
import { DEFAULT_HEALTH } from '../../src/api/runner.ts';
import {
  classifyWorkload,
  type HealthInput,
  type HealthVerdict,
} from '../../src/workload/health.ts';

const T0 = new Date('2025-01-01T00:00:00Z');
const GRACE_MS = 60_000;
const at = (ms: number): Date => new Date(T0.getTime() + ms);

function c(
  role: ContainerState['role'],
  name: string,
  fields: Partial<ContainerState> = {},
): ContainerState {
  return { name, role, image: `${name}:1`, state: 'waiting', restartCount: 0, ...fields };
}
const zitiWaiting = c('sidecar', 'ziti-sidecar', {
  sidecarRole: 'ziti',
  reason: 'PodInitializing',
});
const zitiRunning = c('sidecar', 'ziti-sidecar', { sidecarRole: 'ziti', state: 'running' });
const initDone = c('init', 'agent-init', { state: 'terminated', exitCode: 0, reason: 'Completed' });
const initRunning = c('init', 'agent-init', { state: 'running' });
const initExit = (exitCode: number, restartCount = 0, message?: string): ContainerState =>
  c('init', 'agent-init', {
    state: 'terminated',
    exitCode,
    reason: 'Error',
    restartCount,
    message,
  });
const initCrashLoop = (restartCount: number): ContainerState =>
  c('init', 'agent-init', {
    reason: 'CrashLoopBackOff',
    message: 'back-off 20s restarting failed container=agent-init',
    restartCount,
  });
const mainPending = c('main', 'agent', { reason: 'PodInitializing' });
const mainRunning = c('main', 'agent', { state: 'running', startedAt: '2025-01-01T00:00:05Z' });
const mainWaiting = (reason: string, message?: string, restartCount = 0): ContainerState =>
  c('main', 'agent', { reason, message, restartCount });
const mainExit = (exitCode: number, reason = 'Error', restartCount = 0): ContainerState =>
  c('main', 'agent', { state: 'terminated', exitCode, reason, restartCount });
const mcpPulling = c('sidecar', 'mcp', { sidecarRole: 'mcp', reason: 'ImagePullBackOff' });

function input(overrides: Partial<HealthInput>): HealthInput {
  return {
    containers: [zitiRunning, initDone, mainPending],
    podPhase: 'Pending',
    podExists: true,
    startTime: T0,
    now: at(10_000),
    thresholds: DEFAULT_HEALTH,
    restartPolicy: 'Never',
    wasRunning: false,
    ...overrides,
  };
}

const starting = (recheckAfterMs: number): HealthVerdict => ({ phase: 'Starting', recheckAfterMs });
const failed = (reason: HealthVerdict['reason'], message: string): HealthVerdict => ({
  phase: 'Failed',
  reason,
  message,
});

test('the defaults the table relies on', () => {
  expect(DEFAULT_HEALTH).toEqual({
    startGraceSeconds: 60,
    initRetryThreshold: 3,
    crashloopThreshold: 3,
    runtimeLostGraceSeconds: 30,
  });
});

const cases: Array<[string, Partial<HealthInput>, HealthVerdict]> = [
  // ── starting: waiting within and past the grace
  [
    'nothing has a status yet',
    { containers: [c('init', 'agent-init'), c('main', 'agent')] },
    starting(50_000),
  ],
  ['1 ms before the grace runs out', { now: at(GRACE_MS - 1) }, starting(1)],
  [
    'grace runs out, a container says why',
    { now: at(GRACE_MS), containers: [zitiRunning, initRunning, mainPending] },
    failed('start_failed', 'not Running after 60s: init container "agent-init" is running'),
  ],
  [
    'grace runs out, the Pod says why (unschedulable)',
    {
      now: at(GRACE_MS),
      containers: [c('init', 'agent-init'), c('main', 'agent')],
      podReason: 'Unschedulable',
      podMessage: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.',
    },
    failed(
      'start_failed',
      'not Running after 60s: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.',
    ),
  ],
  [
    'grace runs out, nothing says why',
    { now: at(GRACE_MS), containers: [c('init', 'agent-init'), c('main', 'agent')] },
    failed('start_failed', 'not Running after 60s: init container "agent-init" is waiting'),
  ],
  [
    'grace runs out, main still creating',
    { now: at(GRACE_MS + 5_000), containers: [initDone, mainWaiting('ContainerCreating')] },
    failed(
      'start_failed',
      'not Running after 60s: main container "agent" is waiting: ContainerCreating',
    ),
  ],
  [
    'custom grace',
    { now: at(20_000), thresholds: { ...DEFAULT_HEALTH, startGraceSeconds: 30 } },
    starting(10_000),
  ],

  // ── image pull errors
  [
    'init ErrImagePull before the grace',
    {
      now: at(GRACE_MS - 1),
      containers: [c('init', 'agent-init', { reason: 'ErrImagePull' }), mainPending],
    },
    starting(1),
  ],
  [
    'init ErrImagePull at the grace',
    {
      now: at(GRACE_MS),
      containers: [c('init', 'agent-init', { reason: 'ErrImagePull' }), mainPending],
    },
    failed('image_pull_failed', 'init container "agent-init" cannot pull its image: ErrImagePull'),
  ],
  [
    'main ImagePullBackOff past the grace, with its message',
    {
      now: at(GRACE_MS + 1),
      containers: [
        initDone,
        mainWaiting('ImagePullBackOff', 'Back-off pulling image "ghcr.io/x/ws:1"'),
      ],
    },
    failed(
      'image_pull_failed',
      'main container "agent" cannot pull its image: Back-off pulling image "ghcr.io/x/ws:1"',
    ),
  ],
  [
    'native sidecar ImagePullBackOff past the grace',
    {
      now: at(GRACE_MS),
      containers: [
        c('sidecar', 'ziti-sidecar', { sidecarRole: 'ziti', reason: 'ImagePullBackOff' }),
        c('init', 'agent-init'),
        mainPending,
      ],
    },
    failed(
      'image_pull_failed',
      'sidecar container "ziti-sidecar" cannot pull its image: ImagePullBackOff',
    ),
  ],
  [
    'pull errors win over config errors',
    {
      now: at(GRACE_MS),
      containers: [initDone, mainWaiting('CreateContainerConfigError'), mcpPulling],
    },
    failed('image_pull_failed', 'sidecar container "mcp" cannot pull its image: ImagePullBackOff'),
  ],

  // ── configuration errors
  ...(['CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName'] as const).flatMap(
    (reason): Array<[string, Partial<HealthInput>, HealthVerdict]> => [
      [
        `${reason} before the grace`,
        { now: at(GRACE_MS - 1), containers: [initDone, mainWaiting(reason)] },
        starting(1),
      ],
      [
        `${reason} at the grace`,
        { now: at(GRACE_MS), containers: [initDone, mainWaiting(reason, `bad ${reason}`)] },
        failed('config_invalid', `main container "agent" cannot be created: bad ${reason}`),
      ],
    ],
  ),

  // ── init containers
  [
    'Never: init exits non-zero → start_failed at once',
    { containers: [zitiRunning, initExit(2, 0, 'boom'), mainPending], podPhase: 'Failed' },
    failed('start_failed', 'init container "agent-init" exited with code 2: boom'),
  ],
  [
    'Never: init exits non-zero, Pod phase not yet updated',
    { containers: [initExit(2), mainPending] },
    failed('start_failed', 'init container "agent-init" exited with code 2: Error'),
  ],
  ['Never: init exits 0, main pending', { containers: [initDone, mainPending] }, starting(50_000)],
  ['init still running', { containers: [zitiRunning, initRunning, mainPending] }, starting(50_000)],
  [
    'OnFailure: init exited non-zero, restarts below the threshold',
    { restartPolicy: 'OnFailure', containers: [initExit(1, 2), mainPending] },
    starting(50_000),
  ],
  [
    'OnFailure: init exited non-zero, restarts at the threshold',
    { restartPolicy: 'OnFailure', containers: [initExit(1, 3), mainPending] },
    failed('start_failed', 'init container "agent-init" exited with code 1: Error'),
  ],
  [
    'Always: init in CrashLoopBackOff below the threshold',
    { restartPolicy: 'Always', containers: [initCrashLoop(2), mainPending] },
    starting(50_000),
  ],
  [
    'Always: init in CrashLoopBackOff at the threshold',
    { restartPolicy: 'Always', containers: [initCrashLoop(3), mainPending] },
    failed(
      'start_failed',
      'init container "agent-init" is in CrashLoopBackOff after 3 restarts: back-off 20s restarting failed container=agent-init',
    ),
  ],
  [
    'custom init threshold',
    {
      restartPolicy: 'OnFailure',
      thresholds: { ...DEFAULT_HEALTH, initRetryThreshold: 1 },
      containers: [initExit(1, 1), mainPending],
    },
    failed('start_failed', 'init container "agent-init" exited with code 1: Error'),
  ],

  // ── main container while starting
  [
    'Never: main exits non-zero before Running',
    { containers: [initDone, mainExit(1)], podPhase: 'Failed' },
    failed('start_failed', 'main container "agent" exited with code 1: Error'),
  ],
  [
    'Never: main exits 0 before Running is still a failed start',
    { containers: [initDone, mainExit(0, 'Completed')], podPhase: 'Running' },
    failed('start_failed', 'main container "agent" exited with code 0: Completed'),
  ],
  [
    'OnFailure: main exited non-zero, the kubelet restarts it',
    { restartPolicy: 'OnFailure', containers: [initDone, mainExit(1)] },
    starting(50_000),
  ],
  [
    'OnFailure: main exited 0, never restarted',
    { restartPolicy: 'OnFailure', containers: [initDone, mainExit(0, 'Completed')] },
    failed('start_failed', 'main container "agent" exited with code 0: Completed'),
  ],
  [
    'Always: main exited 0, the kubelet restarts it',
    { restartPolicy: 'Always', containers: [initDone, mainExit(0, 'Completed')] },
    starting(50_000),
  ],
  [
    'Always: main CrashLoopBackOff below the threshold',
    {
      restartPolicy: 'Always',
      containers: [initDone, mainWaiting('CrashLoopBackOff', undefined, 2)],
    },
    starting(50_000),
  ],
  [
    'Always: main CrashLoopBackOff at the threshold',
    {
      restartPolicy: 'Always',
      containers: [initDone, mainWaiting('CrashLoopBackOff', undefined, 3)],
    },
    failed(
      'crashloop',
      'main container "agent" is in CrashLoopBackOff after 3 restarts: CrashLoopBackOff',
    ),
  ],

  // ── reaching Running
  [
    'inits done, main running',
    { containers: [zitiRunning, initDone, mainRunning] },
    { phase: 'Running' },
  ],
  [
    'native sidecar not running does not block Running',
    { containers: [zitiWaiting, initDone, mainRunning] },
    { phase: 'Running' },
  ],
  [
    'regular sidecar failing to pull does not block Running',
    { now: at(GRACE_MS * 2), containers: [initDone, mainRunning, mcpPulling] },
    { phase: 'Running' },
  ],
  ['no init containers', { containers: [mainRunning] }, { phase: 'Running' }],
  [
    'main running past the grace',
    { now: at(GRACE_MS * 5), containers: [initDone, mainRunning], podPhase: 'Running' },
    { phase: 'Running' },
  ],

  // ── while running
  [
    'running, main runs',
    { wasRunning: true, containers: [initDone, mainRunning] },
    { phase: 'Running' },
  ],
  [
    'running: the start grace no longer applies',
    {
      wasRunning: true,
      now: at(GRACE_MS * 10),
      containers: [initDone, mainWaiting('ContainerCreating')],
    },
    { phase: 'Running' },
  ],
  [
    'Never: main exits 0 after Running → Stopped',
    { wasRunning: true, containers: [initDone, mainExit(0, 'Completed')], podPhase: 'Running' },
    { phase: 'Stopped', message: 'main container "agent" exited with code 0: Completed' },
  ],
  [
    'Never: main exits non-zero after Running → crashloop',
    { wasRunning: true, containers: [initDone, mainExit(137, 'OOMKilled')], podPhase: 'Failed' },
    failed('crashloop', 'main container "agent" exited with code 137: OOMKilled'),
  ],
  [
    'Never: Pod Succeeded after Running → Stopped',
    { wasRunning: true, containers: [initDone, mainExit(0, 'Completed')], podPhase: 'Succeeded' },
    { phase: 'Stopped', message: 'main container "agent" exited with code 0: Completed' },
  ],
  [
    'OnFailure: main exited non-zero after Running, restarted by the kubelet',
    { wasRunning: true, restartPolicy: 'OnFailure', containers: [initDone, mainExit(1)] },
    { phase: 'Running' },
  ],
  [
    'OnFailure: main exited 0 after Running → Stopped',
    {
      wasRunning: true,
      restartPolicy: 'OnFailure',
      containers: [initDone, mainExit(0, 'Completed')],
    },
    { phase: 'Stopped', message: 'main container "agent" exited with code 0: Completed' },
  ],
  [
    'Always: main exited 0 after Running, restarted by the kubelet',
    { wasRunning: true, restartPolicy: 'Always', containers: [initDone, mainExit(0, 'Completed')] },
    { phase: 'Running' },
  ],
  [
    'OnFailure: a failed exit during the restart back-off, below the threshold while running',
    {
      wasRunning: true,
      restartPolicy: 'OnFailure',
      containers: [initDone, mainExit(1, 'Error', 2)],
    },
    { phase: 'Running' },
  ],
  [
    'OnFailure: a failed exit during the restart back-off, at the threshold while running (real kubelet)',
    {
      wasRunning: true,
      restartPolicy: 'OnFailure',
      containers: [initDone, mainExit(1, 'Error', 3)],
    },
    failed('crashloop', 'main container "agent" exited with code 1 after 3 restarts: Error'),
  ],
  [
    'OnFailure: crashing before ever Running, at the threshold (real kubelet)',
    { restartPolicy: 'OnFailure', containers: [initDone, mainExit(2, 'Error', 3)] },
    failed('crashloop', 'main container "agent" exited with code 2 after 3 restarts: Error'),
  ],
  [
    'Always: CrashLoopBackOff below the threshold while running',
    {
      wasRunning: true,
      restartPolicy: 'Always',
      containers: [initDone, mainWaiting('CrashLoopBackOff', 'back-off 10s', 2)],
    },
    { phase: 'Running' },
  ],
  [
    'Always: CrashLoopBackOff at the threshold while running',
    {
      wasRunning: true,
      restartPolicy: 'Always',
      containers: [initDone, mainWaiting('CrashLoopBackOff', 'back-off 40s', 3)],
    },
    failed(
      'crashloop',
      'main container "agent" is in CrashLoopBackOff after 3 restarts: back-off 40s',
    ),
  ],
  [
    'custom crashloop threshold',
    {
      wasRunning: true,
      restartPolicy: 'Always',
      thresholds: { ...DEFAULT_HEALTH, crashloopThreshold: 5 },
      containers: [initDone, mainWaiting('CrashLoopBackOff', undefined, 4)],
    },
    { phase: 'Running' },
  ],
  [
    'running: the Pod failed without a main container exit',
    {
      wasRunning: true,
      containers: [initDone, mainRunning],
      podPhase: 'Failed',
      podReason: 'UnexpectedAdmissionError',
    },
    failed('runtime_lost', 'the Pod failed: UnexpectedAdmissionError'),
  ],

  // ── terminal Pod phases while starting
  [
    'Never: Pod Succeeded before Running is consistent with the main-exit rule',
    { containers: [initDone, mainExit(0, 'Completed')], podPhase: 'Succeeded' },
    failed('start_failed', 'main container "agent" exited with code 0: Completed'),
  ],
  [
    'OnFailure: a Failed Pod makes an init exit final below the threshold',
    { restartPolicy: 'OnFailure', containers: [initExit(1, 1), mainPending], podPhase: 'Failed' },
    failed('start_failed', 'init container "agent-init" exited with code 1: Error'),
  ],
  [
    'starting: the Pod failed at admission',
    {
      containers: [c('main', 'agent')],
      podPhase: 'Failed',
      podReason: 'OutOfcpu',
      podMessage: "Node didn't have enough resource: cpu",
    },
    failed(
      'start_failed',
      "the Pod failed before Running: OutOfcpu: Node didn't have enough resource: cpu",
    ),
  ],
  [
    'the Pod was evicted',
    {
      wasRunning: true,
      containers: [initDone, mainExit(137)],
      podPhase: 'Failed',
      podReason: 'Evicted',
      podMessage: 'The node was low on resource: memory.',
    },
    failed('runtime_lost', 'the Pod was lost: Evicted: The node was low on resource: memory.'),
  ],

  // ── the Pod is missing
  [
    'starting, Pod missing within the grace',
    { podExists: false, podMissingSince: at(10_000), now: at(39_999) },
    starting(1),
  ],
  [
    'starting, Pod missing at the grace',
    { podExists: false, podMissingSince: at(10_000), now: at(40_000) },
    failed(
      'runtime_lost',
      'the Pod has been missing since 2025-01-01T00:00:10.000Z (deleted, evicted or its node is gone)',
    ),
  ],
  [
    'running, Pod missing within the grace (stale containers ignored)',
    {
      wasRunning: true,
      podExists: false,
      podMissingSince: at(100_000),
      now: at(110_000),
      containers: [mainExit(1)],
    },
    { phase: 'Running', recheckAfterMs: 20_000 },
  ],
  [
    'running, Pod missing past the grace',
    { wasRunning: true, podExists: false, podMissingSince: at(100_000), now: at(131_000) },
    failed(
      'runtime_lost',
      'the Pod has been missing since 2025-01-01T00:01:40.000Z (deleted, evicted or its node is gone)',
    ),
  ],
  [
    'Pod missing, first noticed now',
    { wasRunning: true, podExists: false, now: at(200_000) },
    { phase: 'Running', recheckAfterMs: 30_000 },
  ],
  [
    'Pod missing with a zero grace',
    {
      podExists: false,
      podMissingSince: at(5_000),
      now: at(5_000),
      thresholds: { ...DEFAULT_HEALTH, runtimeLostGraceSeconds: 0 },
    },
    failed(
      'runtime_lost',
      'the Pod has been missing since 2025-01-01T00:00:05.000Z (deleted, evicted or its node is gone)',
    ),
  ],
];

test.each(cases)('%s', (_name, overrides, expected) => {
  expect(classifyWorkload(input(overrides))).toEqual(expected);
});

test('a Starting verdict always carries the time to the grace deadline', () => {
  for (const ms of [0, 1, 30_000, GRACE_MS - 1]) {
    expect(classifyWorkload(input({ now: at(ms) })).recheckAfterMs).toBe(GRACE_MS - ms);
  }
});
