/**
 * npm run bench:grpc [-- --start-n 200,500 --start-c 16 --start-shape simple --c 32 --duration 10s --rounds 2 --grpc-warmup 2s --rate 5000 --workers 16 --qps 200]
 *
 * The gRPC shim and the WorkloadController in this process (sharing their informers as
 * src/main.ts does). For each N of --start-n, StartWorkload until Running against the
 * direct phase (the Go runner's path: bench/lib/direct-runner.ts) and then the shim, with
 * ratios (bench/lib/start-phase.ts); then, on the last N's workloads, with
 * the Go load generator (bench/grpc-load-go), InspectWorkload at C concurrent callers
 * beside two same-run baselines: the shim's trivial Ready (the shim's per-call stack
 * without a cache read) and a bare grpc-js server in this process (the library's floor).
 * Each is measured closed loop (throughput) and open loop at --rate req/s (latency at
 * that load). Uses KUBECONFIG when set, else a dedicated loopback cluster in a temp dir.
 */
import { pathToFileURL } from 'node:url';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import {
  InspectWorkloadRequest,
  ReadyRequest,
  RunnerServiceService,
  type RunnerServiceServer,
} from '../src/gen/agynio/api/runner/v1/runner.ts';
import { DEFAULT_WORKLOAD_WORKERS } from '../src/workload/controller.ts';
import { DEFAULT_BURST, DEFAULT_QPS } from '../src/kube/client.ts';
import { parseArgs, type Args } from './lib/args.ts';
import {
  acquireCluster,
  createNamespace,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
} from './lib/cluster.ts';
import { startDirectRunner } from './lib/direct-runner.ts';
import { runGoLoad, goLoadBinary, type GoLoadResult } from './lib/go-load.ts';
import { LoadGenerator } from './lib/load-client.ts';
import { startOperator, type InProcessOperator } from './lib/operator.ts';
import { START_SHAPES, benchRunner, type StartShape } from './lib/shapes.ts';
import { runStartPhase } from './lib/start-phase.ts';
import { renderStartComparison, type StartComparison } from './lib/start-report.ts';
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

export interface GrpcBenchOptions {
  /** Each N gets a direct and a shim StartWorkload phase; the Inspect load uses the last. */
  startNs: number[];
  startConcurrency: number;
  shape: StartShape;
  concurrency: number;
  /** Measured time per target and mode, split over `rounds` alternating rounds. */
  durationMs: number;
  rounds: number;
  warmupMs: number;
  /** The open-loop rate, in requests/s over all callers. */
  rate: number;
  workers: number;
  qps: number;
  burst: number;
}

export const GRPC_TARGETS = { inspectP99Ms: 5, inspectRps: 5000 };

export const TARGETS = ['bare', 'ready', 'inspect'] as const;
export type Target = (typeof TARGETS)[number];
export const MODES = ['closed', 'open'] as const;
export type Mode = (typeof MODES)[number];

export function grpcOptions(args: Args): GrpcBenchOptions {
  return {
    startNs: args
      .string('start-n', '200,500')
      .split(',')
      .map((v) => Number.parseInt(v, 10))
      .filter((v) => v > 0),
    startConcurrency: args.int('start-c', 16),
    shape: startShape(args.string('start-shape', 'simple')),
    concurrency: args.int('c', 32),
    durationMs: args.durationMs('duration', 10_000),
    rounds: Math.max(1, args.int('rounds', 2)),
    warmupMs: args.durationMs('grpc-warmup', 2_000),
    rate: args.number('rate', GRPC_TARGETS.inspectRps),
    workers: args.int('workers', DEFAULT_WORKLOAD_WORKERS),
    qps: args.number('qps', DEFAULT_QPS),
    burst: args.number('burst', DEFAULT_BURST),
  };
}

function startShape(name: string): StartShape {
  if (!Object.hasOwn(START_SHAPES, name))
    throw new Error(`--start-shape: one of ${Object.keys(START_SHAPES).join(', ')}`);
  return name as StartShape;
}

export interface LoadFigures extends GoLoadResult {
  /** CPU used by this (the operator's) process during the run, as a share of one core. */
  serverCpu: number;
  lagP99: number;
  /** req/s of each round, to show the spread. */
  roundRps?: number[];
}

export interface GrpcBenchResult {
  options: GrpcBenchOptions;
  start: StartComparison[];
  load: Record<Target, Record<Mode, LoadFigures>>;
  rss: { before: number; peak: number; afterGc: number; heapBefore: number; heapAfterGc: number };
  /** Peak RSS of this process during each phase. */
  phasePeakRss: { start: number; load: number };
}

function log(message: string): void {
  process.stderr.write(`[bench:grpc] ${message}\n`);
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
    const start: StartComparison[] = [];
    let op: InProcessOperator | undefined;
    let ns = '';
    let before = process.memoryUsage();
    let sampler = new MemorySampler(200);
    let lastIds: string[] = [];
    for (const n of opts.startNs) {
      await op?.stop();
      if (ns) await deleteNamespace(kube, ns, 120_000);
      const directNs = await createNamespace(kube, 'bench-grpc-direct');
      const runner = benchRunner();
      const direct = await startDirectRunner(cluster.kubeconfig, directNs, { ...opts, runner });
      const phase = {
        n,
        concurrency: opts.startConcurrency,
        shape: opts.shape,
        loadgen,
        observer: kube,
        log,
      };
      const d = await runStartPhase({
        ...phase,
        target: 'direct',
        address: direct.address,
        counts: direct.byResource,
        namespace: directNs,
      });
      await direct.stop();
      await deleteNamespace(kube, directNs, 120_000);

      ns = await createNamespace(kube, 'bench-grpc');
      gc();
      before = process.memoryUsage();
      sampler.stop();
      sampler = new MemorySampler(200).start();
      op = await startOperator(cluster.kubeconfig, ns, { ...opts, runner });
      const s = await runStartPhase({
        ...phase,
        target: 'shim',
        address: op.address,
        counts: op.byResource,
        namespace: ns,
        statusRunning: op.running,
      });
      start.push({ n, direct: d, shim: s });
      const running = op.running;
      lastIds = s.rpc.ids.filter((id) => running.has(`workload-${id}`));
      if (lastIds.length === 0) lastIds = s.rpc.ids;
    }
    if (!op) throw new Error('--start-n: at least one N');
    const address = op.address;
    const ids = lastIds;

    goLoadBinary();
    const bare = await startBareServer();
    const requests: Record<Target, { address: string; method: string; requests: Uint8Array[] }> = {
      bare: {
        address: `127.0.0.1:${bare.port}`,
        method: RunnerServiceService.ready.path,
        requests: [ReadyRequest.encode({}).finish()],
      },
      ready: {
        address,
        method: RunnerServiceService.ready.path,
        requests: [ReadyRequest.encode({}).finish()],
      },
      inspect: {
        address,
        method: RunnerServiceService.inspectWorkload.path,
        requests: ids.map((workloadId) => InspectWorkloadRequest.encode({ workloadId }).finish()),
      },
    };
    // The targets alternate in every round (bare, Ready, Inspect, ...) so that a change in
    // the shared machine's load hits all alike; each measurement has its own warm-up.
    const roundMs = opts.durationMs / opts.rounds;
    const measure = async (target: Target, mode: Mode, round: number): Promise<LoadFigures> => {
      log(
        `${target} ${mode} loop (round ${round + 1}/${opts.rounds}): ${opts.concurrency} callers` +
          `${mode === 'open' ? ` at ${opts.rate} req/s` : ''}, ${seconds(opts.warmupMs, 0)} s warm-up + ${seconds(roundMs, 1)} s`,
      );
      const lag = new LagMonitor().start();
      const cpu0 = process.cpuUsage();
      const w0 = nowMs();
      const result = await runGoLoad({
        ...requests[target],
        concurrency: opts.concurrency,
        warmupMs: opts.warmupMs,
        durationMs: roundMs,
        rps: mode === 'open' ? opts.rate : undefined,
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
    const phasePeakRss = { start: sampler.peakRss, load: 0 };
    sampler.reset();
    const parts = new Map<string, LoadFigures[]>();
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of MODES) {
        for (const target of TARGETS) {
          const key = `${target}/${mode}`;
          parts.set(key, [...(parts.get(key) ?? []), await measure(target, mode, round)]);
        }
      }
    }
    phasePeakRss.load = sampler.peakRss;
    await bare.stop();
    const load = Object.fromEntries(
      TARGETS.map((target) => [
        target,
        Object.fromEntries(
          MODES.map((mode) => [mode, mergeRounds(parts.get(`${target}/${mode}`) ?? [])]),
        ),
      ]),
    ) as Record<Target, Record<Mode, LoadFigures>>;

    gc();
    const after = process.memoryUsage();
    sampler.stop();
    await op.stop();
    if (!cluster.dedicated) await deleteNamespace(kube, ns);
    return {
      options: opts,
      start,
      load,
      phasePeakRss,
      rss: {
        before: before.rss,
        peak: Math.max(phasePeakRss.start, phasePeakRss.load, after.rss),
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

/**
 * A grpc-js server with nothing but the generated service and a handler that answers at
 * once: what the library itself costs per call on this machine, the floor for the shim.
 */
async function startBareServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const server = new Server({ 'grpc.enable_channelz': 0 });
  const answer = (_call: unknown, callback: (err: null, value: unknown) => void): void =>
    callback(null, { status: 'ok' });
  const impl = Object.fromEntries(Object.keys(RunnerServiceService).map((name) => [name, answer]));
  server.addService(RunnerServiceService, impl as unknown as RunnerServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return {
    port,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

function verdict(ok: boolean): string {
  return ok ? 'meets' : '**misses**';
}

/** The two figures the issue sets for InspectWorkload, judged on this run. */
export function grpcVerdicts(r: GrpcBenchResult): { rps: boolean; p99: boolean } {
  const closed = r.load.inspect.closed;
  const open = r.load.inspect.open;
  return {
    rps: closed.rps >= GRPC_TARGETS.inspectRps,
    // The latency counts only if the rate was actually served.
    p99: open.p99 <= GRPC_TARGETS.inspectP99Ms && open.rps >= 0.99 * r.options.rate,
  };
}

export function renderGrpcReport(r: GrpcBenchResult): string {
  const o = r.options;
  const last = r.start[r.start.length - 1];
  const agents = last?.shim.podsRunning ?? 0;
  const { bare, ready, inspect } = r.load;
  const ok = grpcVerdicts(r);
  const row = (figure: string, f: (x: LoadFigures) => string, ratio: string, target = ''): string =>
    `| ${figure} | ${f(bare.closed)} | ${f(ready.closed)} | ${f(inspect.closed)} | ${ratio} | ${target} |`;
  const openRow = (
    figure: string,
    f: (x: LoadFigures) => string,
    ratio: string,
    target = '',
  ): string =>
    `| ${figure} | ${f(bare.open)} | ${f(ready.open)} | ${f(inspect.open)} | ${ratio} | ${target} |`;
  const lines: string[] = [];
  lines.push(
    `## gRPC shim: StartWorkload at N = ${o.startNs.join(', ')} against the direct phase, then ${o.concurrency} concurrent callers`,
  );
  lines.push('');
  lines.push(
    `Shim + WorkloadController in-process sharing their informers as src/main.ts does (workers ${o.workers}, ` +
      `client limit ${o.qps} qps / burst ${o.burst}), compiled JavaScript as deployed; plain-text loopback listener ` +
      `(auth mode insecure). Unary load: the Go ` +
      `load generator (bench/grpc-load-go, one OS thread, ${o.concurrency} callers on separate HTTP/2 connections, ` +
      `pre-encoded requests), against three targets that alternate in ${o.rounds} rounds (${seconds(o.warmupMs, 0)} s ` +
      `warm-up + ${seconds(o.durationMs / o.rounds, 1)} s measured each): a bare grpc-js server in this process ` +
      `(generated service, handler answers at once: the library's floor), the shim's Ready (interceptor, auth, ` +
      `metrics, trace context; no cache read) and the shim's InspectWorkload over the ${agents} workloads of the last N.`,
  );
  lines.push('');
  lines.push(...renderStartComparison(r.start, o));
  lines.push('');
  lines.push(
    `| Unary calls, ${o.concurrency} callers | Bare grpc-js (floor) | Shim Ready | Shim InspectWorkload | Inspect ÷ bare | Target (Inspect) |`,
  );
  lines.push('|---|---:|---:|---:|---:|---|');
  lines.push(
    row(
      'Closed loop: req/s',
      (x) => fixed(x.rps, 0),
      `${fixed(inspect.closed.rps / bare.closed.rps)}×`,
      `≥ ${GRPC_TARGETS.inspectRps} — ${verdict(ok.rps)}`,
    ),
  );
  lines.push(
    row(
      'Closed loop: req/s per round',
      (x) => (x.roundRps ?? []).map((v) => fixed(v, 0)).join(', '),
      '',
    ),
  );
  lines.push(
    row(
      'Closed loop: latency p50 / p99',
      (x) => `${fixed(x.p50, 2)} / ${fixed(x.p99, 2)} ms`,
      `${fixed(inspect.closed.p99 / bare.closed.p99)}× (p99)`,
    ),
  );
  lines.push(openRow(`Open loop at ${o.rate} req/s: served req/s`, (x) => fixed(x.rps, 0), ''));
  lines.push(
    openRow(
      'Open loop: latency p50 / p90',
      (x) => `${fixed(x.p50, 2)} / ${fixed(x.p90, 2)} ms`,
      `${fixed(inspect.open.p50 / bare.open.p50)}× (p50)`,
    ),
  );
  lines.push(
    openRow(
      'Open loop: latency p99',
      (x) => `${fixed(x.p99, 2)} ms`,
      `${fixed(inspect.open.p99 / bare.open.p99)}×`,
      `≤ ${GRPC_TARGETS.inspectP99Ms} ms — ${verdict(ok.p99)}`,
    ),
  );
  lines.push(
    openRow(
      'Open loop: latency p99.9 / max',
      (x) => `${fixed(x.p999, 2)} / ${fixed(x.max, 1)} ms`,
      '',
    ),
  );
  lines.push(
    row(
      'CPU closed loop, server process / generator (1.0 = one core)',
      (x) => `${fixed(x.serverCpu)} / ${fixed(x.clientCpu)}`,
      '',
    ),
  );
  lines.push(
    openRow(
      'CPU open loop, server process / generator',
      (x) => `${fixed(x.serverCpu)} / ${fixed(x.clientCpu)}`,
      '',
    ),
  );
  lines.push(
    `| Server event-loop lag p99, closed / open loop | ${TARGETS.map((t) => `${fixed(r.load[t].closed.lagP99, 1)} / ${fixed(r.load[t].open.lagP99, 1)} ms`).join(' | ')} | | |`,
  );
  const errorsOf = (x: Record<Mode, LoadFigures>): string =>
    `${x.closed.errors} / ${x.open.errors}`;
  lines.push(
    `| Errors, closed / open loop | ${errorsOf(bare)} | ${errorsOf(ready)} | ${errorsOf(inspect)} | | 0 |`,
  );
  lines.push('');
  lines.push('| Memory | Measured | Baseline | Δ |');
  lines.push('|---|---:|---:|---:|');
  lines.push(
    `| Operator process RSS, peak | ${mib(r.rss.peak)} MiB | ${mib(r.rss.before)} MiB before the operator started | +${mib(r.rss.peak - r.rss.before)} MiB |`,
  );
  lines.push(
    `| RSS peak by phase: StartWorkload / unary load | ${mib(r.phasePeakRss.start)} / ${mib(r.phasePeakRss.load)} MiB | | |`,
  );
  lines.push(
    `| JS heap used after GC | ${mib(r.rss.heapAfterGc)} MiB | ${mib(r.rss.heapBefore)} MiB | +${mib(r.rss.heapAfterGc - r.rss.heapBefore)} MiB |`,
  );
  const errs = [
    ...r.start.flatMap((x) => [...x.direct.rpc.firstErrors, ...x.shim.rpc.firstErrors]),
    ...TARGETS.flatMap((t) => MODES.flatMap((m) => r.load[t][m].firstErrors)),
  ];
  if (errs.length) {
    lines.push('');
    lines.push(`First errors: ${errs.slice(0, 8).join(' | ')}`);
  }
  lines.push('');
  lines.push(
    'Notes: latencies are measured in the generator (they include its gRPC client). Closed loop means each caller ' +
      "sends its next call when the previous one is answered, so its latency is mostly queueing: by Little's law " +
      `mean latency = callers ÷ throughput, and a p99 of ${GRPC_TARGETS.inspectP99Ms} ms at ${o.concurrency} closed-loop callers would need ` +
      `more than ${fixed(o.concurrency / (GRPC_TARGETS.inspectP99Ms / 1000), 0)} req/s. The latency target is therefore judged open loop: ` +
      `${o.concurrency} callers issue ${o.rate} req/s in all on a fixed schedule and latency counts from the moment each call ` +
      'was due (no coordinated omission). The server process also holds the controller, its informers and the bare ' +
      'server; the generator shares the 2 cores with it and with the control plane.',
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
