import type { AgentWorkloadStatus } from '../api/agentworkload.ts';

/** How long a status change within the same phase may wait for the next change. */
export const STATUS_PROGRESS_COALESCE_MS = 1_000;
/**
 * How long a new workload's first Pending or Starting may wait for Running. It says no more
 * than "the Pod is on its way" (InspectWorkload reads the Pod itself), and under a burst of
 * starts Pods take seconds to be scheduled: this spares most workloads a status write and an
 * Event.
 */
export const FIRST_STATUS_COALESCE_MS = 5_000;

/**
 * How long, at most, a first Pending or Starting may keep waiting under a backlog. A new
 * object reads InProgress meanwhile (its CRD defaults status.observedGeneration to 0).
 */
export const FIRST_STATUS_BACKLOG_MAX_MS = 30_000;

/** The first Pending or Starting of a workload that has shown no more than Pending. */
function isFirstStatus(previous: AgentWorkloadStatus, next: AgentWorkloadStatus): boolean {
  const early = previous.phase === undefined || previous.phase === 'Pending';
  return (
    early &&
    previous.phase !== next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting')
  );
}

/**
 * How much longer a first Pending or Starting whose window has passed waits (0: written now)
 * while the controller has a backlog (as many workloads queued as it has workers): in steps
 * of its window, up to FIRST_STATUS_BACKLOG_MAX_MS from when it began to wait. Under a burst
 * the API server's time goes to the Pods still to be created first; a Pod that runs in the
 * meantime costs one status write (Running) instead of two.
 */
export function backlogWaitMs(
  previous: AgentWorkloadStatus,
  next: AgentWorkloadStatus,
  waitedMs: number,
  windowMs: number,
  backlogged: boolean,
): number {
  if (!backlogged || windowMs <= 0 || !isFirstStatus(previous, next)) return 0;
  const left = FIRST_STATUS_BACKLOG_MAX_MS - waitedMs;
  return left > 0 ? Math.min(windowMs, left) : 0;
}

/**
 * How long a status change may wait (0: written at once) for the next one: progress within
 * a transitional phase (same phase, reason and generation), and the first Pending or
 * Starting of a workload that has shown no more than Pending, so that a Pod running within
 * the window costs one status write (Running), not two or three. `windowMs` overrides both.
 */
export function coalesceWindowMs(
  previous: AgentWorkloadStatus,
  next: AgentWorkloadStatus,
  windowMs?: number,
): number {
  if (isFirstStatus(previous, next)) return windowMs ?? FIRST_STATUS_COALESCE_MS;
  const progress =
    previous.phase === next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting' || next.phase === 'Stopping') &&
    previous.reason === next.reason &&
    previous.observedGeneration === next.observedGeneration &&
    previous.podName === next.podName &&
    previous.runner === next.runner;
  return progress ? (windowMs ?? STATUS_PROGRESS_COALESCE_MS) : 0;
}
