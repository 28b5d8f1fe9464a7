/**
 * npm run bench:workloads [-- --n 1000 --c 32 --idle 60s --workers 16 --qps 200 --warmup 20
 *                             --finalizer-policy --status-coalesce-ms 0 --floor-rounds 3]
 *
 * Applies N AgentWorkloads (the real agent shape) with the operator's WorkloadController
 * running in a process of its own, and beside it, in the same run and cluster, the raw baseline:
 * the same PVCs and Pods created directly at the same concurrency. Uses KUBECONFIG when
 * set, else starts (and stops) a dedicated loopback cluster in a temp dir.
 * `--finalizer-policy` binds the chart's opt-in finalizer policy to the operator's namespace;
 * `--status-coalesce-ms <n>` sets the controller's status coalescing window (its
 * `statusCoalesceMs`; the operator's default when absent). `--floor-rounds <r>` (default 3)
 * measures the floor and the operator r times, interleaved, and judges the kubectl path's
 * targets by the medians of the rounds' ratios (bench/lib/floor-rounds.ts).
 */
import { pathToFileURL } from 'node:url';
import { DEFAULT_WORKLOAD_WORKERS } from '../src/workload/controller.ts';
import { DEFAULT_BURST, DEFAULT_QPS } from '../src/kube/client.ts';
import { parseArgs, type Args } from './lib/args.ts';
import {
  acquireCluster,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
  type BenchCluster,
} from './lib/cluster.ts';
import { runMemoryProbe } from './lib/compiled.ts';
import { seconds } from './lib/stats.ts';
import type {
  FloorRound,
  WorkloadBenchOptions,
  WorkloadBenchResult,
} from './lib/workload-options.ts';
import { extraFloorRounds } from './lib/floor-rounds.ts';
import { reactiveFloorPhase } from './lib/reactive-floor.ts';
import { operatorPhase } from './lib/workload-operator-phase.ts';
import {
  baselinePhase,
  clearPhase,
  floorPhase,
  log,
  statusFloorPhase,
  warmUp,
} from './lib/workload-phases.ts';
import { renderWorkloadReport } from './lib/workload-report.ts';

export {
  FLOOR_TARGETS,
  WORKLOAD_TARGETS,
  type WorkloadBenchOptions,
  type WorkloadBenchResult,
} from './lib/workload-options.ts';
export { floorRatios } from './lib/floor-rounds.ts';
export {
  floorVerdict,
  idleVerdict,
  rawVerdicts,
  renderWorkloadReport,
} from './lib/workload-report.ts';

export function workloadOptions(args: Args, prefix = ''): WorkloadBenchOptions {
  const n = args.int(`${prefix}n`, 1000);
  return {
    n,
    concurrency: args.int(`${prefix}c`, 32),
    workers: args.int('workers', DEFAULT_WORKLOAD_WORKERS),
    qps: args.number('qps', DEFAULT_QPS),
    burst: args.number('burst', DEFAULT_BURST),
    idleMs: args.durationMs('idle', 60_000),
    warmup: args.int('warmup', Math.min(20, n)),
    finalizerPolicy: args.has('finalizer-policy'),
    floorRounds: args.int('floor-rounds', 3),
    ...(args.has('status-coalesce-ms')
      ? { statusCoalesceMs: args.int('status-coalesce-ms', 0) }
      : {}),
  };
}

export async function runWorkloadBench(
  opts: WorkloadBenchOptions,
  kubeconfig?: string,
): Promise<WorkloadBenchResult> {
  const cluster: BenchCluster = acquireCluster(kubeconfig);
  stopOnSignals(cluster);
  const kube = unlimitedClient(cluster.kubeconfig);
  opts = { ...opts, stateDir: cluster.stateDir };
  try {
    log(`warm-up: ${opts.warmup} objects of each kind`);
    await warmUp(kube, opts.warmup);

    log('measuring an empty operator process (compiled JavaScript, no TypeScript loader)');
    const emptyOperatorRss = runMemoryProbe(cluster.kubeconfig)[0]?.rss ?? Number.NaN;

    const base = await baselinePhase(kube, opts);
    log(
      `baseline: all Pods exist after ${seconds(base.timing.allExistMs)} s, all Running after ${seconds(base.timing.allRunningMs)} s`,
    );
    log('baseline: deleting its namespace and volumes (waiting up to 180 s) before the next phase');
    let baselineNamespaceGone = await clearPhase(kube, base.ns, 180_000);

    const floor = await floorPhase(kube, opts);
    log('floor: deleting its namespace and volumes (waiting up to 180 s) before the next phase');
    baselineNamespaceGone = (await clearPhase(kube, floor.ns, 180_000)) && baselineNamespaceGone;

    const statusFloor = await statusFloorPhase(kube, opts);
    log(
      `status floor: all Pods exist after ${seconds(statusFloor.timing.allExistMs)} s, all AgentWorkloads Running after ${seconds(statusFloor.timing.allRunningMs)} s`,
    );
    log(
      'status floor: deleting its namespace and volumes (waiting up to 180 s) before the operator run',
    );
    baselineNamespaceGone =
      (await clearPhase(kube, statusFloor.ns, 180_000)) && baselineNamespaceGone;

    const reactiveFloor = await reactiveFloorPhase(kube, opts);
    log(
      `reactive floor: all Pods exist after ${seconds(reactiveFloor.timing.allExistMs)} s, all AgentWorkloads Running after ${seconds(reactiveFloor.timing.allRunningMs)} s`,
    );
    log(
      'reactive floor: deleting its namespace and volumes (waiting up to 180 s) before the operator run',
    );
    baselineNamespaceGone =
      (await clearPhase(kube, reactiveFloor.ns, 180_000)) && baselineNamespaceGone;

    const operator = await operatorPhase(kube, cluster.kubeconfig, opts);
    let extraRounds: FloorRound[] = [];
    if (opts.floorRounds > 1) {
      log(
        'operator: deleting its namespace and volumes (waiting up to 180 s) before the next round',
      );
      await clearPhase(kube, operator.ns, 180_000);
      extraRounds = await extraFloorRounds(kube, cluster.kubeconfig, opts);
    } else if (!cluster.dedicated) await deleteNamespace(kube, operator.ns);

    return {
      options: opts,
      baseline: base.timing,
      floor: floor.timing,
      statusFloor: statusFloor.timing,
      reactiveFloor: reactiveFloor.timing,
      ...operator.result,
      extraFloorRounds: extraRounds,
      emptyOperatorRss,
      baselineNamespaceGone,
    };
  } finally {
    kube.close();
    cluster.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = parseArgs();
  runWorkloadBench(workloadOptions(args))
    .then((result) => {
      console.log(renderWorkloadReport(result));
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
