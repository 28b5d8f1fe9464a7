/**
 * What the generic layer reports about its controllers, queues and leader election, without
 * knowing how: the app plugs its metrics in once (setKubeMetrics, e.g. prom-client's in
 * observability/metrics.ts); until then nothing is recorded.
 */
export type ReconcileOutcome = 'success' | 'error' | 'requeue' | 'requeue_after';
export const RECONCILE_OUTCOMES: readonly ReconcileOutcome[] = [
  'success',
  'error',
  'requeue',
  'requeue_after',
];

export interface CounterSeries {
  inc(value?: number): void;
}
export interface GaugeSeries extends CounterSeries {
  dec(value?: number): void;
  set(value: number): void;
}
export interface HistogramSeries {
  observe(value: number): void;
  startTimer(): () => unknown;
}

export interface ControllerMetrics {
  reconcileTotal: Readonly<Record<ReconcileOutcome, CounterSeries>>;
  reconcileErrors: CounterSeries;
  reconcileTime: HistogramSeries;
  activeWorkers: GaugeSeries;
  maxConcurrentReconciles: GaugeSeries;
}

export interface WorkqueueMetrics {
  depth: GaugeSeries;
  adds: CounterSeries;
  queueDuration: HistogramSeries;
  workDuration: HistogramSeries;
  retries: CounterSeries;
}

/** What a live queue reports at scrape time about the items its workers hold. */
export interface InFlightWork {
  /** Sum over the items being processed of how long each has been processed, in seconds. */
  unfinishedSeconds: number;
  /** How long the longest-running item has been processed, in seconds. */
  longestSeconds: number;
}

export interface KubeMetrics {
  controller(name: string): ControllerMetrics;
  workqueue(name: string): WorkqueueMetrics;
  /** Reads a queue's in-flight work at scrape time; the returned function stops that. */
  trackInFlightWork(name: string, read: () => InFlightWork): () => void;
  leaderStatus(name: string, leading: boolean): void;
}

const counter: CounterSeries = { inc: () => undefined };
const gauge: GaugeSeries = { inc: () => undefined, dec: () => undefined, set: () => undefined };
const histogram: HistogramSeries = { observe: () => undefined, startTimer: () => () => undefined };

export const NO_KUBE_METRICS: KubeMetrics = {
  controller: () => ({
    reconcileTotal: { success: counter, error: counter, requeue: counter, requeue_after: counter },
    reconcileErrors: counter,
    reconcileTime: histogram,
    activeWorkers: gauge,
    maxConcurrentReconciles: gauge,
  }),
  workqueue: () => ({
    depth: gauge,
    adds: counter,
    queueDuration: histogram,
    workDuration: histogram,
    retries: counter,
  }),
  trackInFlightWork: () => () => undefined,
  leaderStatus: () => undefined,
};

let current: KubeMetrics = NO_KUBE_METRICS;

/** Plugs the app's metrics in; controllers, queues and electors created after use them. */
export function setKubeMetrics(metrics: KubeMetrics): void {
  current = metrics;
}

export function kubeMetrics(): KubeMetrics {
  return current;
}
