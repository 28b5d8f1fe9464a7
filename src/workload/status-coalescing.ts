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
  const early = previous.phase === undefined || previous.phase === 'Pending';
  const first =
    early &&
    previous.phase !== next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting');
  if (first) return windowMs ?? FIRST_STATUS_COALESCE_MS;
  const progress =
    previous.phase === next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting' || next.phase === 'Stopping') &&
    previous.reason === next.reason &&
    previous.observedGeneration === next.observedGeneration &&
    previous.podName === next.podName &&
    previous.runner === next.runner;
  return progress ? (windowMs ?? STATUS_PROGRESS_COALESCE_MS) : 0;
}
