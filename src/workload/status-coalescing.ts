import type { AgentWorkloadStatus } from '../api/agentworkload.ts';

/**
 * A status change that may wait (up to the controller's coalescing window) for the next
 * one: progress within a transitional phase (same phase, reason and generation), and the
 * first Pending or Starting of a workload that has shown no more than Pending, so that a Pod
 * running within the window costs one status write (Running), not two or three.
 */
export function mayCoalesce(previous: AgentWorkloadStatus, next: AgentWorkloadStatus): boolean {
  const early = previous.phase === undefined || previous.phase === 'Pending';
  if (
    early &&
    previous.phase !== next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting')
  )
    return true;
  return (
    previous.phase === next.phase &&
    (next.phase === 'Pending' || next.phase === 'Starting' || next.phase === 'Stopping') &&
    previous.reason === next.reason &&
    previous.observedGeneration === next.observedGeneration &&
    previous.podName === next.podName &&
    previous.runner === next.runner
  );
}
