/**
 * bench:workloads' operator phase: the WorkloadController in a process of its own
 * (controller-process.ts), N AgentWorkloads created at the benchmark's concurrency, timed by
 * watches of this process until all are Running, then a window with nothing changing in
 * which the controller's API requests are counted.
 */
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { BenchChild } from './bench-child.ts';
import type { ChildMemory } from './child-ipc.ts';
import { createNamespace } from './cluster.ts';
import type { ControllerProcessConfig } from './controller-process.ts';
import { installFinalizerPolicy } from './finalizer-policy.ts';
import { diff, sortedEntries, writesIn } from './operator.ts';
import { runPool } from './pool.ts';
import { agentWorkload } from './shapes.ts';
import { LagMonitor, nowMs, seconds, sleep } from './stats.ts';
import { Tracker } from './tracker.ts';
import { PhaseCpuMeter } from './process-cpu.ts';
import type { OperatorPhaseResult, WorkloadBenchOptions } from './workload-options.ts';
import {
  claimTracker,
  log,
  schedulingFailures,
  timing,
  waitMsFor,
  type Workload,
} from './workload-phases.ts';

/** The operator phase's namespace, observers and controller process. */
interface OperatorRun {
  kube: KubeClient;
  opts: WorkloadBenchOptions;
  ns: string;
  manifests: AgentWorkload[];
  names: string[];
  pods: Tracker;
  workloads: Tracker;
  claims: ReturnType<typeof claimTracker>;
  controller: BenchChild;
  removeFinalizerPolicy: () => Promise<void>;
}

/** The operator phase, as the chart installs it (--finalizer-policy: with its opt-in policy). */
export async function operatorPhase(
  kube: KubeClient,
  kubeconfig: string,
  opts: WorkloadBenchOptions,
): Promise<{ result: OperatorPhaseResult; ns: string }> {
  const run = await startOperatorRun(kube, kubeconfig, opts);
  const converged = await converge(run);
  const idle = await idleWindow(run, converged.expected);
  const after = await run.controller.memory({ gc: true });
  await Promise.all([run.pods.stop(), run.workloads.stop(), run.claims.stop()]);
  await run.controller.stop();
  await run.removeFinalizerPolicy();
  const { before } = converged;
  return {
    ns: run.ns,
    result: {
      operator: converged.timing,
      requestsPerWorkload: converged.requestsPerWorkload,
      requestsPerWorkloadByResource: converged.requestsPerWorkloadByResource,
      writesPerWorkload: converged.writesPerWorkload,
      rss: {
        before: before.rss,
        peak: after.peakRss,
        converged: converged.rss,
        afterGc: after.rss,
        heapBefore: before.heapUsed,
        heapAfterGc: after.heapUsed,
      },
      converge: converged.converge,
      controllerCpu: converged.controllerCpu,
      idle,
    },
  };
}

/** The controller process's config: the benchmark's settings, and the window only when given. */
export function controllerConfig(
  kubeconfig: string,
  namespace: string,
  opts: WorkloadBenchOptions,
): ControllerProcessConfig {
  return {
    kubeconfig,
    namespace,
    workers: opts.workers,
    qps: opts.qps,
    burst: opts.burst,
    ...(opts.statusCoalesceMs === undefined ? {} : { statusCoalesceMs: opts.statusCoalesceMs }),
  };
}

async function startOperatorRun(
  kube: KubeClient,
  kubeconfig: string,
  opts: WorkloadBenchOptions,
): Promise<OperatorRun> {
  const ns = await createNamespace(kube, 'bench-op');
  const removeFinalizerPolicy = opts.finalizerPolicy
    ? await installFinalizerPolicy(kube, ns)
    : async () => undefined;
  // The load generator's manifests and the observers exist before the baseline figure.
  const manifests = Array.from({ length: opts.n }, () => agentWorkload(ns));
  const names = manifests.map((m) => m.metadata.name);
  const pods = new Tracker(kube, PODS, ns, 'Running');
  const workloads = new Tracker(kube, AGENT_WORKLOADS, ns, 'Running');
  const claims = claimTracker(kube, ns);
  await Promise.all([pods.start(), workloads.start(), claims.start()]);
  const controller = await BenchChild.start({
    entry: 'controller-process',
    env: { BENCH_CONTROLLER: JSON.stringify(controllerConfig(kubeconfig, ns, opts)) },
  });
  return {
    kube,
    opts,
    ns,
    manifests,
    names,
    pods,
    workloads,
    claims,
    controller,
    removeFinalizerPolicy,
  };
}

interface Convergence extends Pick<
  OperatorPhaseResult,
  | 'requestsPerWorkload'
  | 'requestsPerWorkloadByResource'
  | 'writesPerWorkload'
  | 'converge'
  | 'controllerCpu'
> {
  timing: OperatorPhaseResult['operator'];
  /** Workloads created without error. */
  expected: number;
  /** The controller process with its informers synced, before the first create. */
  before: ChildMemory;
  /** Its RSS at convergence. */
  rss: number;
}

/** Creates the AgentWorkloads and waits until all are Running, with their Pods seen. */
async function converge(run: OperatorRun): Promise<Convergence> {
  const { kube, opts, ns, controller, pods, workloads } = run;
  // Its informers are synced (on an empty namespace): the operator process before any work.
  const before = await controller.memory({ gc: true });
  const start = await controller.counts();
  const sentAt: number[] = [];
  log(
    `operator: creating ${opts.n} AgentWorkloads at concurrency ${opts.concurrency} (workers ${opts.workers}, qps ${opts.qps})`,
  );
  const startMemory = await controller.memory();
  const lag = new LagMonitor().start();
  const cpuMeter = new PhaseCpuMeter(opts.stateDir);
  const t0 = nowMs();
  const pool = await runPool(opts.n, opts.concurrency, async (i) => {
    sentAt[i] = nowMs();
    await kube.resource<Workload>(AGENT_WORKLOADS).create(ns, run.manifests[i] as Workload);
  });
  const sendMs = nowMs() - t0;
  run.manifests.length = 0;
  const expected = opts.n - pool.errors;
  await workloads
    .until(
      () => workloads.reachedPhase.size >= expected && pods.firstSeen.size >= expected,
      waitMsFor(opts.n),
      'the AgentWorkloads to be Running',
    )
    .catch((err: Error) => log(err.message));
  const phaseTiming = (reached: Map<string, number>, phases: Record<string, number>) =>
    timing(t0, sentAt, run.names, pods.firstSeen, reached, sendMs, pool, phases);
  const opTiming = phaseTiming(workloads.reachedPhase, workloads.phases());
  opTiming.schedulingFailures = await schedulingFailures(kube, ns);
  Object.assign(opTiming, run.claims.bound(t0));
  const convergedMemory = await controller.memory();
  const phaseCpu = cpuMeter.read((convergedMemory.cpuMs - startMemory.cpuMs) / 1000);
  opTiming.cpu = phaseCpu;
  const lagStats = lag.read();
  lag.stop();
  // Shares of one core over the phase.
  const elapsed = Math.max(0.001, phaseCpu.seconds);
  const convergeStats = {
    lagP99: lagStats.p99,
    lagMax: lagStats.max,
    cpu: phaseCpu.loadGenerator / elapsed,
  };
  const convergedCounts = await controller.counts();
  const controllerCpu = (phaseCpu.controller ?? 0) / elapsed;
  const perWorkload = (m: Map<string, number>): Array<[string, number]> =>
    sortedEntries(m).map(([k, v]) => [k, v / Math.max(1, expected)]);
  const used = diff(convergedCounts.requestCounts, start.requestCounts);
  const podsRunning = phaseTiming(pods.reachedPhase, {});
  log(
    `operator: all Pods exist after ${seconds(opTiming.allExistMs)} s, all Pods Running after ${seconds(podsRunning.allRunningMs)} s (p50 ${seconds(podsRunning.runningP50)} s), all AgentWorkloads Running after ${seconds(opTiming.allRunningMs)} s (p50 ${seconds(opTiming.runningP50)} s)`,
  );
  return {
    timing: opTiming,
    expected,
    before,
    rss: convergedMemory.rss,
    converge: convergeStats,
    controllerCpu,
    requestsPerWorkload: perWorkload(used),
    requestsPerWorkloadByResource: perWorkload(diff(convergedCounts.byResource, start.byResource)),
    writesPerWorkload: writesIn(used) / Math.max(1, expected),
  };
}

/** The controller's API requests in `opts.idleMs` with nothing changing, after a settle. */
async function idleWindow(
  run: OperatorRun,
  expected: number,
): Promise<OperatorPhaseResult['idle']> {
  const { opts, controller } = run;
  // Events are posted without waiting and requests may still sit in the client's limiter:
  // let those drain before the quiet window starts.
  const settleMs = 5_000;
  await sleep(settleMs);
  log(
    `idle: counting the operator's API requests for ${Math.round(opts.idleMs / 1000)} s with nothing changing`,
  );
  const idleStart = await controller.counts();
  const unconverged = expected - run.workloads.reachedPhase.size;
  if (unconverged > 0)
    log(`idle: ${unconverged} workloads are not Running yet; the window is not quiet`);
  await sleep(opts.idleMs);
  const idleEnd = await controller.counts();
  const idleUsed = diff(idleEnd.requestCounts, idleStart.requestCounts);
  const idleWrites = writesIn(idleUsed);
  return {
    seconds: opts.idleMs / 1000,
    settleSeconds: settleMs / 1000,
    writes: idleWrites,
    writesPerMin: (idleWrites * 60_000) / opts.idleMs,
    unconverged,
    requests: sortedEntries(idleUsed),
    byResource: sortedEntries(diff(idleEnd.byResource, idleStart.byResource)),
  };
}
