import type {
  AgentWorkload,
  AgentWorkloadStatus,
  ContainerState,
  WorkloadPhase,
} from '../api/agentworkload.ts';
import type {
  ReportedContainer,
  ReportedContainerRole,
  ReportedContainerStatus,
  ReportedWorkloadStatus,
} from './gateway-client.ts';

/** One ReportWorkloadState, before the runner's credentials are added. */
export interface WorkloadReport {
  runner: string;
  workloadId: string;
  status: ReportedWorkloadStatus;
  containers: ReportedContainer[];
  observedAt: Date;
}

// Both enums are mapped by name here and in the gateway client; never by number.
const STATUS_BY_PHASE: Readonly<Partial<Record<WorkloadPhase, ReportedWorkloadStatus>>> = {
  Starting: 'STARTING',
  Running: 'RUNNING',
  Stopping: 'STOPPING',
  Stopped: 'STOPPED',
  Failed: 'FAILED',
};

const ROLE_BY_NAME: Readonly<Record<ContainerState['role'], ReportedContainerRole>> = {
  main: 'MAIN',
  sidecar: 'SIDECAR',
  init: 'INIT',
};

const STATE_BY_NAME: Readonly<Record<ContainerState['state'], ReportedContainerStatus>> = {
  waiting: 'WAITING',
  running: 'RUNNING',
  terminated: 'TERMINATED',
};

function lookup<K extends string, V>(
  table: Readonly<Partial<Record<K, V>>>,
  name: string | undefined,
): V | undefined {
  return name !== undefined && Object.hasOwn(table, name) ? table[name as K] : undefined;
}

function dateOf(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * The report of a workload status, or undefined when there is nothing to report: Pending
 * (or no phase), no runner chosen yet, or no workload id.
 */
export function workloadReportOf(
  workload: AgentWorkload,
  status: AgentWorkloadStatus,
  observedAt: Date,
): WorkloadReport | undefined {
  const reported = lookup(STATUS_BY_PHASE, status.phase);
  const runner = status.runner ?? workload.status?.runner;
  // Only the id the operator assigned or verified (unique in the namespace), never the spec's.
  const workloadId = status.workloadId ?? workload.status?.workloadId;
  if (reported === undefined || !runner || !workloadId) return undefined;
  const containers: ReportedContainer[] = [];
  for (const c of status.containers ?? []) {
    const role = lookup(ROLE_BY_NAME, c.role);
    const state = lookup(STATE_BY_NAME, c.state);
    if (role === undefined || state === undefined) continue;
    containers.push({
      containerId: c.containerId ?? '',
      name: c.name,
      role,
      image: c.image,
      status: state,
      reason: c.reason,
      message: c.message,
      exitCode: c.exitCode,
      restartCount: c.restartCount,
      startedAt: dateOf(c.startedAt),
      finishedAt: dateOf(c.finishedAt),
    });
  }
  return { runner, workloadId, status: reported, containers, observedAt };
}
