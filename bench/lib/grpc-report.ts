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

function deployedSummary(): string {
  const env = Object.entries(deployedNodeEnv());
  return env.length ? env.map(([k, v]) => `${k}=${v}`).join(', ') : 'no NODE_OPTIONS';
}

/** The operator's RSS target: its peak over the whole run at N ≥ 500. */
export function rssVerdict(r: GrpcBenchResult): { ok: boolean; judged: boolean } {
  const n = r.start.at(-1)?.n ?? 0;
  return {
    ok: r.memory.lifetimePeak <= GRPC_TARGETS.rssPeakMiB * MiB,
    judged: n >= GRPC_TARGETS.rssAtN,
  };
}

function renderMemory(r: GrpcBenchResult): string[] {
  const m = r.memory;
  const n = r.start.at(-1)?.n ?? 0;
  const v = rssVerdict(r);
  const breakdown = (x: { heapTotal: number; external: number; arrayBuffers: number }): string =>
    `JS heap total ${mib(x.heapTotal)}, external ${mib(x.external)}, arrayBuffers ${mib(x.arrayBuffers)}`;
  return [
    '| Memory (RSS, MiB; operator: its own process, VmHWM for peaks) | Operator | Bare grpc-js server with the same objects (floor) | Target |',
    '|---|---:|---:|---|',
    `| Empty process, modules loaded (nothing started) | ${mib(m.modulesLoaded)} | | |`,
    `| Started, caches synced, no workloads | ${mib(m.started.rss)} | | |`,
    `| Idle with the ${n} workloads (after the start phase) / after a full GC | ${mib(m.idle.rss)} / ${mib(m.idleAfterGc.rss)} | ${mib(m.bare.before.rss)} (${m.bare.cached} objects, after GC) | |`,
    `| Peak during the start phase (N = ${n}) | ${mib(m.startPeak)} | | |`,
    `| Peak during the unary load (Ready, Inspect; bare: its own load) | ${mib(m.loadPeak)} | ${mib(m.bare.loadPeak)} | |`,
    `| **Peak over the whole run** | **${mib(m.lifetimePeak)}** | ${mib(m.bare.loadPeak)} (+${mib(m.lifetimePeak - m.bare.loadPeak)} operator over the floor) | ≤ ${GRPC_TARGETS.rssPeakMiB} MiB at N = ${GRPC_TARGETS.rssAtN} — ${v.judged ? verdict(v.ok) : `not judged (N = ${n})`}${v.judged && !v.ok && m.bare.loadPeak > GRPC_TARGETS.rssPeakMiB * MiB ? '; the floor itself is above it' : ''} |`,
    `| Highest of each, sampled every 250 ms during the unary load | ${mib(m.loadMax.rss)} (${breakdown(m.loadMax)}) | ${mib(m.bare.loadMax.rss)} (${breakdown(m.bare.loadMax)}) | |`,
    `| Idle after GC: JS heap used | ${mib(m.idleAfterGc.heapUsed)} (${breakdown(m.idleAfterGc)}) | ${mib(m.bare.before.heapUsed)} (${breakdown(m.bare.before)}) | |`,
  ];
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
    `The operator in a process of its own: src/main.ts itself, standalone (shim + WorkloadController sharing their ` +
      `caches; workers ${o.workers}, client limit ${o.qps} qps / burst ${o.burst}), compiled JavaScript on plain node ` +
      `with the image's environment (${deployedSummary()}); plain-text loopback listener ` +
      `(auth mode insecure). Unary load: the Go ` +
      `load generator (bench/grpc-load-go, one OS thread, ${o.concurrency} callers on separate HTTP/2 connections, ` +
      `pre-encoded requests), against three targets that alternate in ${o.rounds} rounds (${seconds(o.warmupMs, 0)} s ` +
      `warm-up + ${seconds(o.durationMs / o.rounds, 1)} s measured each): a bare grpc-js server in a process of its own ` +
      `(generated service, handler answers at once: the library's floor; it holds the last N's AgentWorkloads and Pods ` +
      `as plain objects, so its RSS is the floor for a Node server with the same data), the shim's Ready (interceptor, ` +
      `auth, metrics, trace context; no cache read) and the shim's InspectWorkload over the ${agents} workloads of the last N.`,
  );
  lines.push('');
  lines.push(...renderStartComparison(r.start, o));
  lines.push(...renderCrFloor(r.start));
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
  lines.push(...renderMemory(r));
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
      "was due (no coordinated omission). Server CPU and event-loop lag are the target process's own (the operator's " +
      "for Ready and Inspect, the bare server's for the floor); the generator shares the 2 cores with them and with " +
      'the control plane.',
  );
  return lines.join('\n');
}
