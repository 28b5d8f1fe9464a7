/** bench:workloads' options, targets and result shape (bench/workloads.ts runs it, workload-report.ts renders it). */
import type { CpuUse } from './process-cpu.ts';

export interface WorkloadBenchOptions {
  n: number;
  concurrency: number;
  /** WorkloadController workers (default DEFAULT_WORKLOAD_WORKERS, src/workload/controller.ts). */
  workers: number;
  /** The operator client's client-side limit (src/kube/client.ts: DEFAULT_QPS, DEFAULT_BURST). */
  qps: number;
  burst: number;
  idleMs: number;
  warmup: number;
  /** With the chart's opt-in finalizer policy bound to the operator's namespace. */
  finalizerPolicy: boolean;
  /** The controller's status coalescing window (--status-coalesce-ms); its default when absent. */
  statusCoalesceMs?: number;
  /** Interleaved floor and operator rounds whose median ratios judge the kubectl path (floor-rounds.ts). */
  floorRounds: number;
  /** Set by runWorkloadBench: the dedicated cluster's state dir, whose processes' CPU each phase reports. */
  stateDir?: string;
}

export const WORKLOAD_TARGETS = { ratio: 1.3, rssMiB: 150, rssAtN: 1000, idleWritesPerMin: 0 };

/** Issue 15 (the kubectl path): operator ÷ the no-controller floor of the same run, at N = 1,000. */
export const FLOOR_TARGETS = { ratio: 1.2, atN: 1000 };

/** One interleaved round of the kubectl path's floor and operator phases. */
export interface FloorRound {
  floor: PhaseTiming;
  operator: PhaseTiming;
}

export interface SchedulingFailures {
  pods: number;
  attempts: number;
}

export interface PhaseTiming {
  /** Time to send all creates (the load generator's part). */
  sendMs: number;
  allExistMs: number;
  allRunningMs: number;
  existP50: number;
  existP95: number;
  runningP50: number;
  runningP95: number;
  errors: number;
  firstErrors: string[];
  /** How many reached Running, and the phases of all at the end of the wait. */
  running: number;
  phases: Record<string, number>;
  /** The scheduler's FailedScheduling Events in the phase's namespace (e.g. an unbound claim). */
  schedulingFailures?: SchedulingFailures;
  /** From the first create until the last claim was seen Bound. */
  allBoundMs?: number;
  /** Half, and nine in ten, of the claims were seen Bound this long after the first create. */
  boundP50Ms?: number;
  boundP90Ms?: number;
  /** From the first create until all Running: the cluster's and the machine's CPU. */
  cpu?: PhaseCpu;
}

export interface PhaseCpu extends CpuUse {
  /** CPU seconds of this process (the load generator and the observers). */
  loadGenerator: number;
  /** CPU seconds of the controller's process (the operator phase only). */
  controller?: number;
}

/** What the operator's phase measures (bench/lib/workload-operator-phase.ts). */
export interface OperatorPhaseResult {
  operator: PhaseTiming;
  requestsPerWorkload: Array<[string, number]>;
  requestsPerWorkloadByResource: Array<[string, number]>;
  writesPerWorkload: number;
  rss: {
    before: number;
    peak: number;
    converged: number;
    afterGc: number;
    heapBefore: number;
    heapAfterGc: number;
  };
  /** Event-loop lag and CPU of this process while converging. */
  converge: { lagP99: number; lagMax: number; cpu: number };
  /** The controller process's CPU from the first create to convergence (1.0 = one core). */
  controllerCpu: number;
  idle: {
    seconds: number;
    settleSeconds: number;
    /** Workloads not yet Running when the window began (their writes are not idle writes). */
    unconverged: number;
    writes: number;
    writesPerMin: number;
    requests: Array<[string, number]>;
    byResource: Array<[string, number]>;
  };
}

export interface WorkloadBenchResult extends OperatorPhaseResult {
  options: WorkloadBenchOptions;
  baseline: PhaseTiming;
  /** floorPhase: the writes any controller must make, made with no controller in between. */
  floor: PhaseTiming;
  /** statusFloorPhase: the floor plus the two status writes kstatus needs (Starting, Running). */
  statusFloor: PhaseTiming;
  /** reactiveFloorPhase: the status floor's writes sent in reaction to each watch event. */
  reactiveFloor?: PhaseTiming;
  /** The interleaved rounds after the first (whose floor and operator are `floor`, `operator`). */
  extraFloorRounds: FloorRound[];
  /** RSS of a fresh process on the compiled operator code with its modules loaded (no tsx). */
  emptyOperatorRss: number;
  baselineNamespaceGone: boolean;
}
