import type { AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import type { Pod, Pvc, Secret, Workload } from '../../src/workload/caches.ts';
import {
  decide,
  EXPECTED_POD_WAIT_MS,
  refusedStatus,
  STARTING_MESSAGE,
  TTL_AFTER_STOPPED_ANNOTATION,
  type Decision,
  type WorkloadFacts,
} from '../../src/workload/decide.ts';
import { desiredPod, POD_ANNOTATION_PREFIXES } from '../../src/workload/desired-pod.ts';
import { ACCESS_RECHECK_MS } from '../../src/workload/access-gate.ts';
import {
  DEFAULT_RUNNER_SETTINGS,
  type RunnerSettings,
} from '../../src/workload/runner-settings.ts';
import type { PlacementDecision } from '../../src/workload/seams.ts';
import { minimalWorkloadSpec } from '../fixtures/agent-workload-example.ts';

const NOW = new Date('2025-01-01T00:10:00Z');
const ID = 'w-1';
const RUNNER: RunnerSettings = { ...DEFAULT_RUNNER_SETTINGS, name: 'r1' };
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

function workload(edit: (w: Workload) => void = () => {}): Workload {
  const w: Workload = {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: 'wl', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '5' },
    spec: { ...minimalWorkloadSpec(), workloadId: ID },
  };
  edit(w);
  return w;
}

function status(fields: AgentWorkloadStatus): (w: Workload) => void {
  return (w) => (w.status = { observedGeneration: 1, runner: 'r1', ...fields });
}

/** The Pod the workload should have, as the cache would show it. */
function podOf(w: Workload, edit: (p: Pod) => void = () => {}): Pod {
  const pod = structuredClone(desiredPod(w, RUNNER, ID, POD_ANNOTATION_PREFIXES)) as Pod;
  pod.metadata = { ...pod.metadata, uid: 'pod-uid', creationTimestamp: ago(1_000).toISOString() };
  edit(pod);
  return pod;
}

const running = (p: Pod): void => {
  p.spec = { ...p.spec!, nodeName: 'node-1' };
  p.status = {
    phase: 'Running',
    containerStatuses: [
      {
        name: 'main',
        image: 'alpine:3.20',
        imageID: '',
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: ago(30_000).toISOString() } },
      },
    ],
  };
};

interface Directory {
  placement?: PlacementDecision;
  known?: boolean;
  notReadySince?: Date;
}

function facts(
  w: Workload,
  more: Partial<WorkloadFacts> & { directory?: Directory } = {},
): WorkloadFacts {
  const { directory = {}, ...rest } = more;
  return {
    workload: w,
    workloadId: ID,
    claims: new Map<string, Pvc>(),
    secrets: new Map<string, Secret>(),
    runners: {
      place: () => directory.placement ?? { placed: true, runner: RUNNER },
      settings: (name) => (directory.known === false || name !== 'r1' ? undefined : RUNNER),
      notReadySince: () => directory.notReadySince,
    },
    now: NOW,
    podAnnotationPrefixes: POD_ANNOTATION_PREFIXES,
    secretAccess: { ok: true },
    ...rest,
  };
}

interface Row {
  name: string;
  facts: WorkloadFacts;
  phase?: string;
  reason?: string;
  message?: string | RegExp;
  actions: string[];
  requeueAfterMs?: number;
  needs?: Decision['needs'];
}

/** Longer than the runner's runtime-lost grace. */
const LOST_MS = RUNNER.health.runtimeLostGraceSeconds * 1000 + 1_000;
const stoppedWorkload = workload((w) => (w.spec.stopped = true));
const startedWorkload = workload(
  status({ phase: 'Running', startTime: ago(60_000).toISOString(), workloadId: ID, podName: 'wl' }),
);
/** Starting since longer ago than the runner's start grace. */
const startingWorkload = workload(
  status({
    phase: 'Starting',
    startTime: ago(RUNNER.health.startGraceSeconds * 1000 + 1_000).toISOString(),
    workloadId: ID,
    podName: 'wl',
  }),
);
const waiting = (p: Pod): void => {
  p.spec = { ...p.spec!, nodeName: 'node-1' };
  p.status = {
    phase: 'Pending',
    containerStatuses: [
      {
        name: 'main',
        image: 'alpine:3.20',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating' } },
      },
    ],
  };
};
/** Stopped (with a 60 s TTL) since `ms` ago. */
const stoppedFor = (ms: number): Workload =>
  workload((w) => {
    w.spec.stopped = true;
    w.metadata.annotations = { [TTL_AFTER_STOPPED_ANNOTATION]: '60' };
    const lastTransitionTime = ago(ms).toISOString();
    const settled = {
      type: 'Reconciling',
      status: 'False' as const,
      reason: 'Stopped',
      message: '',
    };
    status({ phase: 'Stopped', conditions: [{ ...settled, lastTransitionTime }] })(w);
  });
const stoppedLongAgo = stoppedFor(120_000);
const stoppedRecently = stoppedFor(20_000);
const fresh = workload();
const withClaim = workload((w) => (w.spec.volumes = [{ name: 'data', kind: 'Persistent' }]));
const foreignClaim: Pvc = {
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: { name: 'data', namespace: 'ns', labels: { 'agyn.io/workload-id': 'other' } },
};
const ownSecret: Secret = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {
    name: 'wl-pull',
    namespace: 'ns',
    labels: { 'agyn.io/workload-id': ID },
    resourceVersion: '1',
  },
};

const rows: Row[] = [
  {
    name: 'stopped, Pod exists: delete it, Stopping',
    facts: facts(stoppedWorkload, { pod: podOf(stoppedWorkload) }),
    phase: 'Stopping',
    message: 'deleting the Pod',
    actions: ['deletePod'],
  },
  {
    name: 'stopped, Pod already deleting: Stopping, no action',
    facts: facts(stoppedWorkload, {
      pod: podOf(stoppedWorkload, (p) => (p.metadata!.deletionTimestamp = NOW.toISOString())),
    }),
    phase: 'Stopping',
    actions: [],
  },
  {
    name: 'stopped, no Pod: Stopped',
    facts: facts(stoppedWorkload),
    phase: 'Stopped',
    message: 'stopped',
    actions: [],
  },
  {
    name: 'stopped past its TTL: delete the workload',
    facts: facts(stoppedLongAgo),
    phase: 'Stopped',
    actions: ['deleteWorkload'],
  },
  {
    name: 'stopped within its TTL: look again when it ends',
    facts: facts(stoppedRecently),
    phase: 'Stopped',
    actions: [],
    requeueAfterMs: 40_000,
  },
  {
    name: 'Failed in this generation: stays Failed',
    facts: facts(workload(status({ phase: 'Failed', reason: 'config_invalid', message: 'bad' }))),
    phase: 'Failed',
    reason: 'config_invalid',
    actions: [],
  },
  {
    name: 'no Runner fits: Pending, not placed',
    facts: facts(fresh, {
      directory: {
        placement: { placed: false, filter: 'capabilities', message: 'no Runner has gpu' },
      },
    }),
    phase: 'Pending',
    message: 'no Runner has gpu',
    actions: [],
  },
  {
    name: 'Runner not Ready past the grace: Failed runtime_lost',
    facts: facts(startedWorkload, { directory: { notReadySince: ago(120_000) } }),
    phase: 'Failed',
    reason: 'runtime_lost',
    actions: [],
  },
  {
    name: 'Runner gone within the grace: wait for it',
    facts: facts(startedWorkload, { directory: { known: false, notReadySince: ago(10_000) } }),
    phase: 'Running',
    actions: [],
    requeueAfterMs: 20_000,
  },
  {
    name: 'Runner does not exist: Pending',
    facts: facts(workload(status({ phase: 'Pending' })), { directory: { known: false } }),
    phase: 'Pending',
    message: 'Runner "r1" does not exist',
    actions: [],
  },
  {
    name: 'spec the Pod builder refuses: Failed config_invalid',
    facts: facts(workload((w) => (w.spec.labels = { 'bad key!': 'x' }))),
    phase: 'Failed',
    reason: 'config_invalid',
    actions: [],
  },
  {
    name: 'cached Pod of another owner: read it live first (the cache may lag)',
    facts: facts(fresh, { pod: podOf(fresh, (p) => (p.metadata!.ownerReferences = [])) }),
    actions: [],
    needs: 'podLive',
  },
  {
    name: 'live Pod of another owner: Failed config_invalid',
    facts: facts(fresh, {
      pod: podOf(fresh, (p) => (p.metadata!.ownerReferences = [])),
      podLive: true,
    }),
    phase: 'Failed',
    reason: 'config_invalid',
    message: /belongs to another owner/,
    actions: [],
  },
  {
    name: 'live Pod of a deleted workload of the same name: wait for the garbage collector',
    facts: facts(fresh, {
      pod: podOf(fresh, (p) => (p.metadata!.ownerReferences![0]!.uid = 'old')),
      podLive: true,
    }),
    phase: 'Pending',
    message: /waiting for Pod "wl" of a deleted workload/,
    actions: [],
    requeueAfterMs: 1_000,
  },
  {
    name: 'live Pod of another owner being deleted: wait for it to go',
    facts: facts(fresh, {
      pod: podOf(fresh, (p) => {
        p.metadata!.ownerReferences = [];
        p.metadata!.deletionTimestamp = ago(1_000).toISOString();
      }),
      podLive: true,
    }),
    phase: 'Pending',
    actions: [],
    requeueAfterMs: 1_000,
  },
  {
    name: 'cached Pod still waiting past the start grace: read it live first',
    facts: facts(startingWorkload, { pod: podOf(startingWorkload, waiting) }),
    actions: [],
    needs: 'podLive',
  },
  {
    name: 'live Pod still waiting past the start grace: Failed start_failed',
    facts: facts(startingWorkload, { pod: podOf(startingWorkload, waiting), podLive: true }),
    phase: 'Failed',
    reason: 'start_failed',
    actions: [],
  },
  {
    name: 'cached Pod waiting past the start grace, live one running: Running',
    facts: facts(startingWorkload, { pod: podOf(startingWorkload, running), podLive: true }),
    phase: 'Running',
    actions: [],
  },
  {
    name: 'Pod created, not cached yet: wait for it',
    facts: facts(fresh, { podExpectedSince: NOW.getTime() - 1_000 }),
    phase: 'Pending',
    actions: [],
    requeueAfterMs: 1_000,
  },
  {
    name: 'Pod lost while Running: still Running within the grace',
    facts: facts(startedWorkload, { podMissingSince: ago(1_000) }),
    phase: 'Running',
    actions: [],
    requeueAfterMs: RUNNER.health.runtimeLostGraceSeconds * 1000 - 1_000,
  },
  {
    name: 'Pod missing from the cache past the grace: ask the API server first',
    facts: facts(startedWorkload, { podMissingSince: ago(LOST_MS) }),
    actions: [],
    needs: 'podLive',
  },
  {
    name: 'Pod missing from the cache but live on the API server: its status, no failure',
    facts: facts(startedWorkload, {
      podMissingSince: ago(LOST_MS),
      pod: podOf(startedWorkload, running),
      podLive: true,
    }),
    phase: 'Running',
    actions: [],
  },
  {
    name: 'Pod gone on the API server past the grace: Failed runtime_lost',
    facts: facts(startedWorkload, { podMissingSince: ago(LOST_MS), podLive: true }),
    phase: 'Failed',
    reason: 'runtime_lost',
    actions: [],
  },
  {
    name: 'cached claim of another workload: read the claims live first (a grant may be on its way)',
    facts: facts(withClaim, { claims: new Map([['data', foreignClaim]]) }),
    actions: [],
    needs: 'claimsLive',
  },
  {
    name: 'live claim of another workload: Failed config_invalid',
    facts: facts(withClaim, { claims: new Map([['data', foreignClaim]]), claimsLive: true }),
    phase: 'Failed',
    reason: 'config_invalid',
    message: /volume_not_allowed/,
    actions: [],
  },
  {
    name: 'Secrets not checked yet: ask for them',
    facts: facts(fresh, { secretAccess: undefined }),
    actions: [],
    needs: 'secretAccess',
  },
  {
    name: 'referenced Secret missing: Pending, look again',
    facts: facts(fresh, {
      secretAccess: {
        ok: false,
        final: false,
        field: 'spec.imagePullSecretRef.name',
        message: 'waiting for Secret',
      },
    }),
    phase: 'Pending',
    message: 'waiting for Secret',
    actions: [],
    requeueAfterMs: ACCESS_RECHECK_MS,
  },
  {
    name: 'referenced Secret of another workload: Failed',
    facts: facts(fresh, {
      secretAccess: {
        ok: false,
        final: true,
        field: 'spec.imagePullSecretRef.name',
        message: 'secret_not_allowed',
      },
    }),
    phase: 'Failed',
    reason: 'config_invalid',
    actions: [],
  },
  {
    name: 'no Pod: create it (with its claims), Starting',
    facts: facts(fresh),
    phase: 'Starting',
    message: STARTING_MESSAGE,
    actions: ['createPod'],
    requeueAfterMs: RUNNER.health.startGraceSeconds * 1000,
  },
  {
    name: 'Pod unscheduled: its claims are ensured',
    facts: facts(fresh, { pod: podOf(fresh) }),
    phase: 'Starting',
    actions: ['ensureClaims'],
    requeueAfterMs: RUNNER.health.startGraceSeconds * 1000 - 1_000,
  },
  {
    name: 'Pod of an older spec: replace it',
    facts: facts(fresh, {
      pod: podOf(fresh, (p) => {
        running(p);
        p.metadata!.annotations = {};
      }),
    }),
    phase: 'Starting',
    message: 'replacing the Pod after a spec change',
    actions: ['deletePod'],
  },
  {
    name: 'Pod running: Running',
    facts: facts(fresh, { pod: podOf(fresh, running) }),
    phase: 'Running',
    message: 'all containers running',
    actions: [],
  },
  {
    name: 'its own Secret not adopted yet: adopt it',
    facts: facts(stoppedWorkload, { secrets: new Map([['wl-pull', ownSecret]]) }),
    phase: 'Stopped',
    actions: ['adoptSecret'],
  },
];

describe('decide', () => {
  it.each(rows)('$name', (row) => {
    const decision = decide(row.facts);
    expect(decision.actions.map((a) => a.kind)).toEqual(row.actions);
    expect(decision.needs).toBe(row.needs);
    if (row.phase !== undefined) expect(decision.status.phase).toBe(row.phase);
    if (row.reason !== undefined) expect(decision.status.reason).toBe(row.reason);
    if (typeof row.message === 'string') expect(decision.status.message).toBe(row.message);
    if (row.message instanceof RegExp) expect(decision.status.message).toMatch(row.message);
    expect(decision.requeueAfterMs).toBe(row.requeueAfterMs);
  });

  it('remembers when a Pod went missing, and forgets it once the workload failed', () => {
    const since = ago(1_000);
    expect(decide(facts(startedWorkload, { podMissingSince: since })).podMissingSince).toBe(since);
    const failed = decide(
      facts(startedWorkload, { podMissingSince: ago(10 * 60_000), podLive: true }),
    );
    expect(failed.status.phase).toBe('Failed');
    expect(failed.podMissingSince).toBeNull();
  });

  it('stops waiting for an expected Pod after EXPECTED_POD_WAIT_MS and creates it again', () => {
    const decision = decide(
      facts(fresh, { podExpectedSince: NOW.getTime() - EXPECTED_POD_WAIT_MS }),
    );
    expect(decision.actions.map((a) => a.kind)).toEqual(['createPod']);
    expect(decision.forgetExpectedPod).toBe(true);
  });

  it('a refused creation fails the workload from the status it had before Starting', () => {
    const decision = decide(facts(fresh));
    const create = decision.actions.find((a) => a.kind === 'createPod');
    expect(create?.kind).toBe('createPod');
    if (create?.kind !== 'createPod') return;
    const refused = refusedStatus(create.unstarted, 'refused');
    expect(refused).toMatchObject({
      phase: 'Failed',
      reason: 'config_invalid',
      message: 'refused',
    });
    expect(refused.startTime).toBeUndefined();
  });
});
