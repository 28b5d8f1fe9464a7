/**
 * npm run bench:grpc [-- --start-n 200,500 --start-rounds 3 --start-c 16 --start-shape simple --c 32 --duration 10s --rounds 2 --grpc-warmup 2s --rate 5000 --workers 16 --qps 200]
 *
 * The operator (src/main.ts itself, standalone: the gRPC shim and the WorkloadController
 * sharing their caches) in a process of its own (bench/lib/operator-child.ts), compiled, on
 * plain node with the image's NODE_OPTIONS. For each N of --start-n, StartWorkload until
 * Running against the direct phase (the Go runner's path, bench/lib/direct-runner.ts, in a
 * process of its own too), the CR design's floor and then the operator, in --start-rounds
 * interleaved rounds whose medians give the ratios (bench/lib/start-phase.ts, start-rounds.ts);
 * then, on the last N's workloads, with the Go load generator (bench/grpc-load-go),
 * InspectWorkload at C concurrent callers beside same-run baselines: the shim's trivial
 * Ready (the shim's per-call stack without a cache read) and two floors for throughput and
 * RSS (bench/lib/bare-floors.ts): a bare grpc-js server in a process of its own holding the
 * same workloads (the library's floor), and the same server in a process that first loaded
 * the operator's modules (the floor with the operator's packages). Each is measured closed
 * loop (throughput) and open loop at --rate req/s (latency at that load). The operator's RSS (VmHWM) is its own: started, idle with N workloads, and
 * its peak over the whole run. Uses KUBECONFIG when set, else a dedicated loopback cluster
 * in a temp dir.
 */
import { pathToFileURL } from 'node:url';
import {
  InspectWorkloadRequest,
  ReadyRequest,
  RunnerServiceService,
} from '../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { parseArgs } from './lib/args.ts';
import {
  startBareFloors,
  writeObjects,
  type BareFloor,
  type BareFloors,
} from './lib/bare-floors.ts';
import { BenchChild } from './lib/bench-child.ts';
import type { ChildMemory } from './lib/child-ipc.ts';
import {
  acquireCluster,
  createNamespace,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
} from './lib/cluster.ts';
import { runMemoryProbe } from './lib/compiled.ts';
import { runGoLoad, goLoadBinary } from './lib/go-load.ts';
import {
  MODES,
  TARGETS,
  grpcOptions,
  type GrpcBenchOptions,
  type GrpcBenchResult,
  type LoadFigures,
  type Mode,
  type Target,
} from './lib/grpc-options.ts';
import { renderGrpcReport } from './lib/grpc-report.ts';
import { LoadGenerator } from './lib/load-client.ts';
import { MemoryPoller } from './lib/memory-poller.ts';
import { startOperatorChild, type OperatorChild } from './lib/operator-child.ts';
import type { ServerProcessConfig } from './lib/server-process.ts';
import type { DirectMode } from './lib/direct-runner.ts';
import { standaloneRunner } from './lib/shapes.ts';
import { runStartPhase, type StartPhase } from './lib/start-phase.ts';
import type { StartComparison, StartRound } from './lib/start-report.ts';
import { comparisonOf } from './lib/start-rounds.ts';
import { mib, nowMs, percentilesOf, seconds } from './lib/stats.ts';

export { GRPC_TARGETS, grpcOptions, type GrpcBenchResult } from './lib/grpc-options.ts';
export {
  grpcVerdicts,
  inspectP99Verdict,
  renderGrpcReport,
  rssVerdict,
  rssVerdictText,
} from './lib/grpc-report.ts';

function log(message: string): void {
  process.stderr.write(`[bench:grpc] ${message}\n`);
}

type Phase = Pick<Parameters<typeof runStartPhase>[0], 'n' | 'concurrency' | 'shape' | 'loadgen'>;

/**
 * The direct phase (the Go runner's path) or the CR design's floor: the direct runner in a
 * process of its own, in a fresh namespace.
 */
async function directPhase(
  kube: KubeClient,
  kubeconfig: string,
  opts: GrpcBenchOptions,
  phase: Phase,
  mode: DirectMode = 'go',
): Promise<StartPhase> {
  const namespace = await createNamespace(
    kube,
    `bench-grpc-${mode === 'go' ? 'direct' : 'cr-floor'}`,
  );
  const config: ServerProcessConfig = {
    kind: 'direct',
    mode,
    kubeconfig,
    namespace,
    qps: opts.qps,
    burst: opts.burst,
    runner: standaloneRunner(),
  };
  const direct = await BenchChild.start({
    entry: 'server-process',
    env: { BENCH_SERVER: JSON.stringify(config) },
  });
  try {
    return await runStartPhase({
      ...phase,
      target: mode === 'go' ? 'direct' : 'crFloor',
      address: String(direct.info.address),
      process: direct,
      observer: kube,
      namespace,
      log,
    });
  } finally {
    await direct.stop();
    await deleteNamespace(kube, namespace, 120_000);
  }
}

interface LoadTargets {
  requests: Record<Target, { address: string; method: string; requests: Uint8Array[] }>;
  process: Record<Target, BenchChild>;
}

function loadTargets(op: OperatorChild, floors: BareFloors, ids: string[]): LoadTargets {
  const ready = [ReadyRequest.encode({}).finish()];
  const readyOf = (address: string) => ({
    address,
    method: RunnerServiceService.ready.path,
    requests: ready,
  });
  return {
    requests: {
      bare: readyOf(floors.bare.address),
      bareModules: readyOf(floors.bareModules.address),
      ready: readyOf(op.address),
      inspect: {
        address: op.address,
        method: RunnerServiceService.inspectWorkload.path,
        requests: ids.map((workloadId) => InspectWorkloadRequest.encode({ workloadId }).finish()),
      },
    },
    process: {
      bare: floors.bare.child,
      bareModules: floors.bareModules.child,
      ready: op.child,
      inspect: op.child,
    },
  };
}

async function measure(
  opts: GrpcBenchOptions,
  targets: LoadTargets,
  target: Target,
  mode: Mode,
  round: number,
): Promise<LoadFigures> {
  const roundMs = opts.durationMs / opts.rounds;
  log(
    `${target} ${mode} loop (round ${round + 1}/${opts.rounds}): ${opts.concurrency} callers` +
      `${mode === 'open' ? ` at ${opts.rate} req/s` : ''}, ${seconds(opts.warmupMs, 0)} s warm-up + ${seconds(roundMs, 1)} s`,
  );
  const server = targets.process[target];
  await server.lag();
  const cpu0 = (await server.memory()).cpuMs;
  const w0 = nowMs();
  const result = await runGoLoad({
    ...targets.requests[target],
    concurrency: opts.concurrency,
    warmupMs: opts.warmupMs,
    durationMs: roundMs,
    rps: mode === 'open' ? opts.rate : undefined,
  });
  const cpu1 = (await server.memory()).cpuMs;
  const lag = await server.lag();
  return { ...result, serverCpu: (cpu1 - cpu0) / (nowMs() - w0), lagP99: lag.p99 };
}

/** Every target and mode in `rounds` alternating rounds, merged per target and mode. */
async function unaryLoad(
  opts: GrpcBenchOptions,
  targets: LoadTargets,
): Promise<Record<Target, Record<Mode, LoadFigures>>> {
  // The targets alternate in every round (bare, bare + modules, Ready, Inspect, ...) so
  // that a change in the shared machine's load hits all alike; each measurement has its own
  // warm-up.
  const parts = new Map<string, LoadFigures[]>();
  for (let round = 0; round < opts.rounds; round++) {
    for (const mode of MODES) {
      for (const target of TARGETS) {
        const key = `${target}/${mode}`;
        parts.set(key, [
          ...(parts.get(key) ?? []),
          await measure(opts, targets, target, mode, round),
        ]);
      }
    }
  }
  return Object.fromEntries(
    TARGETS.map((target) => [
      target,
      Object.fromEntries(
        MODES.map((mode) => [mode, mergeRounds(parts.get(`${target}/${mode}`) ?? [])]),
      ),
    ]),
  ) as Record<Target, Record<Mode, LoadFigures>>;
}

export async function runGrpcBench(
  opts: GrpcBenchOptions,
  kubeconfig?: string,
): Promise<GrpcBenchResult> {
  const cluster = acquireCluster(kubeconfig);
  stopOnSignals(cluster);
  const kube = unlimitedClient(cluster.kubeconfig);
  const loadgen = new LoadGenerator();
  let op: OperatorChild | undefined;
  const floors: BareFloor[] = [];
  try {
    log('measuring an empty operator process (compiled JavaScript, modules loaded)');
    const modulesLoaded = runMemoryProbe(cluster.kubeconfig)[0]?.rss ?? Number.NaN;
    const start: StartComparison[] = [];
    let ns = '';
    let started: ChildMemory | undefined;
    let lastShim: StartPhase | undefined;
    for (const n of opts.startNs) {
      const phase = { n, concurrency: opts.startConcurrency, shape: opts.shape, loadgen };
      const rounds: StartRound[] = [];
      for (let round = 1; round <= opts.startRounds; round++) {
        log(`N = ${n}, round ${round}/${opts.startRounds}`);
        await op?.stop();
        if (ns) await deleteNamespace(kube, ns, 120_000);
        const d = await directPhase(kube, cluster.kubeconfig, opts, phase);
        const floor = await directPhase(kube, cluster.kubeconfig, opts, phase, 'cr');
        ns = await createNamespace(kube, 'bench-grpc');
        op = await startOperatorChild({ kubeconfig: cluster.kubeconfig, namespace: ns, ...opts });
        started = await op.child.memory();
        log(
          `operator started (pid ${op.child.pid}, RSS ${mib(started.rss)} MiB); log ${op.logFile}`,
        );
        lastShim = await runStartPhase({
          ...phase,
          target: 'shim',
          address: op.address,
          process: op.child,
          observer: kube,
          namespace: ns,
          statusRunning: true,
          log,
        });
        rounds.push({ direct: d, crFloor: floor, shim: lastShim });
      }
      start.push(comparisonOf(n, rounds));
    }
    if (!op || !started || !lastShim) throw new Error('--start-n: at least one N');
    const idle = await op.child.memory();
    const idleAfterGc = await op.child.memory({ gc: true, resetPeak: true });
    const startPeak = Math.max(lastShim.rssPeak, idle.peakRss);

    goLoadBinary();
    const { bare, bareModules } = await startBareFloors(await writeObjects(kube, ns), floors);
    const poller = new MemoryPoller(op.child).start();
    const load = await unaryLoad(opts, loadTargets(op, { bare, bareModules }, lastShim.rpc.ids));
    const loadMax = poller.stop();
    const after = await op.child.memory();
    if (!cluster.dedicated) await deleteNamespace(kube, ns);
    return {
      options: opts,
      start,
      load,
      memory: {
        modulesLoaded,
        started,
        idle,
        idleAfterGc,
        startPeak,
        loadPeak: after.peakRss,
        lifetimePeak: after.lifetimePeakRss,
        loadMax,
        bare: await bare.result(),
        bareModules: await bareModules.result(),
      },
    };
  } finally {
    for (const f of floors) await f.stop();
    await op?.stop();
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
    calls,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    firstErrors: rounds.flatMap((r) => r.firstErrors).slice(0, 5),
    seconds: secs,
    rps: calls / secs,
    offeredRps: rounds[0]?.offeredRps ?? 0,
    p50: p50 ?? Number.NaN,
    p90: p90 ?? Number.NaN,
    p99: p99 ?? Number.NaN,
    p999: p999 ?? Number.NaN,
    max: max ?? Number.NaN,
    clientCpu: avg((r) => r.clientCpu),
    serverCpu: avg((r) => r.serverCpu),
    lagP99: Math.max(...rounds.map((r) => r.lagP99)),
    roundRps: rounds.map((r) => r.rps),
    latencies: [],
  };
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
