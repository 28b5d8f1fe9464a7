import type { AgentWorkload } from '../api/agentworkload.ts';
import type { RunnerStatus } from '../api/runner.ts';
import type { Informer } from '../kube/informer.ts';
import type { KubeObject } from '../kube/client.ts';

type Workload = AgentWorkload & KubeObject;

export function countWorkloads(
  workloads: Iterable<Workload>,
  runnerName: string,
): NonNullable<RunnerStatus['workloads']> {
  const counts = { total: 0, running: 0, failed: 0 };
  for (const w of workloads) {
    if (w.status?.runner !== runnerName) continue;
    counts.total++;
    if (w.status.phase === 'Running') counts.running++;
    if (w.status.phase === 'Failed') counts.failed++;
  }
  return counts;
}

/** Calls `changed(runner)` whenever a workload joins, leaves or changes phase on a Runner. */
export function watchWorkloadCounts(
  informer: Informer<Workload>,
  changed: (runner: string) => void,
): void {
  const touch = (w: Workload | undefined): void => {
    if (w?.status?.runner) changed(w.status.runner);
  };
  informer.addHandler({
    onAdd: (w) => touch(w),
    onDelete: (w) => touch(w),
    onUpdate: (before, after) => {
      if (
        before.status?.runner === after.status?.runner &&
        before.status?.phase === after.status?.phase
      )
        return;
      touch(before);
      touch(after);
    },
  });
}
