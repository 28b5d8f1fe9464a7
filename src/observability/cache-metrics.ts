import { WORKLOAD_PHASES, type AgentWorkload } from '../api/agentworkload.ts';
import type { Runner } from '../api/runner.ts';
import { collectEnrollment, collectWorkloads, type GaugeSample } from './metrics.ts';

/** Any cache that lists its objects (an Informer). */
export interface Listing<T> {
  list(): readonly T[];
}

/** k8s_runner_workloads{phase,reason}: every phase is present (at 0) so dashboards see it. */
export function workloadSamples(
  workloads: readonly AgentWorkload[],
): GaugeSample<'phase' | 'reason'>[] {
  const counts = new Map<string, GaugeSample<'phase' | 'reason'>>();
  for (const phase of WORKLOAD_PHASES)
    counts.set(`${phase}/`, { labels: { phase, reason: '' }, value: 0 });
  for (const aw of workloads) {
    const phase = aw.status?.phase ?? 'Pending';
    const reason = aw.status?.reason ?? '';
    const key = `${phase}/${reason}`;
    const sample = counts.get(key);
    if (sample) sample.value++;
    else counts.set(key, { labels: { phase, reason }, value: 1 });
  }
  return [...counts.values()];
}

/** k8s_runner_runner_enrolled{runner}: 1 while `enrolled` says so (the Enrolled condition). */
export function enrollmentSamples(
  runners: readonly Runner[],
  enrolled: (runner: Runner) => boolean,
): GaugeSample<'runner'>[] {
  return runners.map((runner) => ({
    labels: { runner: runner.metadata.name },
    value: enrolled(runner) ? 1 : 0,
  }));
}

/**
 * Computes the workload and enrollment gauges from the informer caches at scrape time, so
 * every replica (leader or not) reports them. Returns a function that unregisters both.
 */
export function registerCacheMetrics(caches: {
  workloads: Listing<AgentWorkload>;
  runners?: { cache: Listing<Runner>; enrolled: (runner: Runner) => boolean };
}): () => void {
  const removers = [collectWorkloads(() => workloadSamples(caches.workloads.list()))];
  const runners = caches.runners;
  if (runners) {
    const sample = (): GaugeSample<'runner'>[] =>
      enrollmentSamples(runners.cache.list(), runners.enrolled);
    removers.push(collectEnrollment(sample));
  }
  return () => removers.forEach((remove) => remove());
}
