/** bench:grpc's section of bench/REPORT.md. */
import {
  GRPC_TARGETS,
  MODES,
  TARGETS,
  type GrpcBenchResult,
  type LoadFigures,
  type Mode,
} from './grpc-options.ts';
import { deployedNodeEnv } from './deployed-env.ts';
import { renderCrFloor, renderStartComparison } from './start-report.ts';
import { MiB, fixed, mib, seconds } from './stats.ts';
import { verdict, verdictBeside } from './verdict.ts';

function deployedSummary(): string {
  const env = Object.entries(deployedNodeEnv());
  return env.length ? env.map(([k, v]) => `${k}=${v}`).join(', ') : 'no NODE_OPTIONS';
}

/**
 * The operator's RSS target: its peak over the whole run at N ≥ 500; `floorAbove` when the
 * floor that carries the operator's modules (bare grpc-js + those modules, the same objects,
 * its own load) peaked above it too, i.e. no process with the card's packages meets it here.
 */
export function rssVerdict(r: GrpcBenchResult): {
  ok: boolean;
  judged: boolean;
  floorAbove: boolean;
} {
  const n = r.start.at(-1)?.n ?? 0;
  const target = GRPC_TARGETS.rssPeakMiB * MiB;
  return {
    ok: r.memory.lifetimePeak <= target,
    judged: n >= GRPC_TARGETS.rssAtN,
    floorAbove: r.memory.bareModules.loadPeak > target,
  };
}

/** rssVerdict in words, with the figure that decides it. */
export function rssVerdictText(r: GrpcBenchResult): string {
  const v = rssVerdict(r);
  const m = r.memory;
  if (!v.judged) return `not judged (N = ${r.start.at(-1)?.n ?? 0})`;
  if (v.ok) return 'meets';
  if (v.floorAbove)
    return (
      `**impossible with the card's modules**: bare grpc-js + the operator's modules, ` +
      `with the same objects and load, peaks at ${mib(m.bareModules.loadPeak)} MiB`
    );
  return (
    `**misses**: operator − floor with the operator's modules = ` +
    `${mib(m.lifetimePeak - m.bareModules.loadPeak)} MiB (the operator's own code)`
  );
}

function renderMemory(r: GrpcBenchResult): string[] {
  const m = r.memory;
  const { bare, bareModules: mods } = m;
  const n = r.start.at(-1)?.n ?? 0;
  const breakdown = (x: { heapTotal: number; external: number; arrayBuffers: number }): string =>
    `JS heap total ${mib(x.heapTotal)}, external ${mib(x.external)}, arrayBuffers ${mib(x.arrayBuffers)}`;
  const over = (floor: number): string => `(+${mib(m.lifetimePeak - floor)} operator over it)`;
  return [
    "| Memory (RSS, MiB; operator: its own process, VmHWM for peaks) | Operator | Bare grpc-js server with the same objects (floor) | Bare grpc-js + the operator's modules (floor) | Target |",
    '|---|---:|---:|---:|---|',
    `| Empty process, modules loaded (nothing started; floor: its own process, after GC, before the objects) | ${mib(m.modulesLoaded)} | | ${mods.modulesRss === undefined ? '' : mib(mods.modulesRss)} | |`,
    `| Started, caches synced, no workloads | ${mib(m.started.rss)} | | | |`,
    `| Idle with the ${n} workloads (after the start phase) / after a full GC | ${mib(m.idle.rss)} / ${mib(m.idleAfterGc.rss)} | ${mib(bare.before.rss)} (${bare.cached} objects, after GC) | ${mib(mods.before.rss)} (${mods.cached} objects, after GC) | |`,
    `| Peak during the start phase (N = ${n}) | ${mib(m.startPeak)} | | | |`,
    `| Peak during the unary load (Ready, Inspect; floors: their own load) | ${mib(m.loadPeak)} | ${mib(bare.loadPeak)} | ${mib(mods.loadPeak)} | |`,
    `| **Peak over the whole run** | **${mib(m.lifetimePeak)}** | ${mib(bare.loadPeak)} ${over(bare.loadPeak)} | ${mib(mods.loadPeak)} ${over(mods.loadPeak)} | ≤ ${GRPC_TARGETS.rssPeakMiB} MiB at N = ${GRPC_TARGETS.rssAtN} — ${rssVerdictText(r)} |`,
    `| Highest of each, sampled every 250 ms during the unary load | ${mib(m.loadMax.rss)} (${breakdown(m.loadMax)}) | ${mib(bare.loadMax.rss)} (${breakdown(bare.loadMax)}) | ${mib(mods.loadMax.rss)} (${breakdown(mods.loadMax)}) | |`,
    `| Idle after GC: JS heap used | ${mib(m.idleAfterGc.heapUsed)} (${breakdown(m.idleAfterGc)}) | ${mib(bare.before.heapUsed)} (${breakdown(bare.before)}) | ${mib(mods.before.heapUsed)} (${breakdown(mods.before)}) | |`,
  ];
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

/**
 * InspectWorkload's p99 target, beside the bare grpc-js server under the same open-loop load in
 * the same run: when the library alone misses it, no grpc-js server meets it here.
 */
export function inspectP99Verdict(r: GrpcBenchResult): string {
  const bare = r.load.bare.open;
  const target = GRPC_TARGETS.inspectP99Ms;
  return verdictBeside(grpcVerdicts(r).p99, {
    above: bare.p99 > target || bare.rps < 0.99 * r.options.rate,
    text: `the bare grpc-js server's p99 at the same load is ${fixed(bare.p99, 2)} ms in the same run`,
  });
}

function renderIntro(r: GrpcBenchResult): string[] {
  const o = r.options;
  const agents = r.start.at(-1)?.shim.podsRunning ?? 0;
  return [
    `## gRPC shim: StartWorkload at N = ${o.startNs.join(', ')} against the direct phase, then ${o.concurrency} concurrent callers`,
    '',
    `The operator in a process of its own: src/main.ts itself, standalone (shim + WorkloadController sharing their ` +
      `caches; workers ${o.workers}, client limit ${o.qps} qps / burst ${o.burst}), compiled JavaScript on plain node ` +
      `with the image's environment (${deployedSummary()}); plain-text loopback listener ` +
      `(auth mode insecure). Unary load: the Go ` +
      `load generator (bench/grpc-load-go, one OS thread, ${o.concurrency} callers on separate HTTP/2 connections, ` +
      `pre-encoded requests), against ${TARGETS.length} targets that alternate in ${o.rounds} rounds (${seconds(o.warmupMs, 0)} s ` +
      `warm-up + ${seconds(o.durationMs / o.rounds, 1)} s measured each): a bare grpc-js server in a process of its own ` +
      `(generated service, handler answers at once: the library's floor; it holds the last N's AgentWorkloads and Pods ` +
      `as plain objects, so its RSS is the floor for a Node server with the same data); the same server in a process ` +
      `that first loads every module src/main.ts imports and starts none of it (no client, informer or HTTP server: ` +
      `the empty operator process's load), so its RSS is the floor for a process carrying the operator's packages ` +
      `and what the operator adds over it is its own code's; the shim's Ready (interceptor, ` +
      `auth, metrics, trace context; no cache read) and the shim's InspectWorkload over the ${agents} workloads of the last N.`,
    '',
  ];
}

/** The unary load's table: one column per target, then Inspect against the bare floor. */
function renderUnary(r: GrpcBenchResult): string[] {
  const o = r.options;
  const { bare, inspect } = r.load;
  const ok = grpcVerdicts(r);
  const row =
    (mode: Mode) =>
    (figure: string, f: (x: LoadFigures) => string, ratio = '', target = ''): string =>
      `| ${figure} | ${TARGETS.map((t) => f(r.load[t][mode])).join(' | ')} | ${ratio} | ${target} |`;
  const closed = row('closed');
  const open = row('open');
  return [
    `| Unary calls, ${o.concurrency} callers | Bare grpc-js (floor) | Bare grpc-js + the operator's modules (floor) | Shim Ready | Shim InspectWorkload | Inspect ÷ bare | Target (Inspect) |`,
    '|---|---:|---:|---:|---:|---:|---|',
    closed(
      'Closed loop: req/s',
      (x) => fixed(x.rps, 0),
      `${fixed(inspect.closed.rps / bare.closed.rps)}×`,
      `≥ ${GRPC_TARGETS.inspectRps} — ${verdict(ok.rps)}`,
    ),
    closed('Closed loop: req/s per round', (x) =>
      (x.roundRps ?? []).map((v) => fixed(v, 0)).join(', '),
    ),
    closed(
      'Closed loop: latency p50 / p99',
      (x) => `${fixed(x.p50, 2)} / ${fixed(x.p99, 2)} ms`,
      `${fixed(inspect.closed.p99 / bare.closed.p99)}× (p99)`,
    ),
    open(`Open loop at ${o.rate} req/s: served req/s`, (x) => fixed(x.rps, 0)),
    open(
      'Open loop: latency p50 / p90',
      (x) => `${fixed(x.p50, 2)} / ${fixed(x.p90, 2)} ms`,
      `${fixed(inspect.open.p50 / bare.open.p50)}× (p50)`,
    ),
    open(
      'Open loop: latency p99',
      (x) => `${fixed(x.p99, 2)} ms`,
      `${fixed(inspect.open.p99 / bare.open.p99)}×`,
      `≤ ${GRPC_TARGETS.inspectP99Ms} ms — ${inspectP99Verdict(r)}`,
    ),
    open('Open loop: latency p99.9 / max', (x) => `${fixed(x.p999, 2)} / ${fixed(x.max, 1)} ms`),
    closed(
      'CPU closed loop, server process / generator (1.0 = one core)',
      (x) => `${fixed(x.serverCpu)} / ${fixed(x.clientCpu)}`,
    ),
    open(
      'CPU open loop, server process / generator',
      (x) => `${fixed(x.serverCpu)} / ${fixed(x.clientCpu)}`,
    ),
    `| Server event-loop lag p99, closed / open loop | ${TARGETS.map((t) => `${fixed(r.load[t].closed.lagP99, 1)} / ${fixed(r.load[t].open.lagP99, 1)} ms`).join(' | ')} | | |`,
    `| Errors, closed / open loop | ${TARGETS.map((t) => `${r.load[t].closed.errors} / ${r.load[t].open.errors}`).join(' | ')} | | 0 |`,
  ];
}

export function renderGrpcReport(r: GrpcBenchResult): string {
  const o = r.options;
  const lines = [
    ...renderIntro(r),
    ...renderStartComparison(r.start, o),
    ...renderCrFloor(r.start),
    '',
    ...renderUnary(r),
    '',
    ...renderMemory(r),
  ];
  const errs = [
    ...r.start.flatMap((x) => [...x.direct.rpc.firstErrors, ...x.shim.rpc.firstErrors]),
    ...TARGETS.flatMap((t) => MODES.flatMap((m) => r.load[t][m].firstErrors)),
  ];
  if (errs.length) lines.push('', `First errors: ${errs.slice(0, 8).join(' | ')}`);
  lines.push(
    '',
    'Notes: latencies are measured in the generator (they include its gRPC client). Closed loop means each caller ' +
      "sends its next call when the previous one is answered, so its latency is mostly queueing: by Little's law " +
      `mean latency = callers ÷ throughput, and a p99 of ${GRPC_TARGETS.inspectP99Ms} ms at ${o.concurrency} closed-loop callers would need ` +
      `more than ${fixed(o.concurrency / (GRPC_TARGETS.inspectP99Ms / 1000), 0)} req/s. The latency target is therefore judged open loop: ` +
      `${o.concurrency} callers issue ${o.rate} req/s in all on a fixed schedule and latency counts from the moment each call ` +
      "was due (no coordinated omission). Server CPU and event-loop lag are the target process's own (the operator's " +
      "for Ready and Inspect, each floor server's for its floor); the generator shares the 2 cores with them and with " +
      'the control plane.',
  );
  return lines.join('\n');
}
