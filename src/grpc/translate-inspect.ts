import type { AgentWorkload, AgentWorkloadSpec, ContainerState } from '../api/agentworkload.ts';
import { LABELS, ORCHESTRATOR_MANAGED_BY_VALUE, workloadLabels } from '../api/common.ts';
import { containerStatesFromPod } from '../workload/container-states.ts';
import {
  ContainerRole,
  ContainerStatus,
  WorkloadStatus,
  type InspectWorkloadResponse,
  type TargetMount,
  type WorkloadContainer,
  type WorkloadFailure,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { workloadIdOf } from '../workload/identity.ts';
import type { Pod, Workload } from './caches.ts';

// AgentWorkload and Pod → the contract's responses (InspectWorkload, ListWorkloads, ...).

const PHASE_TO_STATUS: Record<string, WorkloadStatus> = {
  Pending: WorkloadStatus.WORKLOAD_STATUS_STARTING,
  Starting: WorkloadStatus.WORKLOAD_STATUS_STARTING,
  Running: WorkloadStatus.WORKLOAD_STATUS_RUNNING,
  Stopping: WorkloadStatus.WORKLOAD_STATUS_STOPPED,
  Stopped: WorkloadStatus.WORKLOAD_STATUS_STOPPED,
  Failed: WorkloadStatus.WORKLOAD_STATUS_FAILED,
};

/** The contract status of a workload, and its failure when (and only when) it FAILED. */
export function workloadStatusOf(workload: AgentWorkload): {
  status: WorkloadStatus;
  failure?: WorkloadFailure;
} {
  const phase = workload.status?.phase;
  const status = phase
    ? (PHASE_TO_STATUS[phase] ?? WorkloadStatus.WORKLOAD_STATUS_STARTING)
    : WorkloadStatus.WORKLOAD_STATUS_STARTING;
  if (status !== WorkloadStatus.WORKLOAD_STATUS_FAILED) return { status };
  const details: Record<string, string> = {};
  if (workload.status?.podName) details['pod_name'] = workload.status.podName;
  return {
    status,
    failure: {
      code: workload.status?.reason ?? 'start_failed',
      message: workload.status?.message ?? '',
      details,
    },
  };
}

/** Labels of the workload's Pod; computed from the CR the same way when no Pod exists. */
export function effectiveLabels(workload: Workload, pod: Pod | undefined): Record<string, string> {
  if (pod?.metadata?.labels) return { ...pod.metadata.labels };
  const labels: Record<string, string> = {
    ...(workload.spec.labels ?? {}),
    ...workloadLabels(workloadIdOf(workload)),
  };
  if (workload.status?.runner) labels[LABELS.runner] = workload.status.runner;
  labels[LABELS.orchestratorManagedBy] = ORCHESTRATOR_MANAGED_BY_VALUE;
  return labels;
}

function timestamp(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) || date.getUTCFullYear() <= 1 ? undefined : date;
}

const ROLE: Record<ContainerState['role'], ContainerRole> = {
  main: ContainerRole.CONTAINER_ROLE_MAIN,
  sidecar: ContainerRole.CONTAINER_ROLE_SIDECAR,
  init: ContainerRole.CONTAINER_ROLE_INIT,
};

export function toWorkloadContainer(state: ContainerState): WorkloadContainer {
  const base: WorkloadContainer = {
    containerId: state.containerId ?? '',
    name: state.name,
    role: ROLE[state.role],
    image: state.image,
    status: ContainerStatus.CONTAINER_STATUS_UNSPECIFIED,
    restartCount: state.restartCount,
  };
  switch (state.state) {
    case 'running':
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_RUNNING,
        startedAt: timestamp(state.startedAt),
      };
    case 'terminated':
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_TERMINATED,
        reason: state.reason,
        message: state.message,
        exitCode: state.exitCode,
        startedAt: timestamp(state.startedAt),
        finishedAt: timestamp(state.finishedAt),
      };
    case 'waiting':
      // A waiting state without a reason is how container-states records "no state yet".
      if (state.reason === undefined) return { ...base, containerId: '', restartCount: 0 };
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_WAITING,
        reason: state.reason,
        message: state.message,
      };
  }
}

function targetMounts(spec: AgentWorkloadSpec): TargetMount[] {
  const volumes = new Map(spec.volumes.map((v) => [v.name, v]));
  const mounts: TargetMount[] = [];
  for (const m of spec.main.mounts ?? []) {
    const volume = volumes.get(m.volume);
    if (!volume) continue;
    mounts.push(
      volume.kind === 'Persistent'
        ? {
            type: 'pvc',
            source: volume.persistentName ?? volume.name,
            destination: m.mountPath,
            readOnly: m.readOnly ?? false,
          }
        : {
            type: 'emptydir',
            source: volume.name,
            destination: m.mountPath,
            readOnly: m.readOnly ?? false,
          },
    );
  }
  return mounts;
}

/** A Pod that exists and is not being deleted. */
export function livePod(pod: Pod | undefined): Pod | undefined {
  return pod && !pod.metadata?.deletionTimestamp ? pod : undefined;
}

/**
 * InspectWorkload from the caches. With a Pod, containers and state come from it (fresher
 * than the CR status the controller writes from the same Pod); without one (e.g. a
 * stopped workload), from the CR status.
 */
export function inspectResponse(workload: Workload, pod: Pod | undefined): InspectWorkloadResponse {
  const id = workloadIdOf(workload);
  const states = pod
    ? containerStatesFromPod(pod, workload.spec)
    : (workload.status?.containers ?? []);
  const main = states.find((s) => s.role === 'main');
  const phase = workload.status?.phase;
  const stateStatus = pod
    ? (pod.status?.phase ?? 'Pending').toLowerCase()
    : (phase ?? 'Pending').toLowerCase();
  const running =
    phase === 'Running' &&
    !workload.spec.stopped &&
    !workload.metadata.deletionTimestamp &&
    livePod(pod)?.status?.phase === 'Running';
  return {
    id,
    name: id,
    image: main?.image || workload.spec.main.image,
    configImage: pod?.spec?.containers[0]?.image ?? workload.spec.main.image,
    configLabels: effectiveLabels(workload, pod),
    mounts: targetMounts(workload.spec),
    stateStatus,
    stateRunning: running,
    containers: states.map(toWorkloadContainer),
  };
}
