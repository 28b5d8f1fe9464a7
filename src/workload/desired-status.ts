import type {
  AgentWorkload,
  AgentWorkloadStatus,
  ContainerState,
  FailureReason,
  WorkloadPhase,
} from '../api/agentworkload.ts';
import { setCondition } from '../api/conditions.ts';

export interface StatusFacts {
  phase: WorkloadPhase;
  reason?: FailureReason;
  message?: string;
  runner?: string;
  podName: string;
  workloadId: string;
  startTime?: string;
  containers?: ContainerState[];
  placed?: { ok: boolean; reason: string; message: string };
}

const READY_REASON: Record<WorkloadPhase, string> = {
  Pending: 'Pending',
  Starting: 'Starting',
  Running: 'Running',
  Stopping: 'Stopping',
  Stopped: 'Stopped',
  Failed: 'Failed',
};

/**
 * The status the controller wants, in the kstatus convention: `Ready` says whether the
 * workload is where its spec asks it to be (Running, or Stopped: stopped on request or
 * completed); `Reconciling` while it moves there; `Stalled` when it failed.
 */
export function desiredStatus(
  workload: AgentWorkload,
  facts: StatusFacts,
  now: Date,
): AgentWorkloadStatus {
  const current = workload.status ?? {};
  const generation = workload.metadata.generation;
  let conditions = current.conditions ?? [];
  const ready = facts.phase === 'Running' || facts.phase === 'Stopped';
  const completed = facts.phase === 'Stopped' && workload.spec.stopped !== true;
  conditions = setCondition(
    conditions,
    {
      type: 'Ready',
      status: ready ? 'True' : 'False',
      reason: facts.reason ?? (completed ? 'Completed' : READY_REASON[facts.phase]),
      message:
        facts.message ??
        (completed ? 'workload completed' : `workload is ${facts.phase.toLowerCase()}`),
    },
    generation,
    now,
  );
  const reconciling =
    facts.phase === 'Pending' || facts.phase === 'Starting' || facts.phase === 'Stopping';
  conditions = setCondition(
    conditions,
    {
      type: 'Reconciling',
      status: reconciling ? 'True' : 'False',
      reason: reconciling ? READY_REASON[facts.phase] : 'Settled',
      message: reconciling ? `workload is ${facts.phase.toLowerCase()}` : '',
    },
    generation,
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: 'Stalled',
      status: facts.phase === 'Failed' ? 'True' : 'False',
      reason: facts.phase === 'Failed' ? (facts.reason ?? 'Failed') : 'NotStalled',
      message: facts.phase === 'Failed' ? (facts.message ?? '') : '',
    },
    generation,
    now,
  );
  if (facts.placed) {
    conditions = setCondition(
      conditions,
      {
        type: 'Placed',
        status: facts.placed.ok ? 'True' : 'False',
        reason: facts.placed.reason,
        message: facts.placed.message,
      },
      generation,
      now,
    );
  }
  const status: AgentWorkloadStatus = {
    observedGeneration: generation,
    workloadId: facts.workloadId,
    phase: facts.phase,
    podName: facts.podName,
    conditions,
  };
  if (facts.reason) status.reason = facts.reason;
  if (facts.message) status.message = facts.message;
  if (facts.runner) status.runner = facts.runner;
  if (facts.startTime) status.startTime = facts.startTime;
  if (facts.containers) status.containers = facts.containers;
  if (current.lastActivityTime) status.lastActivityTime = current.lastActivityTime;
  return status;
}
