import type { AgentWorkloadStatus, WorkloadPhase } from '../api/agentworkload.ts';
import { ANNOTATIONS, API_GROUP_VERSION } from '../api/common.ts';
import { jsonEqual } from '../api/conditions.ts';
import type { KubeClient, ResourceClient } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import type { WrittenAhead } from '../kube/written-ahead.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import type { Logger } from 'pino';
import type { Workload } from './caches.ts';
import { desiredStatus, type StatusFacts } from './desired-status.ts';
import type { WorkloadStateSink } from './seams.ts';
import { backlogWaitMs, coalesceWindowMs } from './status-coalescing.ts';

export const TOUCHED_AT_ANNOTATION = ANNOTATIONS.touchedAt;
/**
 * Phases that get no Event: Starting and Stopping, which the controller only passes through
 * (the Pod's own Events tell its progress), and Running, the state asked for (the Ready
 * condition and its transition time say when it came). Events are kept for what a person
 * reading `kubectl describe` may need to act on or look back at: Pending (waiting on
 * something a person may need to fix), Stopped and Failed (with its reason).
 */
export const PHASES_WITHOUT_EVENTS: ReadonlySet<WorkloadPhase> = new Set([
  'Starting',
  'Stopping',
  'Running',
]);

/** Whether a status change gets an Event: a new phase or reason, PHASES_WITHOUT_EVENTS aside. */
export function recordsEvent(previous: AgentWorkloadStatus, next: AgentWorkloadStatus): boolean {
  const transition = previous.phase !== next.phase || previous.reason !== next.reason;
  return transition && !PHASES_WITHOUT_EVENTS.has(next.phase as WorkloadPhase);
}

/** What the workload controller writes to an AgentWorkload (read-your-writes). */
export interface WorkloadWrites {
  finalizer: boolean;
  /** The status last written. */
  status: AgentWorkloadStatus;
}

export interface StatusWriterOptions {
  client: KubeClient;
  logger: Logger;
  writtenAhead: WrittenAhead<WorkloadWrites>;
  now: () => Date;
  stateSink?: WorkloadStateSink;
  /** Overrides both coalescing windows (status-coalescing.ts). */
  coalesceMs?: number;
  /** Whether as many workloads are queued as the controller has workers (backlogWaitMs). */
  backlogged?: () => boolean;
}

/**
 * Writes a workload's status unless it is unchanged, records an Event when recordsEvent
 * says so, and tells the state sink. A change that may coalesce (container states while a
 * Pod starts, a first Starting: coalesceWindowMs, longer under a backlog: backlogWaitMs)
 * waits for the next one, so a Pod that starts quickly costs one status write, not one per
 * step.
 */
export class StatusWriter {
  private readonly workloads: ResourceClient<Workload>;
  private readonly recorder: EventRecorder;
  /** Since when a same-phase status change has waited to be written. */
  private readonly progressSince = new Map<string, number>();

  constructor(private readonly options: StatusWriterOptions) {
    this.workloads = options.client.resource(AGENT_WORKLOADS);
    this.recorder = new EventRecorder(options.client, options.logger);
  }

  /** Returns how long a coalescing change waits, if it does. */
  async write(key: string, aw: Workload, facts: StatusFacts): Promise<number | undefined> {
    const now = this.options.now();
    const next = desiredStatus(aw, facts, now);
    const touchedAt = aw.metadata.annotations?.[TOUCHED_AT_ANNOTATION];
    if (touchedAt) next.lastActivityTime = touchedAt;
    const previous = aw.status ?? {};
    if (jsonEqual(previous, next)) {
      this.progressSince.delete(key);
      return undefined;
    }
    const window = coalesceWindowMs(previous, next, this.options.coalesceMs);
    if (window > 0) {
      const since = this.progressSince.get(key) ?? now.getTime();
      this.progressSince.set(key, since);
      const waitedMs = now.getTime() - since;
      if (waitedMs < window) return window - waitedMs;
      const backlogged = this.options.backlogged?.() ?? false;
      const moreMs = backlogWaitMs(previous, next, waitedMs, window, backlogged);
      if (moreMs > 0) return moreMs;
    }
    this.progressSince.delete(key);

    const patch: Record<string, unknown> = { ...next };
    for (const field of Object.keys(previous)) if (!(field in next)) patch[field] = null;
    // Pinned to the version the status was computed from: a stale writer (a deposed leader) gets a conflict.
    const resourceVersion = this.options.writtenAhead.produced(key) ?? aw.metadata.resourceVersion;
    const written = await this.workloads.mergePatch(
      aw.metadata.namespace,
      aw.metadata.name,
      { metadata: { resourceVersion }, status: patch },
      'status',
    );
    this.options.writtenAhead.note(key, aw, written, { status: next });
    if (recordsEvent(previous, next)) this.recordEvent(aw, next);
    if (previous.phase !== next.phase || !jsonEqual(previous.containers, next.containers)) {
      this.options.stateSink?.workloadChanged(aw, next);
    }
    return undefined;
  }

  forget(key: string): void {
    this.progressSince.delete(key);
  }

  private recordEvent(aw: Workload, status: AgentWorkloadStatus): void {
    const phase = status.phase as WorkloadPhase;
    const warning = phase === 'Failed';
    this.recorder.record(
      { apiVersion: API_GROUP_VERSION, kind: 'AgentWorkload', metadata: aw.metadata },
      warning ? 'Warning' : 'Normal',
      warning ? (status.reason ?? 'Failed') : phase,
      status.message ?? phase,
      this.options.now(),
    );
  }
}
