/** bench:workloads' report (bench/lib/workload-report.ts) and options, on a fixed result. */
import { describe, expect, it } from '@jest/globals';
import { parseArgs } from '../../bench/lib/args.ts';
import { median } from '../../bench/lib/stats.ts';
import { controllerConfig } from '../../bench/lib/workload-operator-phase.ts';
import {
  renderWorkloadReport,
  workloadOptions,
  type WorkloadBenchResult,
} from '../../bench/workloads.ts';

const MiB = 2 ** 20;

function phase(k: number, extra: Record<string, unknown> = {}) {
  return {
    sendMs: 1234.5 * k,
    allExistMs: 20_345 * k,
    allRunningMs: 31_234.6 * k,
    existP50: 512.4 * k,
    existP95: 1800.7 * k,
    runningP50: 9000 * k,
    runningP95: 15000.2 * k,
    errors: 0,
    firstErrors: [],
    running: 1000,
    phases: { Running: 1000 },
    ...extra,
  };
}

const result: WorkloadBenchResult = {
  options: {
    n: 1000,
    concurrency: 32,
    workers: 16,
    qps: 200,
    burst: 400,
    idleMs: 60_000,
    warmup: 20,
    finalizerPolicy: false,
    floorRounds: 1,
  },
  baseline: phase(1, { schedulingFailures: { pods: 3, attempts: 7 }, allBoundMs: 18_000 }),
  floor: phase(1.1, { schedulingFailures: { pods: 0, attempts: 0 }, allBoundMs: 19_000 }),
  statusFloor: phase(1.2, { allBoundMs: 19_500 }),
  operator: phase(1.3, { schedulingFailures: { pods: 1, attempts: 1 }, allBoundMs: 20_000 }),
  requestsPerWorkload: [
    ['POST', 4.001],
    ['PATCH', 2],
  ],
  requestsPerWorkloadByResource: [
    ['pods', 1],
    ['agentworkloads', 3.5],
  ],
  writesPerWorkload: 5.25,
  rss: {
    before: 60 * MiB,
    peak: 140 * MiB,
    converged: 120 * MiB,
    afterGc: 90 * MiB,
    heapBefore: 20 * MiB,
    heapAfterGc: 35 * MiB,
  },
  emptyOperatorRss: 55 * MiB,
  converge: { lagP99: 12.34, lagMax: 56.78, cpu: 0.45 },
  controllerCpu: 0.67,
  idle: {
    seconds: 60,
    settleSeconds: 5,
    unconverged: 0,
    writes: 0,
    writesPerMin: 0,
    requests: [],
    byResource: [],
  },
  baselineNamespaceGone: true,
  extraFloorRounds: [],
};

describe('renderWorkloadReport', () => {
  it('renders the figures of a fixed result in their rows', () => {
    const lines = renderWorkloadReport(result).split('\n');
    expect(lines[0]).toBe('## Workloads: 1000 AgentWorkloads at concurrency 32');
    expect(lines[2]).toMatch(
      /^WorkloadController in a process of its own \(workers 16, client limit 200 qps \/ burst 400, its own KubeClient\); the real agent shape /,
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        '| Time until all Pods exist | 26.45 s | 20.34 s | 1.30× | ≤ 1.3× — meets |',
        '| Operator ÷ floor: time until all Pods exist (what the controller itself adds) | 26.45 s | 22.38 s (floor) | 1.18× | ≤ 1.2× at N=1000 — meets |',
        '| Operator ÷ floor: time until all Running (operator: status.phase written; floor: Pod phase) | 40.60 s | 34.36 s (floor) | 1.18× | ≤ 1.2× at N=1000 — meets |',
        "| Time until all claims are Bound (the PV controller's part of a start): operator / baseline; floor 19.00 s, status floor 19.50 s | 20.00 s | 18.00 s | | |",
        '| Pods the scheduler refused at least once (FailedScheduling Events, e.g. an unbound claim): operator / baseline; floor 0 Pods / 0 refusals, status floor n/a | 1 Pods / 1 refusals | 3 Pods / 7 refusals | | |',
        '| create → Running, p95 | 19500 ms | 15000 ms | 1.30× | |',
        '| API writes per workload | 5.25 | 2.00 (PVC + Pod) | 2.63× | minimal |',
        '| Reached Running (phases at the end of the wait) | 1000/1000 (1000 Running) | 1000/1000 (1000 Running) | | all |',
        "| Operator RSS, peak: the controller's own process (compiled JS, plain node), VmHWM | 140.0 MiB | 55.0 MiB empty operator process (modules loaded) | +85.0 MiB | ≤ 150 MiB at 1000 — meets |",
        '| API writes per minute when nothing changes (60 s after convergence) | 0.0 | | | 0 — meets |',
        "API requests per workload by verb (the controller's `KubeClient.requestCounts`, from controller start to convergence, ÷ 1000): POST 4.001, PATCH 2.000.",
        'Idle window (60 s, starting 5 s after the last status was observed) requests: none.',
      ]),
    );
    expect(lines.at(-1)).toMatch(/^Notes: times run from the first create sent /);
  });

  it('states the status coalescing window on the method line when it was set', () => {
    const set = renderWorkloadReport({
      ...result,
      options: { ...result.options, statusCoalesceMs: 0 },
    }).split('\n');
    expect(set[2]).toMatch(
      /^WorkloadController in a process of its own \(workers 16, client limit 200 qps \/ burst 400, status coalescing window 0 ms \(option\), its own KubeClient\); /,
    );
    expect(renderWorkloadReport(result)).not.toContain('coalescing');
  });
});

describe('--status-coalesce-ms', () => {
  it('is absent unless given, and reaches the controller process config when given', () => {
    const unset = workloadOptions(parseArgs(['--n', '30']));
    expect(unset.statusCoalesceMs).toBeUndefined();
    expect(controllerConfig('kc', 'ns', unset)).not.toHaveProperty('statusCoalesceMs');
    const set = workloadOptions(parseArgs(['--n', '30', '--status-coalesce-ms', '0']));
    expect(set.statusCoalesceMs).toBe(0);
    expect(controllerConfig('kc', 'ns', set)).toEqual({
      kubeconfig: 'kc',
      namespace: 'ns',
      workers: set.workers,
      qps: set.qps,
      burst: set.burst,
      statusCoalesceMs: 0,
    });
    expect(() => workloadOptions(parseArgs(['--status-coalesce-ms', '-5']))).toThrow(
      /--status-coalesce-ms must be a non-negative integer/,
    );
  });
});

describe('the CPU table', () => {
  const cpu = (k: number, controller?: number) => ({
    seconds: 50 * k,
    components: {
      'kube-apiserver': 60 * k,
      etcd: 8 * k,
      'kube-controller-manager': 7 * k,
      'kube-scheduler': 9 * k,
      kwok: 6 * k,
    },
    machineBusyShare: 0.97,
    cores: 2,
    loadGenerator: 5 * k,
    ...(controller === undefined ? {} : { controller }),
  });

  it('is left out when no phase measured CPU', () => {
    expect(renderWorkloadReport(result)).not.toContain('CPU seconds from the first create');
  });

  it("sums each phase's processes and says how many cores they kept busy", () => {
    const lines = renderWorkloadReport({
      ...result,
      baseline: { ...result.baseline, cpu: cpu(0.5) },
      floor: { ...result.floor, cpu: cpu(1) },
      statusFloor: { ...result.statusFloor, cpu: cpu(1) },
      operator: { ...result.operator, cpu: cpu(1.5, 10) },
    }).split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        '| CPU seconds from the first create until all Running | Baseline | Floor | Status floor | Operator |',
        '| Phase length (s) | 25.0 | 50.0 | 50.0 | 75.0 |',
        '| kube-apiserver | 30.0 | 60.0 | 60.0 | 90.0 |',
        '| Controller process | – | – | – | 10.0 |',
        '| All of the above | 47.5 | 95.0 | 95.0 | 152.5 |',
        '| All of the above ÷ phase length (cores) | 1.90 | 1.90 | 1.90 | 2.03 |',
        '| Machine busy (% of its 2 cores, every process) | 97 | 97 | 97 | 97 |',
      ]),
    );
  });
});

describe('the reactive floor', () => {
  const withReactive = {
    ...result,
    floor: phase(1),
    statusFloor: phase(1.3),
    reactiveFloor: phase(1.25),
    operator: phase(1.3),
  };

  it('gets its rows; a miss of all Running is impossible when both floors that send its writes are above the target', () => {
    const lines = renderWorkloadReport(withReactive).split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        '| Reactive floor ÷ floor: time until all Pods exist / all Running (what reacting to watch events costs any controller here) | 25.43 / 39.04 s | 20.34 / 31.23 s (floor) | 1.25× / 1.25× | |',
        "| Operator ÷ reactive floor: time until all Pods exist / all Running (what the operator's own logic adds) | 26.45 / 40.60 s | 25.43 / 39.04 s (reactive floor) | 1.04× / 1.04× | |",
        "| Operator ÷ floor: time until all Running (operator: status.phase written; floor: Pod phase) | 40.60 s | 31.23 s (floor) | 1.30× | ≤ 1.2× at N=1000 — **impossible here**: the status floor (the operator's writes, no controller) is 1.30× and the reactive floor (the same, watch-driven) 1.25× the floor in the same run |",
        '| Operator ÷ floor: time until all Pods exist (what the controller itself adds) | 26.45 s | 20.34 s (floor) | 1.30× | ≤ 1.2× at N=1000 — **misses**; the reactive floor (watch-driven writes, no controller logic) is 1.25× the floor in the same run |',
      ]),
    );
    expect(lines.at(-1)).toContain(
      '"operator ÷ reactive floor" is what the operator\'s own logic adds',
    );
  });

  it('is not named in a miss when it is within the target itself', () => {
    const text = renderWorkloadReport({ ...withReactive, reactiveFloor: phase(1.1) });
    expect(text).toContain('40.60 s | 31.23 s (floor) | 1.30× | ≤ 1.2× at N=1000 — **misses** |');
    expect(text).toContain('26.45 s | 20.34 s (floor) | 1.30× | ≤ 1.2× at N=1000 — **misses** |');
    expect(text).not.toContain('the reactive floor (watch-driven writes');
    expect(text).not.toContain('impossible');
  });

  it('without a reactive floor, judges all Running beside the status floor alone', () => {
    const text = renderWorkloadReport({ ...withReactive, reactiveFloor: undefined });
    expect(text).toContain(
      "1.30× | ≤ 1.2× at N=1000 — **impossible here**: the status floor (the operator's writes, no controller) is 1.30× the floor in the same run |",
    );
  });
});

describe('interleaved floor rounds', () => {
  const rounds = (...operatorK: number[]) =>
    operatorK.map((k) => ({ floor: phase(1), operator: phase(k) }));

  it("judge operator ÷ floor by the median of the rounds, the first being the rows' own", () => {
    const text = renderWorkloadReport({ ...result, extraFloorRounds: rounds(1.3, 1.1) });
    expect(text).toContain(
      '| 26.45 s | 22.38 s (floor) | 1.18×, the median of 3 interleaved rounds: 1.18, 1.30, 1.10× | ≤ 1.2× at N=1000 — meets |',
    );
    expect(text).toContain('judged by the median of 3 interleaved rounds');
  });

  it('miss when the median is above the target, whichever round met it', () => {
    const text = renderWorkloadReport({ ...result, extraFloorRounds: rounds(1.3, 1.25) });
    expect(text).toContain(
      '| 26.45 s | 22.38 s (floor) | 1.25×, the median of 3 interleaved rounds: 1.18, 1.30, 1.25× | ≤ 1.2× at N=1000 — **misses** |',
    );
  });
});

describe('median', () => {
  it('is the middle value, or the mean of the middle two', () => {
    expect(median([1.3, 1.1, 1.2])).toBe(1.2);
    expect(median([1.3, 1.1])).toBeCloseTo(1.2);
    expect(median([])).toBeNaN();
  });
});
