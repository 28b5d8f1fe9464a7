/**
 * npm run bench:grpc [-- --start-n 200 --c 32 --duration 10s --rounds 2 --grpc-warmup 2s --workers 4 --qps 200]
 *
 * The gRPC shim and the WorkloadController in this process (sharing their informers as
 * src/main.ts does), the clients in a forked load generator. Measures StartWorkload
 * throughput until Running (baseline: the same Secrets, PVCs and Pods created directly),
 * then InspectWorkload latency and req/s at C concurrent clients beside the trivial unary
 * Ready at the same concurrency, and the process RSS. Uses KUBECONFIG when set, else a
 * dedicated loopback cluster in a temp dir.
 */
import { pathToFileURL } from 'node:url';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { Secret } from '../src/grpc/translate.ts';
import type { KubeClient, KubeObject } from '../src/kube/client.ts';
import { PODS, PVCS, SECRETS } from '../src/kube/resources.ts';
import { parseArgs, type Args } from './lib/args.ts';
import {
  acquireCluster,
  createNamespace,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
} from './lib/cluster.ts';
import type { LoadResult, StartResult } from './lib/grpc-load.ts';
import { LoadGenerator } from './lib/load-client.ts';
import { startOperator } from './lib/operator.ts';
import { runPool } from './lib/pool.ts';
import { agentStartRequest, benchRunner, rawObjectsForStart } from './lib/shapes.ts';
import {
  LagMonitor,
  MemorySampler,
  fixed,
  gc,
  mib,
  nowMs,
  percentilesOf,
  seconds,
} from './lib/stats.ts';
import { Tracker } from './lib/tracker.ts';

export interface GrpcBenchOptions {
  startN: number;
  concurrency: number;
  /** Measured time per method, split over `rounds` alternating Ready/Inspect rounds. */
  durationMs: number;
  rounds: number;
  warmupMs: number;
  workers: number;
  qps: number;
  burst: number;
}

export const GRPC_TARGETS = { inspectP99Ms: 5, inspectRps: 5000 };

export function grpcOptions(args: Args): GrpcBenchOptions {
  return {
    startN: args.int('start-n', 200),
    concurrency: args.int('c', 32),
    durationMs: args.durationMs('duration', 10_000),
    rounds: Math.max(1, args.int('rounds', 2)),
    warmupMs: args.durationMs('grpc-warmup', 2_000),
    workers: args.int('workers', 4),
    qps: args.number('qps', 200),
    burst: args.number('burst', 400),
  };
}

interface LoadFigures extends LoadResult {
  /** CPU used by this (the operator's) process during the run, as a share of one core. */
  serverCpu: number;
  lagP99: number;
  /** req/s of each round, to show the spread. */
  roundRps?: number[];
}

export interface GrpcBenchResult {
  options: GrpcBenchOptions;
  start: {
    operatorMs: number;
    baselineMs: number;
    rpc: StartResult;
    baselineErrors: number;
    running: number;
  };
  ready: LoadFigures;
  inspect: LoadFigures;
  rss: { before: number; peak: number; afterGc: number; heapBefore: number; heapAfterGc: number };
  /** Peak RSS of this process during each phase. */
  phasePeakRss: { start: number; ready: number; inspect: number };
}

type Pod = IPod & KubeObject;
type Pvc = IPersistentVolumeClaim & KubeObject;

function log(message: string): void {
  process.stderr.write(`[bench:grpc] ${message}\n`);
}

async function startBaseline(
  kube: KubeClient,
  opts: GrpcBenchOptions,
): Promise<{ ms: number; errors: number }> {
  const ns = await createNamespace(kube, 'bench-grpc-raw');
  const runner = benchRunner();
  const objects = Array.from({ length: opts.startN }, () =>
    rawObjectsForStart(agentStartRequest(), ns, runner),
  );
  const pods = new Tracker(kube, PODS, ns, 'Running');
  await pods.start();
  log(
    `baseline: creating the Secrets, PVCs and Pods of ${opts.startN} workloads directly at concurrency ${opts.concurrency}`,
  );
  const t0 = nowMs();
  const pool = await runPool(objects.length, opts.concurrency, async (i) => {
    const o = objects[i]!;
    for (const s of o.secrets) await kube.resource<Secret>(SECRETS).create(ns, s);
    for (const pvc of o.pvcs) await kube.resource<Pvc>(PVCS).create(ns, pvc as Pvc);
    await kube.resource<Pod>(PODS).create(ns, o.pod as Pod);
  });
  const expected = opts.startN - pool.errors;
  await pods
    .until(
      () => pods.reachedPhase.size >= expected,
      Math.max(180_000, opts.startN * 300),
      'the baseline Pods to run',
    )
    .catch((err: Error) => log(err.message));
  const last = Math.max(0, ...pods.reachedPhase.values());
  await pods.stop();
  await deleteNamespace(kube, ns, 120_000);
  return { ms: last - t0, errors: pool.errors };
}

export async function runGrpcBench(
  opts: GrpcBenchOptions,
  kubeconfig?: string,
): Promise<GrpcBenchResult> {
  const cluster = acquireCluster(kubeconfig);
  stopOnSignals(cluster);
  const kube = unlimitedClient(cluster.kubeconfig);
  const loadgen = new LoadGenerator();
  try {
    const baseline = await startBaseline(kube, opts);
    log(`baseline: all Pods Running after ${seconds(baseline.ms)} s`);

    const ns = await createNamespace(kube, 'bench-grpc');
    gc();
    const before = process.memoryUsage();
    const sampler = new MemorySampler(200).start();
    const op = await startOperator(cluster.kubeconfig, ns, {
      workers: opts.workers,
      qps: opts.qps,
      burst: opts.burst,
      runner: benchRunner(),
    });
    const address = op.address;
    const running = op.running;

    log(`StartWorkload: ${opts.startN} agents over gRPC at concurrency ${opts.concurrency}`);
    const t0 = nowMs();
    const rpc = await loadgen.run<StartResult>({
      type: 'start',
      address,
      count: opts.startN,
      concurrency: opts.concurrency,
    });
    const expected = opts.startN - rpc.errors;
    await new Promise<void>((resolve) => {
      const deadline = nowMs() + Math.max(180_000, opts.startN * 300);
      const timer = setInterval(() => {
        if (running.size >= expected || nowMs() > deadline) {
          clearInterval(timer);
          resolve();
        }
      }, 50);
    });
    const operatorMs = Math.max(0, ...running.values()) - t0;
    log(`StartWorkload: all ${running.size} Running after ${seconds(operatorMs)} s`);
    const ids = rpc.ids.filter((id) => running.has(`workload-${id}`));

    // Ready and Inspect alternate (R I R I ...) so that a change in the shared machine's
    // load hits both alike; each round has its own warm-up.
    const roundMs = opts.durationMs / opts.rounds;
    const measure = async (method: 'ready' | 'inspect', round: number): Promise<LoadFigures> => {
      log(
        `${method} (round ${round + 1}/${opts.rounds}): ${opts.concurrency} clients for ${seconds(opts.warmupMs, 0)} s warm-up + ${seconds(roundMs, 1)} s`,
      );
      const lag = new LagMonitor().start();
      const cpu0 = process.cpuUsage();
      const w0 = nowMs();
      const result = await loadgen.run<LoadResult>({
        type: 'load',
        address,
        method,
        ids: ids.length ? ids : rpc.ids,
        concurrency: opts.concurrency,
        warmupMs: opts.warmupMs,
        durationMs: roundMs,
        raw: true,
      });
      const cpu = process.cpuUsage(cpu0);
      const lagStats = lag.read();
      lag.stop();
      return {
        ...result,
        serverCpu: (cpu.user + cpu.system) / 1000 / (nowMs() - w0),
        lagP99: lagStats.p99,
      };
    };
    const phasePeakRss = { start: sampler.peakRss, ready: 0, inspect: 0 };
    const parts: Record<'ready' | 'inspect', LoadFigures[]> = { ready: [], inspect: [] };
    for (let round = 0; round < opts.rounds; round++) {
      for (const method of ['ready', 'inspect'] as const) {
        sampler.reset();
        parts[method].push(await measure(method, round));
        phasePeakRss[method] = Math.max(phasePeakRss[method], sampler.peakRss);
      }
    }
    const ready = mergeRounds(parts.ready);
    const inspect = mergeRounds(parts.inspect);

    gc();
    const after = process.memoryUsage();
    sampler.stop();
    await op.stop();
    if (!cluster.dedicated) await deleteNamespace(kube, ns);
    return {
      options: opts,
      start: {
        operatorMs,
        baselineMs: baseline.ms,
        rpc,
        baselineErrors: baseline.errors,
        running: running.size,
      },
      ready,
      inspect,
      phasePeakRss,
      rss: {
        before: before.rss,
        peak: Math.max(phasePeakRss.start, phasePeakRss.ready, phasePeakRss.inspect, after.rss),
        afterGc: after.rss,
        heapBefore: before.heapUsed,
        heapAfterGc: after.heapUsed,
      },
    };
  } finally {
    loadgen.close();
    kube.close();
    cluster.stop();
  }
}

/** One figure from several rounds: latencies pooled, throughput over the summed time. */
function mergeRounds(rounds: LoadFigures[]): LoadFigures {
  const all = new Float64Array(rounds.reduce((n, r) => n + (r.latencies?.length ?? 0), 0));
  let at = 0;
  for (const r of rounds) {
    all.set(r.latencies ?? [], at);
    at += r.latencies?.length ?? 0;
  }
  const [p50, p90, p99, p999, max] = percentilesOf(all, [50, 90, 99, 99.9, 100]);
  const secs = rounds.reduce((n, r) => n + r.seconds, 0);
  const calls = rounds.reduce((n, r) => n + r.calls, 0);
  const avg = (f: (r: LoadFigures) => number): number =>
    rounds.reduce((n, r) => n + f(r), 0) / rounds.length;
  return {
    type: 'loaded',
    method: rounds[0]?.method ?? '',
    calls,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    firstErrors: rounds.flatMap((r) => r.firstErrors).slice(0, 5),
    seconds: secs,
    rps: calls / secs,
    p50: p50 ?? Number.NaN,
    p90: p90 ?? Number.NaN,
    p99: p99 ?? Number.NaN,
    p999: p999 ?? Number.NaN,
    max: max ?? Number.NaN,
    clientCpu: avg((r) => r.clientCpu),
    serverCpu: avg((r) => r.serverCpu),
    lagP99: Math.max(...rounds.map((r) => r.lagP99)),
    roundRps: rounds.map((r) => r.rps),
  };
}

function verdict(ok: boolean): string {
  return ok ? 'meets' : '**misses**';
}

export function renderGrpcReport(r: GrpcBenchResult): string {
  const o = r.options;
  const s = r.start;
  const opRate = s.running / (s.operatorMs / 1000);
  const baseRate = (o.startN - s.baselineErrors) / (s.baselineMs / 1000);
  const i = r.inspect;
  const rd = r.ready;
  const lines: string[] = [];
  lines.push(`## gRPC shim: ${o.startN} StartWorkloads, then ${o.concurrency} concurrent clients`);
  lines.push('');
  lines.push(
    `Shim + WorkloadController in-process sharing their informers as src/main.ts does (workers ${o.workers}, ` +
      `client limit ${o.qps} qps / burst ${o.burst}); plain-text loopback listener (auth mode insecure); the ` +
      `clients in a forked process, ${o.concurrency} separate channels; Ready and Inspect alternate in ${o.rounds} ` +
      `rounds each (${seconds(o.warmupMs, 0)} s warm-up, then ${seconds(o.durationMs / o.rounds, 1)} s measured per round, ` +
      `${seconds(o.durationMs, 0)} s per method in all), so the shared machine's load changes hit both alike. ` +
      `Requests: the agent of shared/design/agent-pod-example.md.`,
  );
  lines.push('');
  lines.push('| Figure | Measured | Same-run baseline | Ratio | Target |');
  lines.push('|---|---:|---:|---:|---|');
  lines.push(
    `| StartWorkload throughput until Running | ${fixed(opRate, 1)} workloads/s (${s.running} in ${seconds(s.operatorMs)} s) | ${fixed(baseRate, 1)} /s: same Secrets + PVC + Pod created directly | ${fixed(opRate / baseRate)}× | |`,
  );
  lines.push(
    `| StartWorkload RPC latency p50 / p99 | ${fixed(s.rpc.p50, 1)} / ${fixed(s.rpc.p99, 1)} ms | | | |`,
  );
  lines.push(
    `| InspectWorkload throughput | ${fixed(i.rps, 0)} req/s | Ready: ${fixed(rd.rps, 0)} req/s | ${fixed(i.rps / rd.rps)}× | ≥ ${GRPC_TARGETS.inspectRps} req/s — ${verdict(i.rps >= GRPC_TARGETS.inspectRps)} |`,
  );
  lines.push(
    `| req/s per round (alternating) | Inspect ${(i.roundRps ?? []).map((v) => fixed(v, 0)).join(', ')} | Ready ${(rd.roundRps ?? []).map((v) => fixed(v, 0)).join(', ')} | | |`,
  );
  lines.push(
    `| InspectWorkload latency p50 | ${fixed(i.p50, 2)} ms | Ready: ${fixed(rd.p50, 2)} ms | ${fixed(i.p50 / rd.p50)}× | |`,
  );
  lines.push(
    `| InspectWorkload latency p99 | ${fixed(i.p99, 2)} ms | Ready: ${fixed(rd.p99, 2)} ms | ${fixed(i.p99 / rd.p99)}× | ≤ ${GRPC_TARGETS.inspectP99Ms} ms — ${verdict(i.p99 <= GRPC_TARGETS.inspectP99Ms)} |`,
  );
  lines.push(
    `| InspectWorkload latency p90 / p99.9 / max | ${fixed(i.p90, 2)} / ${fixed(i.p999, 2)} / ${fixed(i.max, 1)} ms | Ready: ${fixed(rd.p90, 2)} / ${fixed(rd.p999, 2)} / ${fixed(rd.max, 1)} ms | | |`,
  );
  lines.push(
    `| CPU during the run, operator / clients (1.0 = one core) | Inspect ${fixed(i.serverCpu)} / ${fixed(i.clientCpu)} | Ready ${fixed(rd.serverCpu)} / ${fixed(rd.clientCpu)} | | |`,
  );
  lines.push(
    `| Operator event-loop lag p99 during the run | Inspect ${fixed(i.lagP99, 1)} ms | Ready ${fixed(rd.lagP99, 1)} ms | | |`,
  );
  lines.push(
    `| Errors | Start ${s.rpc.errors}, Inspect ${i.errors} | baseline ${s.baselineErrors}, Ready ${rd.errors} | | 0 |`,
  );
  lines.push(
    `| Operator process RSS, peak | ${mib(r.rss.peak)} MiB | ${mib(r.rss.before)} MiB before the operator started | +${mib(r.rss.peak - r.rss.before)} MiB | |`,
  );
  lines.push(
    `| Operator process RSS peak by phase: StartWorkload / Ready / Inspect | ${mib(r.phasePeakRss.start)} / ${mib(r.phasePeakRss.ready)} / ${mib(r.phasePeakRss.inspect)} MiB | | | |`,
  );
  lines.push(
    `| JS heap used after GC | ${mib(r.rss.heapAfterGc)} MiB | ${mib(r.rss.heapBefore)} MiB | +${mib(r.rss.heapAfterGc - r.rss.heapBefore)} MiB | |`,
  );
  const errs = [...s.rpc.firstErrors, ...i.firstErrors, ...rd.firstErrors];
  if (errs.length) {
    lines.push('');
    lines.push(`First errors: ${errs.join(' | ')}`);
  }
  lines.push('');
  lines.push(
    'Notes: latencies are measured in the client process (they include grpc-js client overhead on both sides). ' +
      'The RSS is of this process, which holds the operator (shim, controller, caches) and the baseline observers but not the clients; under tsx it carries the TypeScript loader too, so the delta is the meaningful part.',
  );
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runGrpcBench(grpcOptions(parseArgs()))
    .then((result) => {
      console.log(renderGrpcReport(result));
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
