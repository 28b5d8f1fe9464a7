import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  RECONCILE_OUTCOMES,
  type ControllerMetrics,
  type CounterSeries,
  type InFlightWork,
  type KubeMetrics,
  type ReconcileOutcome,
  type WorkqueueMetrics,
} from '../kube/metrics.ts';

/** The registry /metrics serves. Every metric below is created once, when this module loads. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

const registers = [metricsRegistry];

/** controller-runtime's reconcile_time_seconds buckets. */
const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
  1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

/** client-go's workqueue duration buckets: 10 ns to 10 s in powers of ten. */
const WORKQUEUE_DURATION_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10];

export const reconcileTotal = new Counter<'controller' | 'result'>({
  name: 'controller_runtime_reconcile_total',
  help: 'Total number of reconciliations per controller',
  labelNames: ['controller', 'result'],
  registers,
});

export const reconcileErrorsTotal = new Counter<'controller'>({
  name: 'controller_runtime_reconcile_errors_total',
  help: 'Total number of reconciliation errors per controller',
  labelNames: ['controller'],
  registers,
});

export const reconcileTimeSeconds = new Histogram<'controller'>({
  name: 'controller_runtime_reconcile_time_seconds',
  help: 'Length of time per reconciliation per controller',
  labelNames: ['controller'],
  buckets: RECONCILE_TIME_BUCKETS,
  registers,
});

export const activeWorkers = new Gauge<'controller'>({
  name: 'controller_runtime_active_workers',
  help: 'Number of currently used workers per controller',
  labelNames: ['controller'],
  registers,
});

export const maxConcurrentReconciles = new Gauge<'controller'>({
  name: 'controller_runtime_max_concurrent_reconciles',
  help: 'Maximum number of concurrent reconciles per controller',
  labelNames: ['controller'],
  registers,
});

export const workqueueDepth = new Gauge<'name'>({
  name: 'workqueue_depth',
  help: 'Current depth of workqueue',
  labelNames: ['name'],
  registers,
});

export const workqueueAddsTotal = new Counter<'name'>({
  name: 'workqueue_adds_total',
  help: 'Total number of adds handled by workqueue',
  labelNames: ['name'],
  registers,
});

export const workqueueQueueDurationSeconds = new Histogram<'name'>({
  name: 'workqueue_queue_duration_seconds',
  help: 'How long in seconds an item stays in workqueue before being requested',
  labelNames: ['name'],
  buckets: WORKQUEUE_DURATION_BUCKETS,
  registers,
});

export const workqueueWorkDurationSeconds = new Histogram<'name'>({
  name: 'workqueue_work_duration_seconds',
  help: 'How long in seconds processing an item from workqueue takes',
  labelNames: ['name'],
  buckets: WORKQUEUE_DURATION_BUCKETS,
  registers,
});

export const workqueueRetriesTotal = new Counter<'name'>({
  name: 'workqueue_retries_total',
  help: 'Total number of retries handled by workqueue',
  labelNames: ['name'],
  registers,
});

const inFlightSources = new Map<string, { read: () => InFlightWork }>();

function collectInFlight(gauge: Gauge<'name'>, pick: (work: InFlightWork) => number): void {
  for (const [name, source] of inFlightSources) gauge.set({ name }, pick(source.read()));
}

export const workqueueUnfinishedWorkSeconds = new Gauge<'name'>({
  name: 'workqueue_unfinished_work_seconds',
  help:
    'How many seconds of work has been done that is in progress and has not been observed by ' +
    'work_duration. Large values indicate stuck threads.',
  labelNames: ['name'],
  registers,
  collect() {
    collectInFlight(this, (work) => work.unfinishedSeconds);
  },
});

export const workqueueLongestRunningProcessorSeconds = new Gauge<'name'>({
  name: 'workqueue_longest_running_processor_seconds',
  help: 'How many seconds has the longest running processor for workqueue been running.',
  labelNames: ['name'],
  registers,
  collect() {
    collectInFlight(this, (work) => work.longestSeconds);
  },
});

/** One series of a gauge computed at scrape time. */
export interface GaugeSample<L extends string> {
  labels: Record<L, string>;
  value: number;
}

type SampleSource<L extends string> = () => Iterable<GaugeSample<L>>;

const workloadSources = new Set<SampleSource<'phase' | 'reason'>>();
const enrollmentSources = new Set<SampleSource<'runner'>>();

/** Replaces a gauge's series with its sources' samples (left alone while it has no source). */
function collectFrom<L extends string>(gauge: Gauge<L>, sources: Set<SampleSource<L>>): void {
  if (sources.size === 0) return;
  gauge.reset();
  for (const source of sources)
    for (const sample of source()) gauge.inc(sample.labels, sample.value);
}

function addSource<L extends string>(
  sources: Set<SampleSource<L>>,
  source: SampleSource<L>,
): () => void {
  const own = (): Iterable<GaugeSample<L>> => source();
  sources.add(own);
  return () => void sources.delete(own);
}

export const workloadsGauge = new Gauge<'phase' | 'reason'>({
  name: 'k8s_runner_workloads',
  help: 'Number of AgentWorkloads by phase and reason',
  labelNames: ['phase', 'reason'],
  registers,
  collect() {
    collectFrom(this, workloadSources);
  },
});

export const runnerEnrolledGauge = new Gauge<'runner'>({
  name: 'k8s_runner_runner_enrolled',
  help: 'Whether a Runner is enrolled (1) or not (0)',
  labelNames: ['runner'],
  registers,
  collect() {
    collectFrom(this, enrollmentSources);
  },
});

/** Makes k8s_runner_workloads a count, at scrape time, of what `source` yields. Returns an unregister function. */
export function collectWorkloads(source: SampleSource<'phase' | 'reason'>): () => void {
  return addSource(workloadSources, source);
}

/** Makes k8s_runner_runner_enrolled read, at scrape time, what `source` yields. Returns an unregister function. */
export function collectEnrollment(source: SampleSource<'runner'>): () => void {
  return addSource(enrollmentSources, source);
}

export const leaderElectionMasterStatus = new Gauge<'name'>({
  name: 'leader_election_master_status',
  help: 'Whether this replica is (1) or is not (0) the leader of the named lease',
  labelNames: ['name'],
  registers,
});

export const grpcServerHandledTotal = new Counter<'grpc_service' | 'grpc_method' | 'grpc_code'>({
  name: 'grpc_server_handled_total',
  help: 'Total number of RPCs completed on the server, regardless of success or failure',
  labelNames: ['grpc_service', 'grpc_method', 'grpc_code'],
  registers,
});

export const grpcServerHandlingSeconds = new Histogram<'grpc_service' | 'grpc_method'>({
  name: 'grpc_server_handling_seconds',
  help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server',
  labelNames: ['grpc_service', 'grpc_method'],
  registers,
});

/** The controller_runtime_* series of one controller, created at zero so dashboards see them. */
export function controllerMetricsFor(controller: string): ControllerMetrics {
  const total = {} as Record<ReconcileOutcome, CounterSeries>;
  for (const result of RECONCILE_OUTCOMES) {
    total[result] = reconcileTotal.labels({ controller, result });
    total[result].inc(0);
  }
  const metrics: ControllerMetrics = {
    reconcileTotal: total,
    reconcileErrors: reconcileErrorsTotal.labels({ controller }),
    reconcileTime: reconcileTimeSeconds.labels({ controller }),
    activeWorkers: activeWorkers.labels({ controller }),
    maxConcurrentReconciles: maxConcurrentReconciles.labels({ controller }),
  };
  metrics.reconcileErrors.inc(0);
  metrics.activeWorkers.inc(0);
  reconcileTimeSeconds.zero({ controller });
  return metrics;
}

/** The workqueue_* series of one queue, created at zero so dashboards see them. */
export function workqueueMetricsFor(name: string): WorkqueueMetrics {
  const metrics: WorkqueueMetrics = {
    depth: workqueueDepth.labels({ name }),
    adds: workqueueAddsTotal.labels({ name }),
    queueDuration: workqueueQueueDurationSeconds.labels({ name }),
    workDuration: workqueueWorkDurationSeconds.labels({ name }),
    retries: workqueueRetriesTotal.labels({ name }),
  };
  metrics.depth.set(0);
  metrics.adds.inc(0);
  metrics.retries.inc(0);
  workqueueQueueDurationSeconds.zero({ name });
  workqueueWorkDurationSeconds.zero({ name });
  return metrics;
}

/**
 * Makes a queue's in-flight work visible through workqueue_unfinished_work_seconds and
 * workqueue_longest_running_processor_seconds, read at scrape time. A later registration under
 * the same name replaces an earlier one; the returned function removes only its own
 * registration, and zeroes the two series when it does.
 */
export function trackInFlightWork(name: string, read: () => InFlightWork): () => void {
  const source = { read };
  inFlightSources.set(name, source);
  return () => {
    if (inFlightSources.get(name) !== source) return;
    inFlightSources.delete(name);
    workqueueUnfinishedWorkSeconds.set({ name }, 0);
    workqueueLongestRunningProcessorSeconds.set({ name }, 0);
  };
}

/** The generic layer's metrics (src/kube/metrics.ts) as prom-client series of this registry. */
export const promKubeMetrics: KubeMetrics = {
  controller: controllerMetricsFor,
  workqueue: workqueueMetricsFor,
  trackInFlightWork,
  leaderStatus: (name, leading) => leaderElectionMasterStatus.set({ name }, leading ? 1 : 0),
};
