/**
 * One StartWorkload phase of bench:grpc: N StartWorkload calls from the forked load
 * generator against a target process (the direct runner, or the operator: shim and
 * controller), the same observer informer on the namespace's Pods (and, for the operator,
 * on its AgentWorkloads' status), and the target process's API requests, CPU and RSS
 * (VmHWM) over the phase.
 */
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import type { BenchChild } from './bench-child.ts';
import type { StartResult } from './grpc-load.ts';
import type { LoadGenerator } from './load-client.ts';
import { diff, sortedEntries, writesIn } from './request-tally.ts';
import type { StartShape } from './shapes.ts';
import { nowMs, sleep } from './stats.ts';
import { Tracker } from './tracker.ts';

export type StartTarget = 'direct' | 'crFloor' | 'shim';

export interface StartPhase {
  target: StartTarget;
  n: number;
  /** First call → every started Pod Running, as the observer informer saw it. */
  allRunningMs: number;
  podsRunning: number;
  /** Shim only: first call → every AgentWorkload's status Running (what Inspect reports). */
  statusRunningMs?: number;
  rpc: StartResult;
  /** API requests of the target process per started workload (reads, watches included). */
  requestsPerWorkload: number;
  writesPerWorkload: number;
  byResource: Array<[string, number]>;
  /** CPU of the target process from the first call until everything was Running. */
  cpuMs: number;
  /** The target process's peak RSS (VmHWM) during the phase, and its RSS when it ended. */
  rssPeak: number;
  rssEnd: number;
}

/** After everything is Running, writes that follow (a coalesced status, an Event) still count. */
const SETTLE_MS = 2_000;

export interface StartPhaseOptions {
  target: StartTarget;
  n: number;
  concurrency: number;
  shape: StartShape;
  loadgen: LoadGenerator;
  address: string;
  /** The target's process: its request tally, CPU and memory. */
  process: BenchChild;
  observer: KubeClient;
  namespace: string;
  /** Shim only: also wait for every AgentWorkload's status Running. */
  statusRunning?: boolean;
  log: (message: string) => void;
}

export async function runStartPhase(o: StartPhaseOptions): Promise<StartPhase> {
  const pods = new Tracker(o.observer, PODS, o.namespace, 'Running');
  const workloads = o.statusRunning
    ? new Tracker(o.observer, AGENT_WORKLOADS, o.namespace, 'Running')
    : undefined;
  await Promise.all([pods.start(), workloads?.start()]);
  const before = (await o.process.counts()).byResource;
  const m0 = await o.process.memory({ resetPeak: true });
  o.log(`${o.target}: ${o.n} StartWorkloads (${o.shape}) at concurrency ${o.concurrency}`);
  const t0 = nowMs();
  const rpc = await o.loadgen.run<StartResult>({
    type: 'start',
    address: o.address,
    count: o.n,
    concurrency: o.concurrency,
    shape: o.shape,
  });
  const expected = o.n - rpc.errors;
  const timeoutMs = Math.max(180_000, o.n * 300);
  await pods
    .until(() => pods.reachedPhase.size >= expected, timeoutMs, `the ${o.target} Pods to run`)
    .catch((err: Error) => o.log(err.message));
  const allRunningMs = Math.max(0, ...pods.reachedPhase.values()) - t0;
  let statusRunningMs: number | undefined;
  if (workloads) {
    const statusRunning = workloads.reachedPhase;
    await workloads
      .until(() => statusRunning.size >= expected, timeoutMs, 'the AgentWorkloads Running')
      .catch((err: Error) => o.log(err.message));
    statusRunningMs = Math.max(0, ...statusRunning.values()) - t0;
  }
  const m1 = await o.process.memory();
  await sleep(SETTLE_MS);
  const counts = diff((await o.process.counts()).byResource, before);
  const m2 = await o.process.memory();
  await Promise.all([pods.stop(), workloads?.stop()]);
  let requests = 0;
  for (const v of counts.values()) requests += v;
  const started = Math.max(1, expected);
  o.log(
    `${o.target}: all ${pods.reachedPhase.size} Pods Running after ${(allRunningMs / 1000).toFixed(2)} s`,
  );
  return {
    target: o.target,
    n: o.n,
    allRunningMs,
    podsRunning: pods.reachedPhase.size,
    statusRunningMs,
    rpc,
    requestsPerWorkload: requests / started,
    writesPerWorkload: writesIn(counts) / started,
    byResource: sortedEntries(counts),
    cpuMs: m1.cpuMs - m0.cpuMs,
    rssPeak: m2.peakRss,
    rssEnd: m2.rss,
  };
}
