import type { Logger } from 'pino';
import { API_GROUP_VERSION, type Condition } from '../api/common.ts';
import { jsonEqual } from '../api/conditions.ts';
import type { Runner, RunnerSpec, RunnerStatus } from '../api/runner.ts';
import type { KubeClient, ResourceClient } from '../kube/client.ts';
import { isNotFound } from '../kube/errors.ts';
import { EventRecorder } from '../kube/events.ts';
import { WrittenAhead } from '../kube/written-ahead.ts';
import { scopeOf } from './identity.ts';
import {
  RUNNER_CONDITIONS,
  desiredRunnerStatus,
  runnerStatusPatch,
  type OwnedRunnerStatus,
  type RunnerFacts,
} from './runner-status.ts';

export interface RunnerStatusWriterOptions {
  client: KubeClient;
  runnersApi: ResourceClient<Runner>;
  namespace: string;
  logger: Logger;
  now: () => Date;
  /** Counts of the workloads placed on a Runner (status.workloads); omitted when absent. */
  workloadCounts?: (runnerName: string) => NonNullable<RunnerStatus['workloads']>;
}

/**
 * Writes a Runner's status (conditions, identity, catalog, workload counts) from what a
 * reconcile learned, only when it changes, and records an Event for each transition of the
 * Enrolled and CatalogReported conditions.
 */
export class RunnerStatusWriter {
  private readonly recorder: EventRecorder;
  /** Status written that the cache may not show yet (read-your-writes). */
  private readonly writtenAhead = new WrittenAhead<{ status: OwnedRunnerStatus }>();

  constructor(private readonly options: RunnerStatusWriterOptions) {
    this.recorder = new EventRecorder(options.client, options.logger);
  }

  /** The Runner is gone. */
  forget(runnerName: string): void {
    this.writtenAhead.forget(runnerName);
  }

  /** Forgets every status written (reconciling stopped). */
  clear(): void {
    this.writtenAhead.clear();
  }

  async write(runner: Runner, spec: RunnerSpec, facts: RunnerFacts): Promise<void> {
    const name = runner.metadata.name;
    const ahead = this.writtenAhead.of(name, runner);
    const current: RunnerStatus | undefined = ahead?.status
      ? { ...runner.status, ...ahead.status }
      : runner.status;
    const now = this.options.now();
    const desired = desiredRunnerStatus(
      current,
      facts,
      runner.metadata.generation,
      scopeOf(spec),
      now,
    );
    let patch = runnerStatusPatch(current, desired);
    const counts = this.options.workloadCounts?.(name);
    if (counts && !jsonEqual(counts, current?.workloads)) patch = { ...patch, workloads: counts };
    if (!patch) return;
    // Pinned to the version the status was computed from: a stale writer gets a conflict.
    const resourceVersion = this.writtenAhead.produced(name) ?? runner.metadata.resourceVersion;
    let written: Runner;
    try {
      written = await this.options.runnersApi.mergePatch(
        this.options.namespace,
        name,
        { metadata: { resourceVersion }, status: patch },
        'status',
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    this.writtenAhead.note(name, runner, written, { status: desired });
    this.recordTransitions(current, runner, desired.conditions ?? []);
  }

  private recordTransitions(
    current: RunnerStatus | undefined,
    runner: Runner,
    conditions: readonly Condition[],
  ): void {
    for (const type of [RUNNER_CONDITIONS.enrolled, RUNNER_CONDITIONS.catalogReported]) {
      const before = current?.conditions?.find((c) => c.type === type);
      const after = conditions.find((c) => c.type === type);
      if (!after || after.reason === 'NotEnrolled') continue;
      if (before && before.status === after.status && before.reason === after.reason) continue;
      this.recorder.record(
        {
          apiVersion: API_GROUP_VERSION,
          kind: 'Runner',
          metadata: { ...runner.metadata, namespace: this.options.namespace },
        },
        after.status === 'True' ? 'Normal' : 'Warning',
        after.reason,
        after.message,
        this.options.now(),
      );
    }
  }
}
