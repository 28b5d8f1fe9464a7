/**
 * npm run bench [-- options]
 *
 * Runs the workload, gRPC and memory benchmarks (and the soak with --soak 30m), each on its
 * own dedicated loopback cluster unless KUBECONFIG is set, and writes bench/REPORT.md with
 * every figure beside its same-run baseline and its target. Also prints the report.
 *
 *   --only workloads,grpc,memory,soak   which to run (default: the three; soak when --soak is given)
 *   --n 1000 --c 32 --idle 60s --warmup 20           workloads (bench/workloads.ts; also
 *     --finalizer-policy, --status-coalesce-ms 0, --floor-rounds 3)
 *   --start-n 200,500 --start-c 16 --start-shape simple --duration 10s --rounds 2 --grpc-warmup 2s   gRPC (bench/grpc.ts; --c shared)
 *   --memory-n 5000 --memory-rate 8                   memory (bench/memory.ts)
 *   --soak 30m --soak-rate 1 --soak-lifetime 20s      soak (bench/soak.ts)
 *   --workers 4 --qps 200 --burst 400                 the operator's settings (src/main.ts defaults)
 *   --report bench/REPORT.md
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from './lib/args.ts';
import { ROOT } from './lib/cluster.ts';
import { START_TARGETS, startVerdicts } from './lib/start-report.ts';
import { MiB, fixed, mib, seconds } from './lib/stats.ts';
import { verdict } from './lib/verdict.ts';
import {
  GRPC_TARGETS,
  grpcVerdicts,
  grpcOptions,
  inspectP99Verdict,
  renderGrpcReport,
  rssVerdictText,
  runGrpcBench,
  type GrpcBenchResult,
} from './grpc.ts';
import { renderMemoryReport, runMemoryBench, type MemoryBenchResult } from './memory.ts';
import { renderSoakReport, runSoak, soakFigures, soakOptions, type SoakResult } from './soak.ts';
import {
  FLOOR_TARGETS,
  WORKLOAD_TARGETS,
  floorRatios,
  floorVerdict,
  idleVerdict,
  rawVerdicts,
  renderWorkloadReport,
  runWorkloadBench,
  workloadOptions,
  type WorkloadBenchResult,
} from './workloads.ts';

type Name = 'workloads' | 'grpc' | 'memory' | 'soak';

const args = parseArgs();
const only = new Set(
  (args.optional('only') ?? `workloads,grpc,memory${args.has('soak') ? ',soak' : ''}`)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as Name[],
);
for (const name of only) {
  if (!['workloads', 'grpc', 'memory', 'soak'].includes(name))
    throw new Error(`--only: unknown benchmark ${name}`);
}
const reportPath = path.resolve(ROOT, args.string('report', 'bench/REPORT.md'));
const kubeconfig = process.env.KUBECONFIG;

const sections: string[] = [];
const summary: string[] = [];
const failures: string[] = [];
const startedAt = new Date();
const load0 = os.loadavg();
const t0 = performance.now();

async function step<T>(
  name: Name,
  run: () => Promise<T>,
  render: (r: T) => string,
  sum: (r: T) => void,
): Promise<void> {
  if (!only.has(name)) return;
  process.stderr.write(`[bench] === ${name} ===\n`);
  try {
    const result = await run();
    sections.push(render(result));
    sum(result);
    writeFileSync(reportPath, renderReport(false));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`[bench] ${name} failed: ${err instanceof Error ? err.stack : message}\n`);
    failures.push(`${name}: ${message}`);
    sections.push(`## ${name}\n\n**Failed:** ${message}`);
    writeFileSync(reportPath, renderReport(false));
  }
}

const wOpts = workloadOptions(args);
await step(
  'workloads',
  () => runWorkloadBench(wOpts, kubeconfig),
  renderWorkloadReport,
  (r: WorkloadBenchResult) => {
    const ratio = r.operator.allRunningMs / r.baseline.allRunningMs;
    const existRatio = r.operator.allExistMs / r.baseline.allExistMs;
    const fr = floorRatios(r);
    const raw = rawVerdicts(r);
    summary.push(
      `| Workloads (N=${r.options.n}, C=${r.options.concurrency}): time until all Running, operator ÷ raw Pods | ${seconds(r.operator.allRunningMs)} s ÷ ${seconds(r.baseline.allRunningMs)} s = ${fixed(ratio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× | ${raw.running} |`,
      `| Workloads: time until all Pods exist, operator ÷ raw Pods | ${seconds(r.operator.allExistMs)} s ÷ ${seconds(r.baseline.allExistMs)} s = ${fixed(existRatio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× | ${raw.exist} |`,
      `| Workloads: floor, time until all Pods exist with no controller (the load generator sends each AgentWorkload, its PATCH, PVC and Pod) ÷ raw Pods | ${seconds(r.floor.allExistMs)} s ÷ ${seconds(r.baseline.allExistMs)} s = ${fixed(r.floor.allExistMs / r.baseline.allExistMs)}× | | |`,
      `| Workloads (kubectl path): time until all Pods exist, operator ÷ no-controller floor | ${fr.existText} (round 1: ${seconds(r.operator.allExistMs)} s ÷ ${seconds(r.floor.allExistMs)} s) | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} | ${floorVerdict(fr.existOk, r, 'allExistMs')} |`,
      `| Workloads (kubectl path): time until all Running, operator ÷ no-controller floor | ${fr.runningText} (round 1: ${seconds(r.operator.allRunningMs)} s ÷ ${seconds(r.floor.allRunningMs)} s) | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} | ${floorVerdict(fr.runningOk, r, 'allRunningMs')} |`,
      `| Workloads (kubectl path): status floor (the floor plus owner references, a Starting status with the Pod and a Running status when it runs) ÷ floor, all Running | ${fixed(r.statusFloor.allRunningMs / r.floor.allRunningMs)}× (${seconds(r.statusFloor.allRunningMs)} s); operator ÷ status floor ${fixed(r.operator.allRunningMs / r.statusFloor.allRunningMs)}× | | |`,
      ...(r.reactiveFloor
        ? [
            `| Workloads (kubectl path): reactive floor (the status floor's writes sent in reaction to each AgentWorkload's watch event by ${r.options.workers} workers, no controller logic) ÷ floor, all Pods exist / all Running | ${fixed(r.reactiveFloor.allExistMs / r.floor.allExistMs)}× / ${fixed(r.reactiveFloor.allRunningMs / r.floor.allRunningMs)}× (${seconds(r.reactiveFloor.allRunningMs)} s); operator ÷ reactive floor ${fixed(r.operator.allExistMs / r.reactiveFloor.allExistMs)}× / ${fixed(r.operator.allRunningMs / r.reactiveFloor.allRunningMs)}× | | |`,
          ]
        : []),
      `| Workloads: operator RSS, the controller's own process | ${mib(r.rss.peak)} MiB peak (VmHWM), ${mib(r.rss.afterGc)} MiB after GC | ≤ ${WORKLOAD_TARGETS.rssMiB} MiB at ${WORKLOAD_TARGETS.rssAtN} | ${verdict(r.rss.peak <= WORKLOAD_TARGETS.rssMiB * MiB)}${r.options.n < WORKLOAD_TARGETS.rssAtN ? ` (at ${r.options.n})` : ''} |`,
      `| Workloads: API writes/min when nothing changes | ${fixed(r.idle.writesPerMin, 1)} (${r.idle.seconds.toFixed(0)} s window${r.idle.unconverged ? `; ${r.idle.unconverged} still converging` : ''}) | 0 | ${idleVerdict(r)} |`,
      `| Workloads: API writes per workload | ${fixed(r.writesPerWorkload)} (raw Pods: 2) | minimal | |`,
    );
  },
);

const gOpts = grpcOptions(args);
await step(
  'grpc',
  () => runGrpcBench(gOpts, kubeconfig),
  renderGrpcReport,
  (r: GrpcBenchResult) => {
    const shimRows = r.start.flatMap((run) => {
      const { n, direct, crFloor, shim } = run;
      const v = startVerdicts(run);
      return [
        `| gRPC: first StartWorkload → all Pods Running, shim ÷ direct (N=${n}) | ${fixed(shim.allRunningMs / direct.allRunningMs)}× (${fixed(shim.allRunningMs / 1000)} s vs ${fixed(direct.allRunningMs / 1000)} s; ${fixed(shim.writesPerWorkload)} writes/workload) | ≤ ${START_TARGETS.allRunningRatio}× at N=500 | ${n >= 500 ? v.allRunning : ''} |`,
        `| gRPC: StartWorkload p50, operator ÷ direct (N=${n}) | ${fixed(shim.rpc.p50)} ÷ ${fixed(direct.rpc.p50)} ms = ${fixed(shim.rpc.p50 / direct.rpc.p50)}× | ≤ ${START_TARGETS.rpcP50Ratio}× | ${v.rpcP50} |`,
        `| gRPC: API writes per started workload, Events included (N=${n}) | ${fixed(shim.writesPerWorkload)} (direct: ${fixed(direct.writesPerWorkload)}) | ≤ ${START_TARGETS.writesPerWorkload} | ${v.writes} |`,
        ...(crFloor
          ? [
              `| gRPC: the CR design's floor (CR POST, Pod POST, one status write; no controller logic) ÷ direct, all Pods Running (N=${n}) | ${fixed(crFloor.allRunningMs / direct.allRunningMs)}× (${fixed(crFloor.allRunningMs / 1000)} s); shim ÷ this floor ${fixed(shim.allRunningMs / crFloor.allRunningMs)}× | | |`,
            ]
          : []),
        `| gRPC: process CPU per started workload, operator ÷ direct (N=${n}) | ${fixed(shim.cpuMs / n)} ÷ ${fixed(direct.cpuMs / n)} ms = ${fixed(shim.cpuMs / direct.cpuMs)}× | ≤ ${START_TARGETS.cpuRatio}× | ${v.cpu} |`,
      ];
    });
    const m = r.memory;
    summary.push(
      ...shimRows,
      `| gRPC: operator RSS (its own process, N=${r.start.at(-1)?.n ?? 0}): peak over the whole run incl. the unary load | ${mib(m.lifetimePeak)} MiB (modules loaded ${mib(m.modulesLoaded)}, started ${mib(m.started.rss)}, idle with the workloads ${mib(m.idle.rss)}; bare grpc-js with the same objects: ${mib(m.bare.loadPeak)} peak; bare grpc-js + the operator's modules with the same objects: ${mib(m.bareModules.loadPeak)} peak) | ≤ ${GRPC_TARGETS.rssPeakMiB} MiB at N=${GRPC_TARGETS.rssAtN} | ${rssVerdictText(r)} |`,
      `| gRPC: InspectWorkload req/s, ${r.options.concurrency} closed-loop callers | ${fixed(r.load.inspect.closed.rps, 0)} (bare grpc-js: ${fixed(r.load.bare.closed.rps, 0)}, ${fixed(r.load.inspect.closed.rps / r.load.bare.closed.rps)}×) | ≥ ${GRPC_TARGETS.inspectRps} | ${verdict(grpcVerdicts(r).rps)} |`,
      `| gRPC: InspectWorkload p99 at ${r.options.rate} req/s (open loop, ${r.options.concurrency} callers) | ${fixed(r.load.inspect.open.p99, 2)} ms (bare grpc-js: ${fixed(r.load.bare.open.p99, 2)} ms) | ≤ ${GRPC_TARGETS.inspectP99Ms} ms | ${inspectP99Verdict(r)} |`,
    );
  },
);

await step(
  'memory',
  () =>
    runMemoryBench(
      {
        n: args.int('memory-n', 5000),
        concurrency: args.int('c', 32),
        ratePerSec: args.number('memory-rate', 8),
      },
      kubeconfig,
    ),
  renderMemoryReport,
  (r: MemoryBenchResult) => {
    const last = r.steps.at(-1) ?? r.empty;
    const perObject = last.objects ? (last.heapUsed - r.empty.heapUsed) / last.objects : Number.NaN;
    summary.push(
      `| Memory (${r.populated} agents, ${last.objects} objects): cache heap | ${mib(last.heapUsed - r.empty.heapUsed)} MiB, ${fixed(perObject, 0)} B/object (empty process: ${mib(r.empty.heapUsed)} MiB heap, ${mib(r.empty.rss)} MiB RSS) | reference: Pod ~5 KB, CR ~2 KB | |`,
    );
  },
);

if (only.has('soak')) {
  const sOpts = soakOptions(args);
  await step(
    'soak',
    () => runSoak(sOpts, kubeconfig),
    renderSoakReport,
    (r: SoakResult) => {
      const f = soakFigures(r);
      const row = `${f.rssFitChange >= 0 ? '+' : ''}${mib(f.rssFitChange)} MiB RSS, ${f.heapFitChange >= 0 ? '+' : ''}${mib(f.heapFitChange, 2)} MiB heap over ${fixed(f.window, 0)} s`;
      const drift = f.judged ? verdict(f.noDrift) : 'not judged: run < 10 min';
      summary.push(
        `| Soak (${fixed(r.options.durationMs / 60_000, 1)} min, ${r.options.ratePerSec}/s): RSS drift | ${row}; ${r.churn.errors} churn errors | no upward drift | ${drift} |`,
      );
    },
  );
}

function renderReport(done: boolean): string {
  const load1 = os.loadavg();
  const cpus = os.cpus();
  const header = [
    '# Benchmark report',
    '',
    `_Generated by \`npm run bench\` (bench/run.ts) — regenerated on every run, do not edit by hand._`,
    ...(done
      ? []
      : [
          '',
          `**Partial: written after each benchmark; the run is still going (${[...only].join(', ')}).**`,
        ]),
    '',
    `- Run: ${startedAt.toISOString()}, took ${seconds(performance.now() - t0, 0)} s; arguments: \`${process.argv.slice(2).join(' ') || '(defaults)'}\``,
    `- Machine: ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${fixed(os.totalmem() / 1024 ** 3, 1)} GiB; Node ${process.version}; ` +
      `load average ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end ` +
      `(the machine is shared: absolute figures move with its load, the same-run ratios much less)`,
    `- Cluster: ${kubeconfig ? `the one KUBECONFIG names (${kubeconfig})` : 'a dedicated loopback control plane per benchmark (scripts/test-cluster in a temp dir: etcd, kube-apiserver, controller-manager, scheduler, kwok), torn down after it'}`,
    `- Method: every figure is measured beside a baseline taken in the same run; targets are from issues 3, 5, 7 and 15. ` +
      'Performance is not asserted in tests; this report is where it is judged.',
    '',
    '## Summary',
    '',
    '| Figure | Measured (same-run baseline) | Target | Verdict |',
    '|---|---|---|---|',
    ...summary,
    ...(failures.length ? ['', `**Failed:** ${failures.join('; ')}`] : []),
  ];
  return `${[...header, '', ...sections].join('\n')}\n`;
}

const report = renderReport(true);
writeFileSync(reportPath, report);
console.log(report);
process.stderr.write(`[bench] wrote ${path.relative(ROOT, reportPath)}\n`);
process.exit(failures.length ? 1 : 0);
