/**
 * bench:workloads' phases without the operator: the warm-up, the raw baseline, the
 * no-controller floor and status floor (the load generator's own writes, timed by watches of
 * this process), and what each phase's figures are made of.
 */
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { EVENTS, PODS, PVCS, type ResourceType } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { ownerReference } from '../../src/api/common.ts';
import { createNamespace, deleteNamespace } from './cluster.ts';
import { runPool } from './pool.ts';
import { agentWorkload, benchRunner, rawObjectsFor } from './shapes.ts';
import { nowMs, percentile, seconds, sleep } from './stats.ts';
import { Tracker } from './tracker.ts';
import { PhaseCpuMeter } from './process-cpu.ts';
import type { PhaseTiming, SchedulingFailures, WorkloadBenchOptions } from './workload-options.ts';

type Pvc = IPersistentVolumeClaim & KubeObject;
type Pod = IPod & KubeObject;
export type Workload = AgentWorkload & KubeObject;

export function log(message: string): void {
  process.stderr.write(`[bench:workloads] ${message}\n`);
}

/** Watches a namespace's claims; `bound(t0)` says when they were seen Bound, from t0. */
export function claimTracker(kube: KubeClient, ns: string) {
  const tracker = new Tracker(kube, PVCS, ns, 'Bound');
  return {
    start: () => tracker.start(),
    stop: () => tracker.stop(),
    bound: (t0: number): Pick<PhaseTiming, 'allBoundMs' | 'boundP50Ms' | 'boundP90Ms'> => {
      const times = [...tracker.reachedPhase.values()].map((t) => t - t0);
      return {
        allBoundMs: Math.max(0, ...times),
        boundP50Ms: percentile(times, 50),
        boundP90Ms: percentile(times, 90),
      };
    },
  };
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
export async function clearPhase(kube: KubeClient, ns: string, waitMs: number): Promise<boolean> {
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
export async function schedulingFailures(
  kube: KubeClient,
  ns: string,
): Promise<SchedulingFailures> {
  type Event = KubeObject & { count?: number; involvedObject?: { name?: string } };
  const events = await kube
    .resource<Event>(EVENTS)
    .list(ns, { fieldSelector: 'reason=FailedScheduling' })
    .catch(() => ({ items: [] as Event[] }));
  const pods = new Set(events.items.map((e) => e.involvedObject?.name));
  const attempts = events.items.reduce((sum, e) => sum + (e.count ?? 1), 0);
  return { pods: pods.size, attempts };
}

export function timing(
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

export function waitMsFor(n: number): number {
  return Math.max(300_000, n * 600);
}

export async function warmUp(kube: KubeClient, count: number): Promise<void> {
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

export type RawObjects = ReturnType<typeof rawObjectsFor>;

export interface DirectPhaseHooks {
  /** Called when a Pod first runs; with it, "Running" is the AgentWorkload's status.phase. */
  onPodRunning?: (ns: string, name: string) => void;
  /** Starts a helper on the phase's namespace before the first create; returns its stop. */
  setup?: (
    ns: string,
    manifests: AgentWorkload[],
    objects: RawObjects[],
  ) => Promise<() => Promise<void>>;
}

/**
 * N workloads' PVCs and Pods created by the load generator itself at the benchmark's
 * concurrency (`send` makes one workload's objects), timed by a watch of the Pods.
 */
export async function directPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
  name: string,
  description: string,
  send: (ns: string, workload: AgentWorkload, objects: RawObjects) => Promise<void>,
  hooks: DirectPhaseHooks = {},
): Promise<{ timing: PhaseTiming; ns: string }> {
  const { onPodRunning } = hooks;
  const ns = await createNamespace(kube, `bench-${name}`);
  const runner = benchRunner();
  const manifests = Array.from({ length: opts.n }, () => agentWorkload(ns));
  const objects = manifests.map((aw) => rawObjectsFor(aw, runner));
  const stopHelper = await hooks.setup?.(ns, manifests, objects);
  const names = objects.map((o) => o.pod.metadata?.name ?? '');
  const pods = new Tracker(kube, PODS, ns, 'Running', undefined, (pod) => onPodRunning?.(ns, pod));
  const statuses = onPodRunning ? new Tracker(kube, AGENT_WORKLOADS, ns, 'Running') : undefined;
  const running = statuses ?? pods;
  const claims = claimTracker(kube, ns);
  await Promise.all([pods.start(), statuses?.start(), claims.start()]);
  const sentAt: number[] = [];
  log(`${name}: ${description}, at concurrency ${opts.concurrency}`);
  const cpu = new PhaseCpuMeter(opts.stateDir);
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
  const phaseCpu = cpu.read();
  const phases = running.phases();
  await Promise.all([pods.stop(), statuses?.stop(), claims.stop(), stopHelper?.()]);
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
  Object.assign(result, claims.bound(t0));
  result.cpu = phaseCpu;
  return { timing: result, ns };
}

/** The raw baseline: each workload's PVC, then its Pod, with no AgentWorkload. */
export function baselinePhase(
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
export async function floorPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  const floor = await directPhase(
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
  log(
    `floor: all Pods exist after ${seconds(floor.timing.allExistMs)} s, all Running after ${seconds(floor.timing.allRunningMs)} s`,
  );
  return floor;
}

/**
 * The floor with what a correct controller must add: the Pod and claim owned by the
 * AgentWorkload (owner references, as the operator sets them, so the garbage collector tracks
 * them), and the floor's writes plus, sent with them, a first status (Starting, with observedGeneration, so that
 * kstatus does not call the new workload Current), and a Running status the moment its Pod
 * is seen running. Its "all Running" is the AgentWorkloads' status.phase, as the operator's.
 */
export function statusFloorPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  return directPhase(
    kube,
    opts,
    'status-floor',
    `creating ${opts.n} AgentWorkloads, each followed at once by its PATCH, owned PVC and Pod and Starting status, and a Running status when its Pod runs (no controller)`,
    async (ns, workload, o) => {
      const created = await workloads.create(ns, workload as Workload);
      await statusFloorWrites(kube, created, o);
    },
    { onPodRunning: (ns, name) => writeRunning(kube, ns, name, 'status-floor') },
  );
}

/**
 * What a correct controller writes for a new workload, all at once: its metadata PATCH (an
 * annotation the size of the finalizer), the claim and Pod owned by it, and a first status
 * (Starting, with observedGeneration, so that kstatus does not call it Current).
 */
export async function statusFloorWrites(
  kube: KubeClient,
  created: Workload,
  o: RawObjects,
): Promise<void> {
  const { namespace: ns, name } = created.metadata;
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  const owned = <T extends { metadata?: object }>(obj: T): T => ({
    ...obj,
    metadata: {
      ...obj.metadata,
      ownerReferences: [
        ownerReference('AgentWorkload', created, { controller: true, blockOwnerDeletion: true }),
      ],
    },
  });
  await Promise.all([
    // No resourceVersion precondition: the Starting status sent beside it would make it conflict.
    workloads.mergePatch(ns, name, {
      metadata: { annotations: { 'bench.agyn.io/floor': 'patched' } },
    }),
    ...o.pvcs.map((pvc) => kube.resource<Pvc>(PVCS).create(ns, owned(pvc) as Pvc)),
    kube.resource<Pod>(PODS).create(ns, owned(o.pod) as Pod),
    workloads.mergePatch(
      ns,
      name,
      { status: { phase: 'Starting', observedGeneration: created.metadata.generation } },
      'status',
    ),
  ]);
}

/** The Running status a controller writes the moment the workload's Pod runs. */
export function writeRunning(kube: KubeClient, ns: string, name: string, phase: string): void {
  kube
    .resource<Workload>(AGENT_WORKLOADS)
    .mergePatch(ns, name, { status: { phase: 'Running' } }, 'status')
    .catch((err: Error) => log(`${phase}: ${name}: ${err.message}`));
}
