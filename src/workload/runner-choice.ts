import type { Pod } from './caches.ts';
import type { Decision, WorkloadFacts } from './decision.ts';
import type { StatusFacts } from './desired-status.ts';
import type { RunnerSettings } from './runner-settings.ts';

type Placed = NonNullable<StatusFacts['placed']>;

/**
 * The runner the workload runs on (placement: once chosen it never changes while the Pod
 * exists), or the decision to stop here: unplaced, runner lost, runner gone.
 */
export function resolveRunner(
  facts: WorkloadFacts,
  base: StatusFacts,
): { runner: RunnerSettings; placed: Placed } | { decision: Decision } {
  const { workload: aw, runners, now } = facts;
  const current = aw.status ?? {};
  let runner: RunnerSettings | undefined;
  if (base.runner !== undefined) {
    runner = runners.settings(base.runner);
  } else {
    const decision = runners.place(aw);
    if (!decision.placed && decision.field !== undefined) {
      const message = `${decision.message} (${decision.field})`;
      const placed = { ok: false, reason: 'InvalidSpec', message };
      return { decision: failed(base, placed, 'config_invalid', message) };
    }
    if (!decision.placed) {
      const reason = `No${capitalize(decision.filter)}Match`;
      const message = decision.message;
      const placed = { ok: false, reason, message };
      return {
        decision: {
          status: { ...base, phase: 'Pending', reason: undefined, message, placed },
          actions: [],
        },
      };
    }
    runner = decision.runner;
    base.runner = runner.name;
  }
  const name = JSON.stringify(base.runner);
  const placed = { ok: true, reason: 'Placed', message: `placed on Runner ${name}` };
  // A runner that stopped being Ready takes its workloads with it after the grace.
  if (base.runner) {
    const since = runners.notReadySince(base.runner);
    const graceMs = (runner?.health.runtimeLostGraceSeconds ?? 30) * 1000;
    const active =
      current.phase === 'Running' || current.phase === 'Starting' || livePod(facts.pod);
    if (since && active) {
      const left = since.getTime() + graceMs - now.getTime();
      if (left <= 0) {
        const message = `Runner ${name} not Ready since ${since.toISOString()}`;
        return { decision: failed(base, placed, 'runtime_lost', message) };
      }
      if (!runner)
        return { decision: { status: { ...base, placed }, requeueAfterMs: left, actions: [] } };
    }
  }
  if (!runner) {
    const message = `Runner ${name} does not exist`;
    return { decision: { status: { ...base, placed, phase: 'Pending', message }, actions: [] } };
  }
  return { runner, placed };
}

/** A final failure of the workload, once placed. */
export function failed(
  base: StatusFacts,
  placed: Placed,
  reason: 'config_invalid' | 'runtime_lost',
  message: string,
): Decision {
  return { status: { ...base, placed, phase: 'Failed', reason, message }, actions: [] };
}

export function livePod(pod: Pod | undefined): Pod | undefined {
  return pod && !pod.metadata?.deletionTimestamp ? pod : undefined;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
