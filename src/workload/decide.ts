import type { IPod } from 'kubernetes-models/v1/Pod';
import { AGENT_WORKLOAD_KIND } from '../api/agentworkload.ts';
import { ANNOTATIONS, LABELS } from '../api/common.ts';
import { ACCESS_RECHECK_MS } from './access-gate.ts';
import type { Pod, Workload } from './caches.ts';
import { containerStatesFromPod } from './container-states.ts';
import { desiredPod as buildDesiredPod, POD_SPEC_HASH_ANNOTATION } from './desired-pod.ts';
import type { StatusFacts } from './desired-status.ts';
import { classifyWorkload } from './health.ts';
import { WorkloadConfigError } from './pod-builder.ts';
import type { RunnerSettings } from './runner-settings.ts';
import { refusedVolume } from './volume-access.ts';
import type { Action, Decision, Lookup, WorkloadFacts } from './decision.ts';
import { failed, livePod, resolveRunner } from './runner-choice.ts';
import { isOwnedBy, ownSecretNames } from './workload-secrets.ts';

/** Starting with nothing to report: the same text from the Pod's creation on, so no write. */
export const STARTING_MESSAGE = 'Pod created; waiting for its containers';
/** A stopped workload with this annotation is deleted that many seconds after it stopped. */
export const TTL_AFTER_STOPPED_ANNOTATION = ANNOTATIONS.ttlAfterStopped;
/** How long a created Pod may take to reach the cache before it is presumed lost. */
export const EXPECTED_POD_WAIT_MS = 30_000;

export type { Action, Decision, WorkloadFacts } from './decision.ts';

/**
 * What to do about one workload, and the status it should show: pure, from the facts. The
 * executor applies the actions (src/workload/executor.ts); a createPod refused by the API
 * server turns the status into refusedStatus().
 */
export function decide(facts: WorkloadFacts): Decision {
  const decision = decideLifecycle(facts, baseStatus(facts));
  decision.actions.push(...adoptions(facts));
  return decision;
}

function baseStatus({ workload, workloadId, pod }: WorkloadFacts): StatusFacts {
  const current = workload.status ?? {};
  return {
    phase: current.phase ?? 'Pending',
    podName: workload.metadata.name,
    workloadId,
    runner: current.runner ?? pod?.metadata?.labels?.[LABELS.runner] ?? undefined,
    startTime: current.startTime,
    containers: current.containers,
    reason: current.reason,
    message: current.message,
  };
}

function decideLifecycle(facts: WorkloadFacts, base: StatusFacts): Decision {
  const { workload: aw, pod } = facts;
  const current = aw.status ?? {};
  if (aw.spec.stopped) return decideStopped(facts, base);
  // Failed and completed workloads stay so until their spec changes.
  const sameGeneration = current.observedGeneration === aw.metadata.generation;
  if (sameGeneration && (current.phase === 'Failed' || current.phase === 'Stopped')) {
    const podAlive = livePod(pod);
    if (podAlive) base.containers = containerStatesFromPod(podAlive, aw.spec);
    return { status: base, actions: [] };
  }
  const placement = resolveRunner(facts, base);
  if ('decision' in placement) return placement.decision;
  const { runner, placed } = placement;
  let desired: DesiredPod;
  try {
    desired = desiredPodOf(facts, runner);
  } catch (err) {
    if (!(err instanceof WorkloadConfigError)) throw err;
    const message = `${err.message} (${err.field})`;
    return failed(base, placed, 'config_invalid', message);
  }
  if (pod && !isOwnedBy(pod, aw)) return decideForeignPod(facts, base, placed, pod);
  const expectedSince = facts.podExpectedSince;
  const now = facts.now.getTime();
  if (!pod && expectedSince !== undefined && now - expectedSince < EXPECTED_POD_WAIT_MS) {
    return { status: base, requeueAfterMs: 1_000, actions: [] };
  }
  // Without a live Pod, desiredPodOf built one.
  const next =
    desired.pod && !livePod(pod)
      ? decideMissingPod(facts, { ...base, placed }, runner, desired.pod)
      : decideLivePod(facts, { ...base, placed }, runner, desired.hash);
  return { ...next, forgetExpectedPod: true };
}

/**
 * A Pod of the workload's name that it does not own, read live: a deleted workload's of the
 * same name (being deleted, or waiting for the garbage collector) is waited for; any other
 * makes the workload Failed.
 */
function decideForeignPod(
  facts: WorkloadFacts,
  base: StatusFacts,
  placed: NonNullable<StatusFacts['placed']>,
  pod: Pod,
): Decision {
  if (!facts.podLive) return { status: base, actions: [], needs: 'podLive' };
  const name = JSON.stringify(pod.metadata?.name);
  const predecessor = pod.metadata?.ownerReferences?.some(
    (r) => r.kind === AGENT_WORKLOAD_KIND && r.name === facts.workload.metadata.name,
  );
  if (!pod.metadata?.deletionTimestamp && !predecessor) {
    return failed(
      base,
      placed,
      'config_invalid',
      `Pod ${name} exists and belongs to another owner`,
    );
  }
  const message = `waiting for Pod ${name} of a deleted workload of the same name to go`;
  return { status: { ...base, placed, message }, actions: [], requeueAfterMs: 1_000 };
}

/** The desired Pod's spec hash, and the Pod itself unless a live Pod only needs the hash. */
interface DesiredPod {
  hash: string | undefined;
  pod?: IPod;
}

function desiredPodOf(facts: WorkloadFacts, runner: RunnerSettings): DesiredPod {
  const inputs = {
    workload: facts.workload,
    runner,
    workloadId: facts.workloadId,
    annotationPrefixes: facts.podAnnotationPrefixes,
  };
  const known = livePod(facts.pod) ? facts.desiredPodHashes?.known(inputs) : undefined;
  if (known !== undefined) return { hash: known };
  const pod = buildDesiredPod(
    inputs.workload,
    runner,
    inputs.workloadId,
    inputs.annotationPrefixes,
  );
  facts.desiredPodHashes?.remember(inputs, pod);
  return { hash: pod.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION], pod };
}

function decideStopped(facts: WorkloadFacts, base: StatusFacts): Decision {
  const { pod } = facts;
  if (pod) {
    const message = 'deleting the Pod';
    return {
      status: { ...base, phase: 'Stopping', reason: undefined, message, startTime: undefined },
      actions: pod.metadata?.deletionTimestamp ? [] : [{ kind: 'deletePod', pod }],
      podMissingSince: null,
    };
  }
  const expiresInMs = stoppedTtlLeftMs(facts.workload, facts.now);
  return {
    status: {
      ...base,
      phase: 'Stopped',
      reason: undefined,
      message: 'stopped',
      containers: undefined,
      startTime: undefined,
    },
    actions: expiresInMs !== undefined && expiresInMs <= 0 ? [{ kind: 'deleteWorkload' }] : [],
    requeueAfterMs: expiresInMs !== undefined && expiresInMs > 0 ? expiresInMs : undefined,
    podMissingSince: null,
  };
}

function stoppedTtlLeftMs(aw: Workload, now: Date): number | undefined {
  const ttl = Number(aw.metadata.annotations?.[TTL_AFTER_STOPPED_ANNOTATION]);
  if (!Number.isFinite(ttl) || ttl < 0 || aw.status?.phase !== 'Stopped') return undefined;
  const settled = aw.status.conditions?.find(
    (c) => c.type === 'Reconciling' && c.status === 'False',
  );
  if (!settled) return undefined;
  return new Date(settled.lastTransitionTime).getTime() + ttl * 1000 - now.getTime();
}

/** No live Pod: a lost one is waited for (health thresholds), else access is checked and it is created. */
function decideMissingPod(
  facts: WorkloadFacts,
  base: StatusFacts,
  runner: RunnerSettings,
  desired: IPod,
): Decision {
  const { workload: aw, pod, now } = facts;
  const current = aw.status ?? {};
  const sameGeneration = current.observedGeneration === aw.metadata.generation;
  const wasStarted = current.phase === 'Running' || current.phase === 'Starting';
  const lostPodExisted = wasStarted && current.startTime !== undefined && sameGeneration;
  if (lostPodExisted || pod) {
    // The Pod vanished (or is being deleted) behind our back while it should run.
    const since =
      facts.podMissingSince ??
      (pod?.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp) : now);
    const verdict = classifyWorkload({
      containers: current.containers ?? [],
      podExists: false,
      podMissingSince: since,
      startTime: new Date(current.startTime ?? now.toISOString()),
      now,
      thresholds: runner.health,
      restartPolicy: aw.spec.restartPolicy,
      wasRunning: current.phase === 'Running',
    });
    const { phase, reason, message } = verdict;
    if (phase === 'Failed' && !facts.podLive)
      return { status: base, actions: [], needs: 'podLive' };
    return {
      status: { ...base, phase, reason, message },
      requeueAfterMs: verdict.recheckAfterMs,
      actions: [],
      podMissingSince: verdict.phase === 'Failed' ? null : since,
    };
  }
  const blocked = accessBlock(facts);
  if (typeof blocked === 'string') return { status: base, actions: [], needs: blocked };
  if (blocked) {
    const requeueAfterMs = blocked.phase === 'Pending' ? ACCESS_RECHECK_MS : undefined;
    return { status: { ...base, ...blocked }, requeueAfterMs, actions: [], podMissingSince: null };
  }
  return {
    status: {
      ...base,
      phase: 'Starting',
      reason: undefined,
      message: STARTING_MESSAGE,
      startTime: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      // What the new Pod shows (every container waiting), so that its arrival in the
      // cache is no change to write.
      containers: containerStatesFromPod(desired, aw.spec),
    },
    requeueAfterMs: runner.health.startGraceSeconds * 1000,
    actions: [{ kind: 'createPod', pod: desired, runner, unstarted: base }],
    podMissingSince: null,
  };
}

/**
 * Why the Pod may not be created: a claim of another workload (final once read live), or a
 * referenced Secret not made for it (final) or missing (Pending); or the lookup that must
 * come first.
 */
function accessBlock(
  facts: WorkloadFacts,
): Pick<StatusFacts, 'phase' | 'reason' | 'message'> | undefined | Lookup {
  const volume = refusedVolume(facts.workload, facts.workloadId, (c) => facts.claims.get(c));
  if (volume && !facts.claimsLive) return 'claimsLive';
  if (volume) return { phase: 'Failed', reason: 'config_invalid', message: volume.message };
  const secrets = facts.secretAccess;
  if (secrets === undefined) return 'secretAccess';
  if (secrets.ok) return undefined;
  return secrets.final
    ? { phase: 'Failed', reason: 'config_invalid', message: secrets.message }
    : { phase: 'Pending', reason: undefined, message: secrets.message };
}

function decideLivePod(
  facts: WorkloadFacts,
  base: StatusFacts,
  runner: RunnerSettings,
  specHash: string | undefined,
): Decision {
  const { workload: aw, now } = facts;
  const pod = facts.pod as Pod;
  const actions: Action[] = [];
  // A claim whose creation failed beside its Pod's (or was deleted since) is created
  // again while the Pod waits for it: unscheduled.
  if (!pod.spec?.nodeName) actions.push({ kind: 'ensureClaims', runner });
  if (pod.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION] !== specHash) {
    actions.push({ kind: 'deletePod', pod, why: 'spec changed; replacing the Pod' });
    const message = 'replacing the Pod after a spec change';
    return {
      status: {
        ...base,
        phase: 'Starting',
        reason: undefined,
        message,
        startTime: undefined,
        containers: undefined,
      },
      actions,
      podMissingSince: null,
    };
  }
  const containers = containerStatesFromPod(pod, aw.spec);
  const startTime = base.startTime ?? pod.metadata?.creationTimestamp ?? now.toISOString();
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const unscheduled = scheduled?.status === 'False' ? scheduled : undefined;
  const verdict = classifyWorkload({
    containers,
    podPhase: pod.status?.phase,
    podReason: pod.status?.reason ?? unscheduled?.reason,
    podMessage: pod.status?.message ?? unscheduled?.message,
    podExists: true,
    startTime: new Date(startTime),
    now,
    thresholds: runner.health,
    restartPolicy: aw.spec.restartPolicy,
    wasRunning: aw.status?.phase === 'Running',
  });
  if (verdict.phase === 'Failed' && !facts.podLive)
    return { status: base, actions: [], needs: 'podLive' };
  const message =
    verdict.message ?? (verdict.phase === 'Running' ? 'all containers running' : STARTING_MESSAGE);
  return {
    status: {
      ...base,
      phase: verdict.phase,
      reason: verdict.reason,
      message,
      startTime,
      containers,
    },
    requeueAfterMs: verdict.recheckAfterMs,
    actions,
    podMissingSince: null,
  };
}

/**
 * Secrets the shim created for this workload become owned by it (garbage-collected with
 * it), whatever the phase: only those named after the AgentWorkload and labelled with its id.
 */
function adoptions({ workload: aw, workloadId, secrets }: WorkloadFacts): Action[] {
  const actions: Action[] = [];
  for (const name of ownSecretNames(aw)) {
    const secret = secrets.get(name);
    if (!secret || secret.metadata?.labels?.[LABELS.workloadId] !== workloadId) continue;
    if (isOwnedBy(secret, aw)) continue;
    actions.push({ kind: 'adoptSecret', secret });
  }
  return actions;
}

/**
 * The status of a workload whose objects the API server refused: what the CRD schema cannot
 * express (an env name with "=", duplicate mount paths...) is final for its generation.
 */
export function refusedStatus(unstarted: StatusFacts, message: string): StatusFacts {
  return { ...unstarted, phase: 'Failed', reason: 'config_invalid', message };
}
