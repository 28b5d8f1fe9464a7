import type { AgentWorkloadSpec, ContainerState, SidecarRole } from '../api/agentworkload.ts';

/**
 * RFC3339 text (null for a zero time) in raw JSON, or a Date in @kubernetes/client-node's
 * typed models.
 */
type Time = string | Date | null;

export interface ContainerStatusView {
  name: string;
  image?: string;
  containerID?: string;
  restartCount?: number;
  state?: {
    running?: { startedAt?: Time };
    waiting?: { reason?: string; message?: string };
    terminated?: {
      exitCode?: number;
      reason?: string;
      message?: string;
      startedAt?: Time;
      finishedAt?: Time;
    };
  };
}

/** The fields of a Pod this module reads; both IPod and V1Pod fit it. */
export interface PodView {
  spec?: {
    initContainers?: Array<{ name: string; image?: string; restartPolicy?: string }>;
    containers: Array<{ name: string; image?: string }>;
  };
  status?: {
    initContainerStatuses?: ContainerStatusView[];
    containerStatuses?: ContainerStatusView[];
  };
}

type Role = ContainerState['role'];

/**
 * Per-container states of a workload's Pod: init containers in Pod order (native sidecars,
 * i.e. init containers with restartPolicy Always, reported as sidecars), then
 * containers[0] as main, then the remaining containers as sidecars.
 */
export function containerStatesFromPod(
  pod: PodView,
  spec: Pick<AgentWorkloadSpec, 'sidecars'>,
): ContainerState[] {
  const sidecarRoles = new Map<string, SidecarRole>(spec.sidecars.map((s) => [s.name, s.role]));
  const initStatuses = byName(pod.status?.initContainerStatuses);
  const statuses = byName(pod.status?.containerStatuses);
  const result: ContainerState[] = [];

  for (const c of pod.spec?.initContainers ?? []) {
    const role: Role = c.restartPolicy === 'Always' ? 'sidecar' : 'init';
    result.push(toState(c.name, c.image, role, initStatuses.get(c.name), sidecarRoles));
  }
  (pod.spec?.containers ?? []).forEach((c, i) => {
    const role: Role = i === 0 ? 'main' : 'sidecar';
    result.push(toState(c.name, c.image, role, statuses.get(c.name), sidecarRoles));
  });
  return result;
}

function byName(list: ContainerStatusView[] | undefined): Map<string, ContainerStatusView> {
  return new Map((list ?? []).map((s) => [s.name, s]));
}

function toState(
  name: string,
  specImage: string | undefined,
  role: Role,
  status: ContainerStatusView | undefined,
  sidecarRoles: ReadonlyMap<string, SidecarRole>,
): ContainerState {
  const base: ContainerState = {
    name,
    role,
    image: nonBlank(status?.image) ?? specImage ?? '',
    state: 'waiting',
    restartCount: 0,
  };
  if (role === 'sidecar') base.sidecarRole = sidecarRoles.get(name) ?? 'other';

  const { running, waiting, terminated } = status?.state ?? {};
  // The contract reports a missing status or an empty state as UNSPECIFIED (restart 0, no
  // id). The CR schema has no such state, so it is 'waiting' without a reason; the kubelet
  // always gives a real waiting state a reason, which keeps the two distinguishable.
  if (status === undefined || (!running && !waiting && !terminated)) return base;

  const observed: ContainerState = {
    ...base,
    restartCount: status.restartCount ?? 0,
    ...withoutUndefined({ containerId: nonBlank(status.containerID) }),
  };
  if (running) {
    return {
      ...observed,
      state: 'running',
      ...withoutUndefined({ startedAt: formatTime(running.startedAt) }),
    };
  }
  if (terminated) {
    return {
      ...observed,
      state: 'terminated',
      ...withoutUndefined({
        reason: nonBlank(terminated.reason),
        message: nonBlank(terminated.message),
        exitCode: terminated.exitCode,
        startedAt: formatTime(terminated.startedAt),
        finishedAt: formatTime(terminated.finishedAt),
      }),
    };
  }
  return {
    ...observed,
    ...withoutUndefined({ reason: nonBlank(waiting?.reason), message: nonBlank(waiting?.message) }),
  };
}

function withoutUndefined<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(fields).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

function nonBlank(s: string | undefined): string | undefined {
  return s !== undefined && s.trim() !== '' ? s : undefined;
}

/** RFC3339 in UTC, second precision as the API server writes it; zero times are dropped. */
function formatTime(t: Time | undefined): string | undefined {
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return t.trim() === '' || t.startsWith('0001-01-01') ? undefined : t;
  if (Number.isNaN(t.getTime()) || t.getUTCFullYear() <= 1) return undefined;
  return t.toISOString().replace(/\.000Z$/, 'Z');
}
