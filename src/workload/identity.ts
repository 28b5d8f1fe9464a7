import type { AgentWorkload } from '../api/agentworkload.ts';

/** Index of AgentWorkloads by every workload id they may claim or hold. */
export const WORKLOAD_ID_CLAIM_INDEX = 'workloadIdClaim';

export function claimKeys(aw: AgentWorkload): string[] {
  const keys = [aw.spec.workloadId, aw.status?.workloadId, aw.metadata.uid];
  return [...new Set(keys.filter((k): k is string => k !== undefined && k !== ''))];
}

/** Created earlier (by creation time, then name): the first of two claims wins. */
function olderThan(a: AgentWorkload, b: AgentWorkload): boolean {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return ta !== tb ? ta < tb : a.metadata.name < b.metadata.name;
}

/** Whether `other` holds the id `wanted` before `aw` may. */
function holds(other: AgentWorkload, wanted: string, aw: AgentWorkload): boolean {
  if (other.metadata.uid === aw.metadata.uid) return false;
  if (other.metadata.namespace !== aw.metadata.namespace) return false;
  if (other.metadata.uid === wanted || other.status?.workloadId === wanted) return true;
  return (
    other.status?.workloadId === undefined &&
    other.spec.workloadId === wanted &&
    olderThan(other, aw)
  );
}

/**
 * The workload id of `aw`, the one rule for every reader (controller, gRPC shim): the id the
 * operator recorded in status when it is one `aw` may hold (its own uid or spec.workloadId;
 * anything else in status is not believed), else spec.workloadId unless another
 * AgentWorkload holds that id (it is that one's uid, or recorded for it, or an older
 * workload asks for it too), else the workload's own uid. `claimants(id)` lists the
 * workloads that may claim or hold `id` (e.g. from an index by claimKeys); a reader without
 * such an index passes none and, until the controller records the id, gets spec.workloadId.
 */
export function workloadIdOf(
  aw: AgentWorkload,
  claimants: (id: string) => readonly AgentWorkload[] = () => [],
): string {
  const uid = aw.metadata.uid ?? '';
  const recorded = aw.status?.workloadId;
  if (recorded !== undefined && (recorded === uid || recorded === aw.spec.workloadId))
    return recorded;
  const wanted = aw.spec.workloadId;
  if (wanted === undefined || wanted === '' || wanted === uid) return uid;
  return claimants(wanted).some((other) => holds(other, wanted, aw)) ? uid : wanted;
}
