/**
 * npm run bench:workloads [-- --n 1000 --c 32 --idle 60s --workers 16 --qps 200 --warmup 20]
 *
 * Applies N AgentWorkloads (the real agent shape) with the operator's WorkloadController
 * running in this process, and beside it, in the same run and cluster, the raw baseline:
 * the same PVCs and Pods created directly at the same concurrency. Uses KUBECONFIG when
 * set, else starts (and stops) a dedicated loopback cluster in a temp dir.
 */
import { pathToFileURL } from 'node:url';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { AgentWorkload } from '../src/api/agentworkload.ts';
import type { KubeClient, KubeObject } from '../src/kube/client.ts';
import { EVENTS, PODS, PVCS, type ResourceType } from '../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../src/api/resources.ts';
import { ownerReference } from '../src/api/common.ts';
import { DEFAULT_WORKLOAD_WORKERS } from '../src/workload/controller.ts';
import { DEFAULT_BURST, DEFAULT_QPS } from '../src/kube/client.ts';
import { parseArgs, type Args } from './lib/args.ts';
import {
  acquireCluster,
  createNamespace,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
  type BenchCluster,
} from './lib/cluster.ts';
import { diff, sortedEntries, writesIn } from './lib/operator.ts';
import { installFinalizerPolicy } from './lib/finalizer-policy.ts';
import { runPool } from './lib/pool.ts';
import {
  BENCH_START_GRACE_SECONDS,
  agentWorkload,
  benchRunner,
  rawObjectsFor,
} from './lib/shapes.ts';
import { BenchChild } from './lib/bench-child.ts';
import type { ControllerProcessConfig } from './lib/controller-process.ts';
import { runMemoryProbe } from './lib/compiled.ts';
import {
  LagMonitor,
  MiB,
  fixed,
  gcAvailable,
  mib,
  nowMs,
  percentile,
  seconds,
  sleep,
} from './lib/stats.ts';
import { Tracker } from './lib/tracker.ts';

export interface WorkloadBenchOptions {
  n: number;
  concurrency: number;
  /** WorkloadController workers (src/main.ts default: 4). */
  workers: number;
  /** The operator client's client-side limit (src/kube/client.ts default: 200 qps, burst 400). */
  qps: number;
  burst: number;
  idleMs: number;
  warmup: number;
  /** With the chart's opt-in finalizer policy bound to the operator's namespace. */
  finalizerPolicy: boolean;
}

export const WORKLOAD_TARGETS = { ratio: 1.3, rssMiB: 150, rssAtN: 1000, idleWritesPerMin: 0 };

/** Issue 15 (the kubectl path): operator ÷ the no-controller floor of the same run, at N = 1,000. */
export const FLOOR_TARGETS = { ratio: 1.2, atN: 1000 };

/** Operator ÷ floor for "all Pods exist" and "all Running", judged against FLOOR_TARGETS. */
export function floorRatios(r: WorkloadBenchResult): {
  exist: number;
  running: number;
  judged: boolean;
  existOk: boolean;
  runningOk: boolean;
} {
  const exist = r.operator.allExistMs / r.floor.allExistMs;
  const running = r.operator.allRunningMs / r.floor.allRunningMs;
  return {
    exist,
    running,
    judged: r.options.n >= FLOOR_TARGETS.atN,
    existOk: exist <= FLOOR_TARGETS.ratio,
    runningOk: running <= FLOOR_TARGETS.ratio,
  };
}

/** "meets"/"misses" when the run is the target's size, else which N it was measured at. */
export function floorVerdict(ok: boolean, r: WorkloadBenchResult): string {
  const v = ok ? 'meets' : '**misses**';
  return r.options.n >= FLOOR_TARGETS.atN ? v : `${v} (measured at N=${r.options.n})`;
}

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
  };
}

interface PhaseTiming {
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
}

/** Watches a namespace's claims; `allBoundMs(t0)` is when the last one was seen Bound. */
function claimTracker(kube: KubeClient, ns: string) {
  const tracker = new Tracker(kube, PVCS, ns, 'Bound');
  return {
    start: () => tracker.start(),
    stop: () => tracker.stop(),
    allBoundMs: (t0: number) => Math.max(t0, ...tracker.reachedPhase.values()) - t0,
  };
}

interface SchedulingFailures {
  pods: number;
  attempts: number;
}

const PERSISTENT_VOLUMES: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'persistentvolumes',
  kind: 'PersistentVolume',
  namespaced: false,
};

/**
 * Deletes a phase's namespace and waits until it is gone and so are the volumes its claims
 * were bound to: the PV controller releases and deletes them one by one after the namespace
 * went, and a next phase started before that shares the controller that binds its claims.
 * Says whether both went within `waitMs`.
 */
async function clearPhase(kube: KubeClient, ns: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  if (!(await deleteNamespace(kube, ns, waitMs))) return false;
  type Volume = KubeObject & { spec?: { claimRef?: { namespace?: string } } };
  for (;;) {
    const volumes = await kube.resource<Volume>(PERSISTENT_VOLUMES).list(undefined);
    const left = volumes.items.filter((v) => v.spec?.claimRef?.namespace === ns).length;
    if (left === 0) return true;
    if (Date.now() > deadline) {
      log(`${ns}: ${left} volumes of its claims are still there`);
      return false;
    }
    await sleep(1000);
  }
}

/** Counts the FailedScheduling Events of a namespace: Pods refused at least once, and refusals. */
async function schedulingFailures(kube: KubeClient, ns: string): Promise<SchedulingFailures> {
  type Event = KubeObject & { count?: number; involvedObject?: { name?: string } };
  const events = await kube
    .resource<Event>(EVENTS)
    .list(ns, { fieldSelector: 'reason=FailedScheduling' })
    .catch(() => ({ items: [] as Event[] }));
  const pods = new Set(events.items.map((e) => e.involvedObject?.name));
  const attempts = events.items.reduce((sum, e) => sum + (e.count ?? 1), 0);
  return { pods: pods.size, attempts };
}

export interface WorkloadBenchResult {
  options: WorkloadBenchOptions;
  baseline: PhaseTiming;
  /** floorPhase: the writes any controller must make, made with no controller in between. */
  floor: PhaseTiming;
  /** statusFloorPhase: the floor plus the two status writes kstatus needs (Starting, Running). */
  statusFloor: PhaseTiming;
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
  /** RSS of a fresh process on the compiled operator code with its modules loaded (no tsx). */
  emptyOperatorRss: number;
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
  baselineNamespaceGone: boolean;
}

type Pvc = IPersistentVolumeClaim & KubeObject;
type Pod = IPod & KubeObject;
type Workload = AgentWorkload & KubeObject;

function log(message: string): void {
  process.stderr.write(`[bench:workloads] ${message}\n`);
}

function timing(
  t0: number,
  sentAt: number[],
  names: string[],
  exist: Map<string, number>,
  running: Map<string, number>,
  sendMs: number,
  pool: { errors: number; firstErrors: string[] },
  phases: Record<string, number>,
): PhaseTiming {
  const existLat: number[] = [];
  const runLat: number[] = [];
  let lastExist = 0;
  let lastRunning = 0;
  names.forEach((name, i) => {
    const sent = sentAt[i] ?? t0;
    const e = exist.get(name);
    const r = running.get(name);
    if (e !== undefined) {
      existLat.push(e - sent);
      lastExist = Math.max(lastExist, e);
    }
    if (r !== undefined) {
      runLat.push(r - sent);
      lastRunning = Math.max(lastRunning, r);
    }
  });
  return {
    sendMs,
    allExistMs: lastExist - t0,
    allRunningMs: lastRunning - t0,
    existP50: percentile(existLat, 50),
    existP95: percentile(existLat, 95),
    runningP50: percentile(runLat, 50),
    runningP95: percentile(runLat, 95),
    errors: pool.errors,
    firstErrors: pool.firstErrors,
    running: runLat.length,
    phases,
  };
}

function waitMsFor(n: number): number {
  return Math.max(300_000, n * 600);
}

async function warmUp(kube: KubeClient, count: number): Promise<void> {
  if (count <= 0) return;
  const ns = await createNamespace(kube, 'bench-warmup');
  const runner = benchRunner();
  const pool = await runPool(count, 8, async () => {
    const aw = agentWorkload(ns);
    const raw = rawObjectsFor(aw, runner);
    await kube.resource<Workload>(AGENT_WORKLOADS).create(ns, aw as Workload);
    for (const pvc of raw.pvcs) await kube.resource<Pvc>(PVCS).create(ns, pvc as Pvc);
    await kube.resource<Pod>(PODS).create(ns, raw.pod as Pod);
  });
  if (pool.errors > 0) throw new Error(`warm-up failed: ${pool.firstErrors.join(' | ')}`);
  await deleteNamespace(kube, ns, 60_000);
}

type RawObjects = ReturnType<typeof rawObjectsFor>;

/**
 * N workloads' PVCs and Pods created by the load generator itself at the benchmark's
 * concurrency (`send` makes one workload's objects), timed by a watch of the Pods.
 */
async function directPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
  name: string,
  description: string,
  send: (ns: string, workload: AgentWorkload, objects: RawObjects) => Promise<void>,
  /** Called when a Pod first runs; with it, "Running" is the AgentWorkload's status.phase. */
  onPodRunning?: (ns: string, name: string) => void,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const ns = await createNamespace(kube, `bench-${name}`);
  const runner = benchRunner();
  const manifests = Array.from({ length: opts.n }, () => agentWorkload(ns));
  const objects = manifests.map((aw) => rawObjectsFor(aw, runner));
  const names = objects.map((o) => o.pod.metadata?.name ?? '');
  const pods = new Tracker(kube, PODS, ns, 'Running', undefined, (pod) => onPodRunning?.(ns, pod));
  const statuses = onPodRunning ? new Tracker(kube, AGENT_WORKLOADS, ns, 'Running') : undefined;
  const running = statuses ?? pods;
  const claims = claimTracker(kube, ns);
  await Promise.all([pods.start(), statuses?.start(), claims.start()]);
  const sentAt: number[] = [];
  log(`${name}: ${description}, at concurrency ${opts.concurrency}`);
  const t0 = nowMs();
  const pool = await runPool(opts.n, opts.concurrency, async (i) => {
    sentAt[i] = nowMs();
    await send(ns, manifests[i]!, objects[i]!);
  });
  const sendMs = nowMs() - t0;
  const expected = opts.n - pool.errors;
  await running
    .until(
      () => running.reachedPhase.size >= expected,
      waitMsFor(opts.n),
      `the ${name} Pods to run`,
    )
    .catch((err: Error) => log(err.message));
  const phases = running.phases();
  await Promise.all([pods.stop(), statuses?.stop(), claims.stop()]);
  const result = timing(
    t0,
    sentAt,
    names,
    pods.firstSeen,
    running.reachedPhase,
    sendMs,
    pool,
    phases,
  );
  result.schedulingFailures = await schedulingFailures(kube, ns);
  result.allBoundMs = claims.allBoundMs(t0);
  return { timing: result, ns };
}

/** The raw baseline: each workload's PVC, then its Pod, with no AgentWorkload. */
function baselinePhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  return directPhase(
    kube,
    opts,
    'baseline',
    `creating ${opts.n} PVC+Pod pairs directly`,
    async (ns, _workload, o) => {
      for (const pvc of o.pvcs) await kube.resource<Pvc>(PVCS).create(ns, pvc as Pvc);
      await kube.resource<Pod>(PODS).create(ns, o.pod as Pod);
    },
  );
}

/**
 * The least any controller could do: the load generator creates each AgentWorkload and at
 * once, with no controller and no latency in between, makes the writes the operator must
 * make before the Pod exists (a metadata PATCH of the workload the size of the finalizer's,
 * the PVC and the Pod, sent together as the controller sends them). Its ratio to the raw
 * baseline is the floor of the "all Pods exist" ratio on this cluster; the operator's ratio
 * to it is what the controller itself costs.
 */
function floorPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  return directPhase(
    kube,
    opts,
    'floor',
    `creating ${opts.n} AgentWorkloads, each followed at once by its PATCH, PVC and Pod (no controller)`,
    async (ns, workload, o) => {
      const created = await workloads.create(ns, workload as Workload);
      await Promise.all([
        // An annotation rather than the finalizer itself: the same PATCH, and nothing to
        // remove before the namespace can go.
        workloads.mergePatch(ns, created.metadata.name, {
          metadata: {
            annotations: { 'bench.agyn.io/floor': 'patched' },
            resourceVersion: created.metadata.resourceVersion,
          },
        }),
        ...o.pvcs.map((pvc) => kube.resource<Pvc>(PVCS).create(ns, pvc as Pvc)),
        kube.resource<Pod>(PODS).create(ns, o.pod as Pod),
      ]);
    },
  );
}

/**
 * The floor with what a correct controller must add: the Pod and claim owned by the
 * AgentWorkload (owner references, as the operator sets them, so the garbage collector tracks
 * them), and the floor's writes plus, sent with them, a first status (Starting, with observedGeneration, so that
 * kstatus does not call the new workload Current), and a Running status the moment its Pod
 * is seen running. Its "all Running" is the AgentWorkloads' status.phase, as the operator's.
 */
function statusFloorPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  const writeStatus = (ns: string, name: string, status: Record<string, unknown>) =>
    workloads.mergePatch(ns, name, { status }, 'status');
  return directPhase(
    kube,
    opts,
    'status-floor',
    `creating ${opts.n} AgentWorkloads, each followed at once by its PATCH, owned PVC and Pod and Starting status, and a Running status when its Pod runs (no controller)`,
    async (ns, workload, o) => {
      const created = await workloads.create(ns, workload as Workload);
      const generation = created.metadata.generation;
      const owned = <T extends { metadata?: object }>(obj: T): T => ({
        ...obj,
        metadata: {
          ...obj.metadata,
          ownerReferences: [
            ownerReference('AgentWorkload', created, {
              controller: true,
              blockOwnerDeletion: true,
            }),
          ],
        },
      });
      await Promise.all([
        workloads.mergePatch(ns, created.metadata.name, {
          metadata: {
            annotations: { 'bench.agyn.io/floor': 'patched' },
            resourceVersion: created.metadata.resourceVersion,
          },
        }),
        ...o.pvcs.map((pvc) => kube.resource<Pvc>(PVCS).create(ns, owned(pvc) as Pvc)),
        kube.resource<Pod>(PODS).create(ns, owned(o.pod) as Pod),
        writeStatus(ns, created.metadata.name, {
          phase: 'Starting',
          observedGeneration: generation,
        }),
      ]);
    },
    (ns, name) => {
      writeStatus(ns, name, { phase: 'Running' }).catch((err: Error) =>
        log(`status-floor: ${name}: ${err.message}`),
      );
    },
  );
}

export async function runWorkloadBench(
  opts: WorkloadBenchOptions,
  kubeconfig?: string,
): Promise<WorkloadBenchResult> {
  const cluster: BenchCluster = acquireCluster(kubeconfig);
  stopOnSignals(cluster);
  const kube = unlimitedClient(cluster.kubeconfig);
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
    log(
      `floor: all Pods exist after ${seconds(floor.timing.allExistMs)} s, all Running after ${seconds(floor.timing.allRunningMs)} s`,
    );
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

    // Operator phase, as the chart installs it (--finalizer-policy: with its opt-in policy).
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
    const config: ControllerProcessConfig = {
      kubeconfig: cluster.kubeconfig,
      namespace: ns,
      workers: opts.workers,
      qps: opts.qps,
      burst: opts.burst,
    };
    const controller = await BenchChild.start({
      entry: 'controller-process',
      env: { BENCH_CONTROLLER: JSON.stringify(config) },
    });
    // Its informers are synced (on an empty namespace): the operator process before any work.
    const before = await controller.memory({ gc: true });
    const start = await controller.counts();
    const countsStart = start.requestCounts;
    const byResourceStart = start.byResource;
    const sentAt: number[] = [];
    log(
      `operator: creating ${opts.n} AgentWorkloads at concurrency ${opts.concurrency} (workers ${opts.workers}, qps ${opts.qps})`,
    );
    const startMemory = await controller.memory();
    const lag = new LagMonitor().start();
    const cpu0 = process.cpuUsage();
    const t0 = nowMs();
    const pool = await runPool(opts.n, opts.concurrency, async (i) => {
      sentAt[i] = nowMs();
      await kube.resource<Workload>(AGENT_WORKLOADS).create(ns, manifests[i] as Workload);
    });
    const sendMs = nowMs() - t0;
    manifests.length = 0;
    const expected = opts.n - pool.errors;
    await workloads
      .until(
        () => workloads.reachedPhase.size >= expected && pods.firstSeen.size >= expected,
        waitMsFor(opts.n),
        'the AgentWorkloads to be Running',
      )
      .catch((err: Error) => log(err.message));
    const opTiming = timing(
      t0,
      sentAt,
      names,
      pods.firstSeen,
      workloads.reachedPhase,
      sendMs,
      pool,
      workloads.phases(),
    );
    opTiming.schedulingFailures = await schedulingFailures(kube, ns);
    opTiming.allBoundMs = claims.allBoundMs(t0);
    const cpu = process.cpuUsage(cpu0);
    const lagStats = lag.read();
    lag.stop();
    const converge = {
      lagP99: lagStats.p99,
      lagMax: lagStats.max,
      cpu: (cpu.user + cpu.system) / 1000 / Math.max(1, nowMs() - t0),
    };
    const convergedCounts = await controller.counts();
    const countsConverged = convergedCounts.requestCounts;
    const byResourceConverged = convergedCounts.byResource;
    const convergedMemory = await controller.memory();
    const converged = convergedMemory.rss;
    const controllerCpu = (convergedMemory.cpuMs - startMemory.cpuMs) / Math.max(1, nowMs() - t0);
    const perWorkload = (m: Map<string, number>): Array<[string, number]> =>
      sortedEntries(m).map(([k, v]) => [k, v / Math.max(1, expected)]);
    const used = diff(countsConverged, countsStart);
    const podsRunning = timing(
      t0,
      sentAt,
      names,
      pods.firstSeen,
      pods.reachedPhase,
      sendMs,
      pool,
      {},
    );
    log(
      `operator: all Pods exist after ${seconds(opTiming.allExistMs)} s, all Pods Running after ${seconds(podsRunning.allRunningMs)} s (p50 ${seconds(podsRunning.runningP50)} s), all AgentWorkloads Running after ${seconds(opTiming.allRunningMs)} s (p50 ${seconds(opTiming.runningP50)} s)`,
    );

    // Events are posted without waiting and requests may still sit in the client's limiter:
    // let those drain before the quiet window starts.
    const settleMs = 5_000;
    await sleep(settleMs);
    log(
      `idle: counting the operator's API requests for ${Math.round(opts.idleMs / 1000)} s with nothing changing`,
    );
    const idleCounts = await controller.counts();
    const idleStart = idleCounts.requestCounts;
    const idleByResourceStart = idleCounts.byResource;
    const unconverged = expected - workloads.reachedPhase.size;
    if (unconverged > 0)
      log(`idle: ${unconverged} workloads are not Running yet; the window is not quiet`);
    await sleep(opts.idleMs);
    const idleEnd = await controller.counts();
    const idleUsed = diff(idleEnd.requestCounts, idleStart);
    const idleByResource = diff(idleEnd.byResource, idleByResourceStart);
    const idleWrites = writesIn(idleUsed);

    const after = await controller.memory({ gc: true });
    await Promise.all([pods.stop(), workloads.stop(), claims.stop()]);
    await controller.stop();
    await removeFinalizerPolicy();
    if (!cluster.dedicated) await deleteNamespace(kube, ns);

    return {
      options: opts,
      baseline: base.timing,
      floor: floor.timing,
      statusFloor: statusFloor.timing,
      operator: opTiming,
      requestsPerWorkload: perWorkload(used),
      requestsPerWorkloadByResource: perWorkload(diff(byResourceConverged, byResourceStart)),
      writesPerWorkload: writesIn(used) / Math.max(1, expected),
      rss: {
        before: before.rss,
        peak: after.peakRss,
        converged,
        afterGc: after.rss,
        heapBefore: before.heapUsed,
        heapAfterGc: after.heapUsed,
      },
      emptyOperatorRss,
      converge,
      controllerCpu,
      idle: {
        seconds: opts.idleMs / 1000,
        settleSeconds: settleMs / 1000,
        writes: idleWrites,
        writesPerMin: (idleWrites * 60_000) / opts.idleMs,
        unconverged,
        requests: sortedEntries(idleUsed),
        byResource: sortedEntries(idleByResource),
      },
      baselineNamespaceGone,
    };
  } finally {
    kube.close();
    cluster.stop();
  }
}

function verdict(ok: boolean): string {
  return ok ? 'meets' : '**misses**';
}

/** Writes in a window where some workloads were still converging are not idle writes. */
export function idleVerdict(r: WorkloadBenchResult): string {
  if (r.idle.writesPerMin <= WORKLOAD_TARGETS.idleWritesPerMin) return 'meets';
  return r.idle.unconverged > 0 ? 'not judged: the window was not quiet' : '**misses**';
}

function ms(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'n/a';
}

export function renderWorkloadReport(r: WorkloadBenchResult): string {
  const o = r.options;
  const b = r.baseline;
  const op = r.operator;
  const existRatio = op.allExistMs / b.allExistMs;
  const runRatio = op.allRunningMs / b.allRunningMs;
  const rssTarget = WORKLOAD_TARGETS.rssMiB * MiB;
  const lines: string[] = [];
  lines.push(`## Workloads: ${o.n} AgentWorkloads at concurrency ${o.concurrency}`);
  lines.push('');
  lines.push(
    `WorkloadController in a process of its own (workers ${o.workers}, client limit ${o.qps} qps / burst ${o.burst}, its own KubeClient); ` +
      `the real agent shape (test/fixtures/agent-workload-example.ts: 2 init containers, main, MCP + Ziti sidecars, ` +
      `one persistent workspace → one PVC per workload; start grace ${BENCH_START_GRACE_SECONDS} s, see bench/lib/shapes.ts). ` +
      `Baseline, same run and cluster: the same PVC and Pod (built by the same pod builder) created directly at the ` +
      `same concurrency.`,
  );
  lines.push('');
  lines.push('| Figure | Operator | Baseline (raw Pods) | Ratio | Target |');
  lines.push('|---|---:|---:|---:|---|');
  lines.push(
    `| Time until all Pods exist | ${seconds(op.allExistMs)} s | ${seconds(b.allExistMs)} s | ${fixed(existRatio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× — ${verdict(existRatio <= WORKLOAD_TARGETS.ratio)} |`,
  );
  const f = r.floor;
  lines.push(
    `| Floor: time until all Pods exist when the load generator itself sends each AgentWorkload, its PATCH, PVC and Pod (no controller) | ${seconds(f.allExistMs)} s | ${seconds(b.allExistMs)} s | ${fixed(f.allExistMs / b.allExistMs)}× | |`,
  );
  const fr = floorRatios(r);
  lines.push(
    `| Operator ÷ floor: time until all Pods exist (what the controller itself adds) | ${seconds(op.allExistMs)} s | ${seconds(f.allExistMs)} s (floor) | ${fixed(fr.exist)}× | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} — ${floorVerdict(fr.existOk, r)} |`,
  );
  lines.push(
    `| Time until all Running (operator: status.phase written; baseline: Pod phase) | ${seconds(op.allRunningMs)} s | ${seconds(b.allRunningMs)} s | ${fixed(runRatio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× — ${verdict(runRatio <= WORKLOAD_TARGETS.ratio)} |`,
  );
  lines.push(
    `| Floor: time until all Pods Running (no controller, so no status written) | ${seconds(f.allRunningMs)} s | ${seconds(b.allRunningMs)} s | ${fixed(f.allRunningMs / b.allRunningMs)}× | |`,
  );
  lines.push(
    `| Operator ÷ floor: time until all Running (operator: status.phase written; floor: Pod phase) | ${seconds(op.allRunningMs)} s | ${seconds(f.allRunningMs)} s (floor) | ${fixed(fr.running)}× | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} — ${floorVerdict(fr.runningOk, r)} |`,
  );
  const sf = r.statusFloor;
  lines.push(
    `| Status floor: time until all AgentWorkloads Running when the load generator adds to the floor owner references on the PVC and Pod, a Starting status with the Pod and a Running status when the Pod runs (what a correct controller writes; no controller) | ${seconds(sf.allRunningMs)} s | ${seconds(b.allRunningMs)} s | ${fixed(sf.allRunningMs / b.allRunningMs)}× | |`,
  );
  lines.push(
    `| Status floor ÷ floor: time until all Running (what the status writes alone cost) | ${seconds(sf.allRunningMs)} s | ${seconds(f.allRunningMs)} s (floor) | ${fixed(sf.allRunningMs / f.allRunningMs)}× | |`,
  );
  lines.push(
    `| Operator ÷ status floor: time until all Running (what the controller adds beyond the writes) | ${seconds(op.allRunningMs)} s | ${seconds(sf.allRunningMs)} s (status floor) | ${fixed(op.allRunningMs / sf.allRunningMs)}× | |`,
  );
  const refused = (t: PhaseTiming) =>
    t.schedulingFailures
      ? `${t.schedulingFailures.pods} Pods / ${t.schedulingFailures.attempts} refusals`
      : 'n/a';
  const bound = (t: PhaseTiming) =>
    t.allBoundMs === undefined ? 'n/a' : `${seconds(t.allBoundMs)} s`;
  lines.push(
    `| Time until all claims are Bound (the PV controller's part of a start): operator / baseline; floor ${bound(f)}, status floor ${bound(sf)} | ${bound(op)} | ${bound(b)} | | |`,
  );
  lines.push(
    `| Pods the scheduler refused at least once (FailedScheduling Events, e.g. an unbound claim): operator / baseline; floor ${refused(f)}, status floor ${refused(sf)} | ${refused(op)} | ${refused(b)} | | |`,
  );
  lines.push(
    `| Throughput until Running | ${fixed(o.n / (op.allRunningMs / 1000), 1)} /s | ${fixed(o.n / (b.allRunningMs / 1000), 1)} /s | | |`,
  );
  lines.push(
    `| create → Pod seen, p50 | ${ms(op.existP50)} | ${ms(b.existP50)} | ${fixed(op.existP50 / b.existP50)}× | |`,
  );
  lines.push(
    `| create → Pod seen, p95 | ${ms(op.existP95)} | ${ms(b.existP95)} | ${fixed(op.existP95 / b.existP95)}× | |`,
  );
  lines.push(
    `| create → Running, p50 | ${ms(op.runningP50)} | ${ms(b.runningP50)} | ${fixed(op.runningP50 / b.runningP50)}× | |`,
  );
  lines.push(
    `| create → Running, p95 | ${ms(op.runningP95)} | ${ms(b.runningP95)} | ${fixed(op.runningP95 / b.runningP95)}× | |`,
  );
  lines.push(
    `| Time to send all creates (load generator) | ${seconds(op.sendMs)} s | ${seconds(b.sendMs)} s | | |`,
  );
  lines.push(
    `| API writes per workload | ${fixed(r.writesPerWorkload)} | ${fixed(2)} (PVC + Pod) | ${fixed(r.writesPerWorkload / 2)}× | minimal |`,
  );
  lines.push(`| Create errors | ${op.errors} | ${b.errors} | | 0 |`);
  const phaseText = (p: Record<string, number>): string =>
    Object.entries(p)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
  lines.push(
    `| Reached Running (phases at the end of the wait) | ${op.running}/${o.n} (${phaseText(op.phases)}) | ${b.running}/${o.n} (${phaseText(b.phases)}) | | all |`,
  );
  const atN = o.n < WORKLOAD_TARGETS.rssAtN ? ` (measured at ${o.n})` : '';
  lines.push(
    `| Operator RSS, peak: the controller's own process (compiled JS, plain node), VmHWM | ${mib(r.rss.peak)} MiB | ${mib(r.emptyOperatorRss)} MiB empty operator process (modules loaded) | +${mib(r.rss.peak - r.emptyOperatorRss)} MiB | ≤ ${WORKLOAD_TARGETS.rssMiB} MiB at ${WORKLOAD_TARGETS.rssAtN} — ${verdict(r.rss.peak <= rssTarget)}${atN} |`,
  );
  lines.push(
    `| Operator RSS: informers synced, before the first create / after convergence / after GC | ${mib(r.rss.before)} / ${mib(r.rss.converged)} / ${mib(r.rss.afterGc)} MiB | | | |`,
  );
  lines.push(
    `| JS heap used after GC | ${mib(r.rss.heapAfterGc)} MiB | ${mib(r.rss.heapBefore)} MiB | +${mib(r.rss.heapAfterGc - r.rss.heapBefore)} MiB | |`,
  );
  lines.push(
    `| Controller process CPU from the first create to convergence (1.0 = one core; the machine has 2, shared with the control plane) | ${fixed(r.controllerCpu)} | | | |`,
  );
  lines.push(
    `| Load generator process: event-loop lag while converging, p99 / max; CPU (1.0 = one core) | ${fixed(r.converge.lagP99, 1)} / ${fixed(r.converge.lagMax, 1)} ms; ${fixed(r.converge.cpu)} | | | |`,
  );
  lines.push(
    `| API writes per minute when nothing changes (${r.idle.seconds.toFixed(0)} s after convergence) | ${fixed(r.idle.writesPerMin, 1)}${r.idle.unconverged ? ` (${r.idle.unconverged} workload(s) still converging in the window)` : ''} | | | ${WORKLOAD_TARGETS.idleWritesPerMin} — ${idleVerdict(r)} |`,
  );
  lines.push('');
  lines.push(
    `API requests per workload by verb (the controller's \`KubeClient.requestCounts\`, from controller start to convergence, ÷ ${o.n}): ` +
      r.requestsPerWorkload.map(([k, v]) => `${k} ${fixed(v, 3)}`).join(', ') +
      '.',
  );
  lines.push('');
  lines.push(
    'The same by resource: ' +
      r.requestsPerWorkloadByResource.map(([k, v]) => `${k} ${fixed(v, 3)}`).join(', ') +
      '.',
  );
  lines.push('');
  lines.push(
    `Idle window (${r.idle.seconds.toFixed(0)} s, starting ${r.idle.settleSeconds.toFixed(0)} s after the last status was observed) requests: ` +
      (r.idle.requests.length === 0
        ? 'none'
        : r.idle.requests.map(([k, v]) => `${k} ${v}`).join(', ')) +
      (r.idle.byResource.length
        ? ` (${r.idle.byResource.map(([k, v]) => `${k} ${v}`).join(', ')})`
        : '') +
      '.',
  );
  if (op.firstErrors.length || b.firstErrors.length) {
    lines.push('');
    lines.push(`First errors: ${[...op.firstErrors, ...b.firstErrors].join(' | ')}`);
  }
  lines.push('');
  lines.push(
    `Notes: times run from the first create sent to the last object observed in a watch of this process. ` +
      `The controller runs in a process of its own (bench/lib/controller-process.ts: the WorkloadController with its ` +
      `informers and its own client, as in the operator), so its RSS is measured, peak included (VmHWM), apart from ` +
      `the load generator and the two watch observers of this process. ` +
      `Floor: the "Floor" rows are measured in the same run with no controller at all: the load generator itself ` +
      `sends each AgentWorkload and, the moment it is created, its metadata PATCH (the finalizer's), PVC and Pod, ` +
      `which is what the issue requires to happen before a workload's Pod exists. Its ratio to the raw baseline is ` +
      `the least any controller could reach on this cluster (the API server, etcd, kwok, the scheduler and the ` +
      `controller share 2 cores); "Operator ÷ floor" is what the controller itself adds. ` +
      (r.options.finalizerPolicy
        ? `The operator's phase has the chart's opt-in finalizer MutatingAdmissionPolicy bound to its namespace ` +
          `(--finalizer-policy), so it makes no finalizer PATCH; the floors keep theirs. `
        : `The operator's phase runs as the chart installs it by default: without the opt-in finalizer policy ` +
          `(--finalizer-policy), so the controller adds the finalizer with a PATCH, as the floors do. `) +
      `The status floor adds what a correct controller must: owner references on the PVC and Pod, ` +
      `and the two status writes kstatus needs (Starting with the Pod, Running when it runs), so its "all Running" ` +
      `is a status.phase, as the operator's is. Each phase starts once the previous one's namespace and the volumes ` +
      `its claims were bound to are gone. ` +
      (r.baselineNamespaceGone
        ? ''
        : " A previous phase's namespace or volumes were still going when the next phase began.") +
      (gcAvailable() ? '' : ' (GC not exposed: run with --expose-gc for the after-GC figures.)'),
  );
  return lines.join('\n');
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
