import type { ContainerState, FailureReason } from '../api/agentworkload.ts';
import type { HealthThresholds } from '../api/runner.ts';

export type RestartPolicy = 'Never' | 'OnFailure' | 'Always';
export type HealthPhase = 'Starting' | 'Running' | 'Stopped' | 'Failed';

export interface HealthInput {
  /** In the order containerStatesFromPod gives them: init containers, main, other sidecars. */
  containers: ContainerState[];
  /** The Pod's status.phase. */
  podPhase?: string;
  /** The Pod's status.reason (e.g. Evicted) or, while unscheduled, its PodScheduled reason. */
  podReason?: string;
  /** The Pod's status.message or, while unscheduled, its PodScheduled message. */
  podMessage?: string;
  podExists: boolean;
  /** When the controller first saw the Pod missing; defaults to now. */
  podMissingSince?: Date;
  startTime: Date;
  now: Date;
  thresholds: HealthThresholds;
  restartPolicy: RestartPolicy;
  /** The workload had reached Running before. */
  wasRunning: boolean;
}

export interface HealthVerdict {
  phase: HealthPhase;
  reason?: FailureReason;
  message?: string;
  /** Time until the next grace deadline that could change the verdict. */
  recheckAfterMs?: number;
}

const IMAGE_PULL_REASONS: ReadonlySet<string> = new Set(['ErrImagePull', 'ImagePullBackOff']);
const CONFIG_REASONS: ReadonlySet<string> = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'InvalidImageName',
]);
/** Pod status reasons of a Failed Pod whose node evicted it or went away. */
const RUNTIME_LOST_POD_REASONS: ReadonlySet<string> = new Set([
  'Evicted',
  'NodeLost',
  'Shutdown',
  'Terminated',
]);
const CRASH_LOOP = 'CrashLoopBackOff';

/**
 * The design's health rules ("Health classification"), with this operator's refinements:
 * - a main container's exit is final when the kubelet will not restart it (restartPolicy
 *   Never, OnFailure with exit 0, or a Pod in a terminal phase); otherwise the thresholds
 *   decide, since the kubelet restarts it;
 * - an ordinary init container exiting non-zero is final under Never or in a Failed Pod;
 *   one waiting in CrashLoopBackOff counts like one that exited, as its restart count
 *   only grows while it waits;
 * - pull and configuration errors count for every container, native sidecars included
 *   (they block the start as init containers do); sidecars never block Running;
 * - a Failed Pod with an eviction or node-loss reason is runtime_lost at once.
 */
export function classifyWorkload(input: HealthInput): HealthVerdict {
  if (!input.podExists) return classifyMissingPod(input);
  if (input.podPhase === 'Failed' && RUNTIME_LOST_POD_REASONS.has(input.podReason ?? '')) {
    return failed('runtime_lost', `the Pod was lost: ${podDescription(input)}`);
  }
  return input.wasRunning ? classifyRunning(input) : classifyStarting(input);
}

function classifyMissingPod(input: HealthInput): HealthVerdict {
  const since = input.podMissingSince ?? input.now;
  const deadline = since.getTime() + input.thresholds.runtimeLostGraceSeconds * 1000;
  if (input.now.getTime() >= deadline) {
    return failed(
      'runtime_lost',
      `the Pod has been missing since ${since.toISOString()} (deleted, evicted or its node is gone)`,
    );
  }
  return {
    phase: input.wasRunning ? 'Running' : 'Starting',
    recheckAfterMs: deadline - input.now.getTime(),
  };
}

function classifyRunning(input: HealthInput): HealthVerdict {
  const main = mainContainer(input);
  if (main?.state === 'terminated' && exitIsFinal(main, input)) {
    return main.exitCode === 0
      ? { phase: 'Stopped', message: exited(main) }
      : failed('crashloop', exited(main));
  }
  if (main !== undefined && isCrashLooping(main, input.thresholds.crashloopThreshold)) {
    return failed('crashloop', crashLooping(main));
  }
  if (input.podPhase === 'Succeeded') return { phase: 'Stopped' };
  if (input.podPhase === 'Failed') {
    const detail = podDescription(input);
    return failed(
      'runtime_lost',
      detail === undefined ? 'the Pod failed' : `the Pod failed: ${detail}`,
    );
  }
  return { phase: 'Running' };
}

function classifyStarting(input: HealthInput): HealthVerdict {
  const { containers, thresholds } = input;
  const inits = containers.filter((c) => c.role === 'init');
  const main = mainContainer(input);

  for (const c of inits) {
    if (c.state === 'terminated' && c.exitCode !== 0) {
      const final =
        input.restartPolicy === 'Never' ||
        input.podPhase === 'Failed' ||
        c.restartCount >= thresholds.initRetryThreshold;
      if (final) return failed('start_failed', exited(c));
    }
    if (isCrashLoopBackOff(c) && c.restartCount >= thresholds.initRetryThreshold) {
      return failed('start_failed', crashLooping(c));
    }
  }
  if (main?.state === 'terminated' && exitIsFinal(main, input)) {
    return failed('start_failed', exited(main));
  }
  if (main !== undefined && isCrashLooping(main, thresholds.crashloopThreshold)) {
    return failed('crashloop', crashLooping(main));
  }
  const initsDone = inits.every((c) => c.state === 'terminated' && c.exitCode === 0);
  if (main?.state === 'running' && initsDone) return { phase: 'Running' };

  if (input.podPhase === 'Failed' || input.podPhase === 'Succeeded') {
    const detail = notStartedDetail(input);
    const head = `the Pod ${input.podPhase === 'Failed' ? 'failed' : 'succeeded'} before Running`;
    return failed('start_failed', detail === undefined ? head : `${head}: ${detail}`);
  }

  const deadline = input.startTime.getTime() + thresholds.startGraceSeconds * 1000;
  if (input.now.getTime() < deadline) {
    return { phase: 'Starting', recheckAfterMs: deadline - input.now.getTime() };
  }
  const pulling = containers.find(
    (c) => c.state === 'waiting' && IMAGE_PULL_REASONS.has(c.reason ?? ''),
  );
  if (pulling) {
    return failed(
      'image_pull_failed',
      withDetail(`${label(pulling)} cannot pull its image`, pulling),
    );
  }
  const misconfigured = containers.find(
    (c) => c.state === 'waiting' && CONFIG_REASONS.has(c.reason ?? ''),
  );
  if (misconfigured) {
    return failed(
      'config_invalid',
      withDetail(`${label(misconfigured)} cannot be created`, misconfigured),
    );
  }
  const detail = notStartedDetail(input);
  const head = `not Running after ${thresholds.startGraceSeconds}s`;
  return failed('start_failed', detail === undefined ? head : `${head}: ${detail}`);
}

function failed(reason: FailureReason, message: string): HealthVerdict {
  return { phase: 'Failed', reason, message };
}

function mainContainer(input: HealthInput): ContainerState | undefined {
  return input.containers.find((c) => c.role === 'main');
}

function exitIsFinal(c: ContainerState, input: HealthInput): boolean {
  return (
    input.restartPolicy === 'Never' ||
    (input.restartPolicy === 'OnFailure' && c.exitCode === 0) ||
    input.podPhase === 'Succeeded' ||
    input.podPhase === 'Failed'
  );
}

function isCrashLoopBackOff(c: ContainerState): boolean {
  return c.state === 'waiting' && c.reason === CRASH_LOOP;
}

/**
 * A container the kubelet keeps restarting, at or past the threshold: in CrashLoopBackOff,
 * or terminated with a failure while the kubelet waits out its restart back-off (a real
 * kubelet re-syncs the Pod exactly when the back-off ends, so between restarts it mostly
 * reports the last exit, and CrashLoopBackOff only when some other sync comes in between).
 */
function isCrashLooping(c: ContainerState, threshold: number): boolean {
  const failedExit = c.state === 'terminated' && c.exitCode !== undefined && c.exitCode !== 0;
  return (isCrashLoopBackOff(c) || failedExit) && c.restartCount >= threshold;
}

/** The first thing that keeps the workload from Running, for a start_failed message. */
function notStartedDetail(input: HealthInput): string | undefined {
  const blocking = input.containers.find((c) =>
    c.role === 'init'
      ? !(c.state === 'terminated' && c.exitCode === 0)
      : c.role === 'main' && c.state !== 'running',
  );
  if (blocking?.state === 'terminated') return exited(blocking);
  if (blocking?.reason !== undefined || blocking?.message !== undefined) {
    return withDetail(`${label(blocking)} is ${blocking.state}`, blocking);
  }
  return podDescription(input) ?? (blocking && `${label(blocking)} is ${blocking.state}`);
}

/** "Reason: message" of the Pod, either part left out when blank. */
function podDescription(input: HealthInput): string | undefined {
  const parts = [input.podReason, input.podMessage].filter(
    (p) => p !== undefined && p.trim() !== '',
  );
  return parts.length === 0 ? undefined : parts.join(': ');
}

function label(c: ContainerState): string {
  return `${c.role} container "${c.name}"`;
}

function exited(c: ContainerState): string {
  const code = c.exitCode === undefined ? 'exited' : `exited with code ${c.exitCode}`;
  return withDetail(`${label(c)} ${code}`, c);
}

function crashLooping(c: ContainerState): string {
  if (c.state === 'terminated') {
    return withDetail(
      `${label(c)} exited with code ${c.exitCode} after ${c.restartCount} restarts`,
      c,
    );
  }
  return withDetail(`${label(c)} is in ${CRASH_LOOP} after ${c.restartCount} restarts`, c);
}

/** Messages come from the container's own message, else its reason. */
function withDetail(head: string, c: ContainerState): string {
  const detail = c.message?.trim() || c.reason?.trim();
  return detail ? `${head}: ${detail}` : head;
}
