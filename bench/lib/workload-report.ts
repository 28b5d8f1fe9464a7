/** bench:workloads' section of bench/REPORT.md, and the verdicts bench/run.ts sums up. */
import { BENCH_START_GRACE_SECONDS } from './shapes.ts';
import { MiB, fixed, gcAvailable, mib, seconds } from './stats.ts';
import { ratioFloor, verdict, verdictBeside, type FloorEvidence } from './verdict.ts';
import { floorRatios } from './floor-rounds.ts';
import {
  FLOOR_TARGETS,
  WORKLOAD_TARGETS,
  type PhaseCpu,
  type PhaseTiming,
  type WorkloadBenchResult,
} from './workload-options.ts';

/**
 * The older targets operator ÷ raw Pods (all Pods exist, all Running), each beside the
 * no-controller floor ÷ raw Pods of the same run: a floor above the target makes it impossible
 * for any controller of the CR design here.
 */
export function rawVerdicts(r: WorkloadBenchResult): { exist: string; running: string } {
  const b = r.baseline;
  const judge = (which: 'allExistMs' | 'allRunningMs'): string =>
    verdictBeside(
      r.operator[which] / b[which] <= WORKLOAD_TARGETS.ratio,
      ratioFloor(
        r.floor[which] / b[which],
        WORKLOAD_TARGETS.ratio,
        'the no-controller floor ÷ raw Pods',
      ),
    );
  return { exist: judge('allExistMs'), running: judge('allRunningMs') };
}

/**
 * The floor of "all Running" on the kubectl path: the lower of the status floor and the reactive
 * floor, each ÷ the no-controller floor. Both send the writes the operator sends (owner
 * references, Starting, Running), one with no controller at all, one reacting to watch events;
 * when the lower is above the target, no controller that writes those statuses meets it here.
 */
function runningFloor(r: WorkloadBenchResult): FloorEvidence {
  const status = r.statusFloor.allRunningMs / r.floor.allRunningMs;
  const reactive = r.reactiveFloor && r.reactiveFloor.allRunningMs / r.floor.allRunningMs;
  const lowest = Math.min(status, reactive ?? status);
  const named =
    `the status floor (the operator's writes, no controller) is ${fixed(status)}×` +
    (reactive === undefined
      ? ''
      : ` and the reactive floor (the same, watch-driven) ${fixed(reactive)}×`);
  return { above: lowest > FLOOR_TARGETS.ratio, text: `${named} the floor in the same run` };
}

/**
 * "meets"/"misses" when the run is the target's size, else which N it was measured at. A miss
 * of "all Running" is impossible when runningFloor is above the target; a miss of "all Pods
 * exist" names the reactive floor's ratio when that is above the target too.
 */
export function floorVerdict(
  ok: boolean,
  r: WorkloadBenchResult,
  which?: 'allExistMs' | 'allRunningMs',
): string {
  let v = which === 'allRunningMs' ? verdictBeside(ok, runningFloor(r)) : verdict(ok);
  const rf = r.reactiveFloor;
  if (!ok && rf && which === 'allExistMs') {
    const reactive = rf.allExistMs / r.floor.allExistMs;
    if (reactive > FLOOR_TARGETS.ratio)
      v += `; the reactive floor (watch-driven writes, no controller logic) is ${fixed(reactive)}× the floor in the same run`;
  }
  return r.options.n >= FLOOR_TARGETS.atN ? v : `${v} (measured at N=${r.options.n})`;
}

/** Writes in a window where some workloads were still converging are not idle writes. */
export function idleVerdict(r: WorkloadBenchResult): string {
  if (r.idle.writesPerMin <= WORKLOAD_TARGETS.idleWritesPerMin) return 'meets';
  return r.idle.unconverged > 0 ? 'not judged: the window was not quiet' : verdict(false);
}

function ms(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'n/a';
}

export function renderWorkloadReport(r: WorkloadBenchResult): string {
  return [
    ...heading(r),
    ...ratioRows(r),
    ...latencyRows(r),
    ...processRows(r),
    ...cpuTable(r),
    ...requestParagraphs(r),
    ...notes(r),
  ].join('\n');
}

/** The operator's settings as the method line states them. */
function controllerSettings(r: WorkloadBenchResult): string {
  const o = r.options;
  const coalescing =
    o.statusCoalesceMs === undefined
      ? ''
      : `, status coalescing window ${o.statusCoalesceMs} ms (option)`;
  return `workers ${o.workers}, client limit ${o.qps} qps / burst ${o.burst}${coalescing}`;
}

function heading(r: WorkloadBenchResult): string[] {
  const o = r.options;
  const lines: string[] = [];
  lines.push(`## Workloads: ${o.n} AgentWorkloads at concurrency ${o.concurrency}`);
  lines.push('');
  lines.push(
    `WorkloadController in a process of its own (${controllerSettings(r)}, its own KubeClient); ` +
      `the real agent shape (test/fixtures/agent-workload-example.ts: 2 init containers, main, MCP + Ziti sidecars, ` +
      `one persistent workspace → one PVC per workload; start grace ${BENCH_START_GRACE_SECONDS} s, see bench/lib/shapes.ts). ` +
      `Baseline, same run and cluster: the same PVC and Pod (built by the same pod builder) created directly at the ` +
      `same concurrency.`,
  );
  lines.push('');
  lines.push('| Figure | Operator | Baseline (raw Pods) | Ratio | Target |');
  lines.push('|---|---:|---:|---:|---|');
  return lines;
}

/** Operator, floors and status floor against the raw baseline and each other. */
function ratioRows(r: WorkloadBenchResult): string[] {
  const b = r.baseline;
  const op = r.operator;
  const existRatio = op.allExistMs / b.allExistMs;
  const runRatio = op.allRunningMs / b.allRunningMs;
  const raw = rawVerdicts(r);
  const lines: string[] = [];
  lines.push(
    `| Time until all Pods exist | ${seconds(op.allExistMs)} s | ${seconds(b.allExistMs)} s | ${fixed(existRatio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× — ${raw.exist} |`,
  );
  const f = r.floor;
  lines.push(
    `| Floor: time until all Pods exist when the load generator itself sends each AgentWorkload, its PATCH, PVC and Pod (no controller) | ${seconds(f.allExistMs)} s | ${seconds(b.allExistMs)} s | ${fixed(f.allExistMs / b.allExistMs)}× | |`,
  );
  const fr = floorRatios(r);
  lines.push(
    `| Operator ÷ floor: time until all Pods exist (what the controller itself adds) | ${seconds(op.allExistMs)} s | ${seconds(f.allExistMs)} s (floor) | ${fr.existText} | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} — ${floorVerdict(fr.existOk, r, 'allExistMs')} |`,
  );
  lines.push(
    `| Time until all Running (operator: status.phase written; baseline: Pod phase) | ${seconds(op.allRunningMs)} s | ${seconds(b.allRunningMs)} s | ${fixed(runRatio)}× | ≤ ${WORKLOAD_TARGETS.ratio}× — ${raw.running} |`,
  );
  lines.push(
    `| Floor: time until all Pods Running (no controller, so no status written) | ${seconds(f.allRunningMs)} s | ${seconds(b.allRunningMs)} s | ${fixed(f.allRunningMs / b.allRunningMs)}× | |`,
  );
  lines.push(
    `| Operator ÷ floor: time until all Running (operator: status.phase written; floor: Pod phase) | ${seconds(op.allRunningMs)} s | ${seconds(f.allRunningMs)} s (floor) | ${fr.runningText} | ≤ ${FLOOR_TARGETS.ratio}× at N=${FLOOR_TARGETS.atN} — ${floorVerdict(fr.runningOk, r, 'allRunningMs')} |`,
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
  return [...lines, ...reactiveRows(r)];
}

/** The reactive floor: what reacting to watch events costs, and the operator beside it. */
function reactiveRows(r: WorkloadBenchResult): string[] {
  const rf = r.reactiveFloor;
  if (!rf) return [];
  const { floor: f, operator: op } = r;
  return [
    `| Reactive floor: time until all AgentWorkloads Running when ${r.options.workers} workers of the load generator send the status floor's writes in reaction to each AgentWorkload's watch event, as any watch-based controller must (no controller logic) | ${seconds(rf.allRunningMs)} s | ${seconds(r.baseline.allRunningMs)} s | ${fixed(rf.allRunningMs / r.baseline.allRunningMs)}× | |`,
    `| Reactive floor ÷ floor: time until all Pods exist / all Running (what reacting to watch events costs any controller here) | ${seconds(rf.allExistMs)} / ${seconds(rf.allRunningMs)} s | ${seconds(f.allExistMs)} / ${seconds(f.allRunningMs)} s (floor) | ${fixed(rf.allExistMs / f.allExistMs)}× / ${fixed(rf.allRunningMs / f.allRunningMs)}× | |`,
    `| Operator ÷ reactive floor: time until all Pods exist / all Running (what the operator's own logic adds) | ${seconds(op.allExistMs)} / ${seconds(op.allRunningMs)} s | ${seconds(rf.allExistMs)} / ${seconds(rf.allRunningMs)} s (reactive floor) | ${fixed(op.allExistMs / rf.allExistMs)}× / ${fixed(op.allRunningMs / rf.allRunningMs)}× | |`,
  ];
}

const refused = (t: PhaseTiming) =>
  t.schedulingFailures
    ? `${t.schedulingFailures.pods} Pods / ${t.schedulingFailures.attempts} refusals`
    : 'n/a';
const bound = (t: PhaseTiming) =>
  t.allBoundMs === undefined
    ? 'n/a'
    : t.boundP50Ms === undefined
      ? `${seconds(t.allBoundMs)} s`
      : `${seconds(t.allBoundMs)} s (p50 ${seconds(t.boundP50Ms)}, p90 ${seconds(t.boundP90Ms ?? NaN)})`;

/** Claims, scheduler refusals, throughput, per-workload latencies, writes and errors. */
function latencyRows(r: WorkloadBenchResult): string[] {
  const o = r.options;
  const b = r.baseline;
  const op = r.operator;
  const f = r.floor;
  const sf = r.statusFloor;
  const lines: string[] = [];
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
  return lines;
}

const phaseText = (p: Record<string, number>): string =>
  Object.entries(p)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');

/** How many ran, the controller's memory and CPU, the load generator's, idle writes. */
function processRows(r: WorkloadBenchResult): string[] {
  const o = r.options;
  const b = r.baseline;
  const op = r.operator;
  const rssTarget = WORKLOAD_TARGETS.rssMiB * MiB;
  const lines: string[] = [];
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
  return lines;
}

const CLUSTER_COMPONENTS = [
  'kube-apiserver',
  'etcd',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
];

/**
 * Where the machine's cores went in each phase, from the first create until all were
 * Running: every process of the run shares them, so a phase that needs more CPU in all takes
 * longer once they are all busy.
 */
function cpuTable(r: WorkloadBenchResult): string[] {
  const phases: Array<[string, PhaseTiming]> = [
    ['Baseline', r.baseline],
    ['Floor', r.floor],
    ['Status floor', r.statusFloor],
    ...(r.reactiveFloor ? [['Reactive floor', r.reactiveFloor] as [string, PhaseTiming]] : []),
    ['Operator', r.operator],
  ];
  const cpus = phases.map(([, t]) => t.cpu);
  if (cpus.every((c) => c === undefined)) return [];
  const cell = (f: (c: PhaseCpu) => number | undefined, digits = 1) =>
    cpus.map((c) => (c && f(c) !== undefined ? fixed(f(c)!, digits) : '–')).join(' | ');
  const total = (c: PhaseCpu) =>
    Object.values(c.components).reduce((a, b) => a + b, 0) + c.loadGenerator + (c.controller ?? 0);
  const lines = [
    '',
    `| CPU seconds from the first create until all Running | ${phases.map(([name]) => name).join(' | ')} |`,
    `|---|${phases.map(() => '---:').join('|')}|`,
    `| Phase length (s) | ${cell((c) => c.seconds)} |`,
  ];
  for (const component of CLUSTER_COMPONENTS)
    lines.push(`| ${component} | ${cell((c) => c.components[component])} |`);
  lines.push(
    `| Load generator and observers (this process) | ${cell((c) => c.loadGenerator)} |`,
    `| Controller process | ${cell((c) => c.controller)} |`,
    `| All of the above | ${cell(total)} |`,
    `| All of the above ÷ phase length (cores) | ${cell((c) => total(c) / c.seconds, 2)} |`,
    `| Machine busy (% of its ${cpus.find((c) => c)?.cores ?? '?'} cores, every process) | ${cell((c) => c.machineBusyShare * 100, 0)} |`,
  );
  return lines;
}

function requestParagraphs(r: WorkloadBenchResult): string[] {
  const o = r.options;
  const lines: string[] = [];
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
  if (r.operator.firstErrors.length || r.baseline.firstErrors.length) {
    lines.push('');
    lines.push(
      `First errors: ${[...r.operator.firstErrors, ...r.baseline.firstErrors].join(' | ')}`,
    );
  }
  return lines;
}

function notes(r: WorkloadBenchResult): string[] {
  const lines: string[] = [];
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
      `is a status.phase, as the operator's is. ` +
      (r.reactiveFloor
        ? `The reactive floor sends the status floor's writes the way a watch-based controller must: ${r.options.workers} workers ` +
          `of the load generator react to each AgentWorkload's watch event (bench/lib/reactive-floor.ts), with no cache of Pods, ` +
          `decision or queue in between; "operator ÷ reactive floor" is what the operator's own logic adds. `
        : '') +
      `"Operator ÷ floor" is judged by the median of ${1 + r.extraFloorRounds.length} interleaved rounds of the floor and the ` +
      `operator (bench/lib/floor-rounds.ts; the first is the one in the rows): on this shared machine one pair of ` +
      `phases of the same code gave ratios from 0.99× to 1.33×. ` +
      `Each phase starts once the previous one's namespace and the volumes ` +
      `its claims were bound to are gone. ` +
      (r.baselineNamespaceGone
        ? ''
        : " A previous phase's namespace or volumes were still going when the next phase began.") +
      (gcAvailable() ? '' : ' (GC not exposed: run with --expose-gc for the after-GC figures.)'),
  );
  return lines;
}
