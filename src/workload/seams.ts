import type { AgentWorkload, AgentWorkloadStatus } from '../api/agentworkload.ts';
import type { RunnerSettings } from './runner-settings.ts';

export type PlacementDecision =
  | { placed: true; runner: RunnerSettings }
  /** With `field`, the spec itself is wrong there: the workload fails config_invalid. */
  | { placed: false; filter: string; message: string; field?: string };

/**
 * What the workload controller needs from the Runners: placement, the settings of the
 * runner a workload already sits on, and whether that runner is still alive.
 */
export interface RunnerDirectory {
  /** Chooses a runner for an unplaced workload. */
  place(workload: AgentWorkload): PlacementDecision;
  /** Settings of a named runner, Ready or not; undefined when it does not exist. */
  settings(name: string): RunnerSettings | undefined;
  /** When the named runner stopped being Ready (or vanished); undefined while Ready. */
  notReadySince(name: string): Date | undefined;
  /** Called whenever the set of Runners or their readiness changes. */
  onChange(listener: () => void): void;
}

/** Receives every observed workload transition (e.g. to report it to the platform). */
export interface WorkloadStateSink {
  workloadChanged(workload: AgentWorkload, status: AgentWorkloadStatus): void;
}

/** Without Runners (standalone mode) every workload uses fixed settings. */
export class StaticRunnerDirectory implements RunnerDirectory {
  constructor(private readonly runner: RunnerSettings) {}

  place(): PlacementDecision {
    return { placed: true, runner: this.runner };
  }

  settings(name: string): RunnerSettings | undefined {
    return name === this.runner.name ? this.runner : undefined;
  }

  notReadySince(): Date | undefined {
    return undefined;
  }

  onChange(): void {}
}
