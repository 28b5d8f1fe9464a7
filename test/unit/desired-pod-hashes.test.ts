import { describe, expect, test } from '@jest/globals';
import type { Pod, Pvc, Secret, Workload } from '../../src/workload/caches.ts';
import { decide, type WorkloadFacts } from '../../src/workload/decide.ts';
import {
  desiredPod,
  POD_ANNOTATION_PREFIXES,
  POD_SPEC_HASH_ANNOTATION,
} from '../../src/workload/desired-pod.ts';
import { DesiredPodHashes } from '../../src/workload/desired-pod-hashes.ts';
import {
  DEFAULT_RUNNER_SETTINGS,
  type RunnerSettings,
} from '../../src/workload/runner-settings.ts';
import { minimalWorkloadSpec } from '../fixtures/agent-workload-example.ts';

const ID = 'w-1';
const RUNNER: RunnerSettings = { ...DEFAULT_RUNNER_SETTINGS, name: 'r1' };

function workload(edit: (w: Workload) => void = () => {}): Workload {
  const w: Workload = {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: 'wl', namespace: 'ns', uid: 'uid-1', generation: 1, resourceVersion: '5' },
    spec: { ...minimalWorkloadSpec(), workloadId: ID },
    status: { observedGeneration: 1, runner: 'r1', phase: 'Running', workloadId: ID },
  };
  edit(w);
  return w;
}

function livePodOf(w: Workload, runner = RUNNER): Pod {
  const pod = structuredClone(desiredPod(w, runner, ID, POD_ANNOTATION_PREFIXES)) as Pod;
  pod.metadata = { ...pod.metadata, uid: 'pod-uid', creationTimestamp: '2025-01-01T00:00:00Z' };
  pod.spec = { ...pod.spec!, nodeName: 'node-1' };
  return pod;
}

function facts(w: Workload, pod: Pod | undefined, hashes: DesiredPodHashes, runner = RUNNER) {
  return {
    workload: w,
    workloadId: ID,
    pod,
    claims: new Map<string, Pvc>(),
    secrets: new Map<string, Secret>(),
    runners: {
      place: () => ({ placed: true as const, runner }),
      settings: () => runner,
      notReadySince: () => undefined,
    },
    now: new Date('2025-01-01T00:10:00Z'),
    podAnnotationPrefixes: POD_ANNOTATION_PREFIXES,
    desiredPodHashes: hashes,
    secretAccess: { ok: true },
  } satisfies WorkloadFacts;
}

const kinds = (f: WorkloadFacts): string[] => decide(f).actions.map((a) => a.kind);

describe('DesiredPodHashes in decide()', () => {
  test('a live Pod is compared with the remembered hash, not a Pod built again', () => {
    const hashes = new DesiredPodHashes();
    const w = workload();
    const pod = livePodOf(w);
    expect(kinds(facts(w, pod, hashes))).toEqual([]);
    // What decide() remembered is what it compares with: a different remembered hash means
    // the Pod no longer matches (a rebuild would find it matching).
    const inputs = {
      workload: w,
      runner: RUNNER,
      workloadId: ID,
      annotationPrefixes: POD_ANNOTATION_PREFIXES,
    };
    expect(hashes.known(inputs)).toBe(pod.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION]);
    const other = structuredClone(pod);
    other.metadata!.annotations![POD_SPEC_HASH_ANNOTATION] = 'remembered';
    hashes.remember(inputs, other);
    expect(kinds(facts(w, pod, hashes))).toEqual(['deletePod']);
  });

  test('a new generation, passed-through annotation or runner settings object is built again', () => {
    const w = workload();
    const pod = livePodOf(w);
    const changes: Array<[string, (h: DesiredPodHashes) => WorkloadFacts]> = [
      [
        'generation (spec changed)',
        (h) =>
          facts(
            workload((x) => {
              x.metadata.generation = 2;
              x.spec.main.image = 'alpine:3.21';
            }),
            pod,
            h,
          ),
      ],
      [
        'passed-through annotation',
        (h) =>
          facts(
            workload((x) => (x.metadata.annotations = { 'pod.agyn.io/team': 'b' })),
            pod,
            h,
          ),
      ],
      ['runner settings', (h) => facts(w, pod, h, { ...RUNNER, pullSecrets: ['regcred'] })],
    ];
    for (const [what, changed] of changes) {
      const hashes = new DesiredPodHashes();
      expect(kinds(facts(w, pod, hashes))).toEqual([]);
      expect({ what, actions: kinds(changed(hashes)) }).toEqual({ what, actions: ['deletePod'] });
    }
  });

  test('an entry holds only for the uid, name, id and prefixes it was built for', () => {
    const hashes = new DesiredPodHashes();
    const w = workload();
    decide(facts(w, livePodOf(w), hashes));
    const inputs = {
      workload: w,
      runner: RUNNER,
      workloadId: ID,
      annotationPrefixes: POD_ANNOTATION_PREFIXES,
    };
    expect(hashes.known(inputs)).toBeDefined();
    const recreated = workload((x) => (x.metadata.uid = 'uid-2'));
    expect(hashes.known({ ...inputs, workload: recreated })).toBeUndefined();
    expect(hashes.known({ ...inputs, workloadId: 'w-2' })).toBeUndefined();
    expect(hashes.known({ ...inputs, annotationPrefixes: ['other/'] })).toBeUndefined();
    expect(hashes.known({ ...inputs, runner: { ...RUNNER } })).toBeUndefined();
  });

  test('without a live Pod the Pod is built (to create it) even when its hash is known', () => {
    const hashes = new DesiredPodHashes();
    const w = workload((x) => (x.status = undefined));
    expect(kinds(facts(w, livePodOf(w), hashes))).toEqual([]);
    expect(kinds(facts(w, undefined, hashes))).toEqual(['createPod']);
  });

  test('forget() drops the entry', () => {
    const hashes = new DesiredPodHashes();
    const w = workload();
    decide(facts(w, livePodOf(w), hashes));
    expect(hashes.size).toBe(1);
    hashes.forget('ns/wl');
    expect(hashes.size).toBe(0);
  });
});
