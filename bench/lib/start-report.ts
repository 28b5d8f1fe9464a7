import type { StartPhase } from './start-phase.ts';
import { fixed, mib, seconds } from './stats.ts';
import { ratioFloor, verdict, verdictBeside } from './verdict.ts';

/** One interleaved round of an N: the direct phase, the CR floor, then the shim. */
export interface StartRound {
  direct: StartPhase;
  /** The CR design's floor (bench/lib/cr-floor.ts): its writes with no controller logic. */
  crFloor?: StartPhase;
  shim: StartPhase;
}

/** An N's phases: each the median of its rounds (bench/lib/start-rounds.ts), which it keeps. */
export interface StartComparison extends StartRound {
  n: number;
  rounds?: StartRound[];
}

/**
 * Where the shim's ratio to the direct phase comes from: the CR design itself (its floor ÷
 * direct) and the operator's code (shim ÷ its floor).
 */
export function renderCrFloor(runs: StartComparison[]): string[] {
  const withFloor = runs.filter((r) => r.crFloor);
  if (withFloor.length === 0) return [];
  const lines = [
    '',
    "The CR design's floor (bench/lib/cr-floor.ts, a process of its own like the direct runner): per " +
      'StartWorkload the AgentWorkload POST (answered STARTING at once, as the shim does), then the Pod POST, one ' +
      'status write and one Event, with no informer, queue or decision. Floor ÷ direct is what the design costs on ' +
      "this cluster; shim ÷ floor is what the operator's code adds.",
    '',
    '| N | Figure | Direct | CR floor | Shim | Floor ÷ direct | Shim ÷ floor |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const { n, direct: d, crFloor: f, shim: s } of withFloor) {
    if (!f) continue;
    const row = (figure: string, pick: (p: StartPhase) => number, unit: string): void => {
      const v = (p: StartPhase): string => `${fixed(pick(p), unit === 's' ? 2 : 1)} ${unit}`;
      lines.push(
        `| ${n} | ${figure} | ${v(d)} | ${v(f)} | ${v(s)} | ${ratio(pick(f), pick(d))} | ${ratio(pick(s), pick(f))} |`,
      );
    };
    row('First call → all Pods Running', (p) => p.allRunningMs / 1000, 's');
    row('StartWorkload p50', (p) => p.rpc.p50, 'ms');
    row('API writes per workload', (p) => p.writesPerWorkload, '');
    row('Process CPU per workload', (p) => p.cpuMs / n, 'ms');
  }
  return lines;
}

/** The targets for the start path, as ratios shim ÷ direct in one run. */
export const START_TARGETS = {
  allRunningRatio: 1.5,
  rpcP50Ratio: 1.5,
  writesPerWorkload: 4,
  cpuRatio: 3,
};

/**
 * The verdicts on one N. The two time ratios are judged beside the CR design's floor
 * of the same run: when the floor ÷ direct misses the target too, no operator of the CR
 * design meets it here.
 */
export function startVerdicts(c: StartComparison): {
  allRunning: string;
  rpcP50: string;
  writes: string;
  cpu: string;
} {
  const { direct: d, crFloor: f, shim: s } = c;
  const floorOf = (pick: (p: StartPhase) => number, target: number) =>
    f && ratioFloor(pick(f) / pick(d), target, "the CR design's floor ÷ direct");
  const t = START_TARGETS;
  return {
    allRunning: verdictBeside(
      s.allRunningMs <= t.allRunningRatio * d.allRunningMs,
      floorOf((p) => p.allRunningMs, t.allRunningRatio),
    ),
    rpcP50: verdictBeside(
      s.rpc.p50 <= t.rpcP50Ratio * d.rpc.p50,
      floorOf((p) => p.rpc.p50, t.rpcP50Ratio),
    ),
    writes: verdict(s.writesPerWorkload <= t.writesPerWorkload + 0.005),
    cpu: verdict(s.cpuMs <= t.cpuRatio * d.cpuMs),
  };
}

function ratio(shim: number, direct: number): string {
  return direct > 0 ? `${fixed(shim / direct)}×` : 'n/a';
}

function roundsSentence(runs: StartComparison[]): string {
  const rounds = runs[0]?.rounds?.length ?? 1;
  if (rounds < 2) return '';
  return (
    ` Each N ran in ${rounds} interleaved rounds (direct, CR floor, shim, then again); every figure is the ` +
    `median of its rounds, errors are summed over them and the RSS peak is their highest.`
  );
}

/** Each round's shim ÷ direct for all Pods Running, to show what one round alone would say. */
export function roundSpread(run: StartComparison): string | undefined {
  const rounds = run.rounds ?? [];
  if (rounds.length < 2) return undefined;
  return rounds.map((r) => ratio(r.shim.allRunningMs, r.direct.allRunningMs)).join(', ');
}

export function renderStartComparison(
  runs: StartComparison[],
  o: { startConcurrency: number; shape: string; qps: number; burst: number },
): string[] {
  const lines: string[] = [];
  lines.push(
    `### StartWorkload: the shim against the direct phase (the Go runner's path), request shape \`${o.shape}\``,
  );
  lines.push('');
  lines.push(
    `Per N, first the direct phase (bench/lib/direct-runner.ts: a grpc-js server in a process of its own doing what the ` +
      `Go runner does per StartWorkload — a pull Secret when the request has credentials, a PVC GET/POST per named ` +
      `volume, one Pod POST — and answering STARTING, building the Pod as the standalone operator does), then the ` +
      `operator in its own process (src/main.ts, standalone); both with an API client of ${o.qps} qps / burst ${o.burst}, ` +
      `the same ${o.startConcurrency} grpc-js callers in the forked load generator, and the same observer informer on ` +
      `the namespace's Pods (and AgentWorkloads) in the benchmark's process. CPU is the target process's own from the ` +
      `first call until everything was Running; RSS peak is its VmHWM over the phase; API requests are the target's, ` +
      `counted until 2 s after.${roundsSentence(runs)}`,
  );
  lines.push('');
  lines.push('| N | Figure | Direct | Shim | Shim ÷ direct | Target |');
  lines.push('|---|---|---:|---:|---:|---|');
  for (const run of runs) {
    const { n, direct: d, shim: s } = run;
    const row = (figure: string, dv: string, sv: string, r: string, target = ''): void => {
      lines.push(`| ${n} | ${figure} | ${dv} | ${sv} | ${r} | ${target} |`);
    };
    const v = startVerdicts(run);
    row(
      'First call → all Pods Running',
      `${seconds(d.allRunningMs)} s`,
      `${seconds(s.allRunningMs)} s`,
      ratio(s.allRunningMs, d.allRunningMs),
      n >= 500 ? `≤ ${START_TARGETS.allRunningRatio}× — ${v.allRunning}` : '',
    );
    if (s.statusRunningMs !== undefined)
      row(
        'First call → all AgentWorkloads Running (status)',
        '',
        `${seconds(s.statusRunningMs)} s`,
        ratio(s.statusRunningMs, d.allRunningMs),
      );
    const spread = roundSpread(run);
    if (spread) row('Rounds: first call → all Pods Running, shim ÷ direct', '', '', spread);
    row(
      'StartWorkload p50 / p99',
      `${fixed(d.rpc.p50, 1)} / ${fixed(d.rpc.p99, 1)} ms`,
      `${fixed(s.rpc.p50, 1)} / ${fixed(s.rpc.p99, 1)} ms`,
      ratio(s.rpc.p50, d.rpc.p50),
      `≤ ${START_TARGETS.rpcP50Ratio}× — ${v.rpcP50}`,
    );
    row(
      'API requests per workload (all / writes)',
      `${fixed(d.requestsPerWorkload)} / ${fixed(d.writesPerWorkload)}`,
      `${fixed(s.requestsPerWorkload)} / ${fixed(s.writesPerWorkload)}`,
      ratio(s.writesPerWorkload, d.writesPerWorkload),
      `≤ ${START_TARGETS.writesPerWorkload} writes — ${v.writes}`,
    );
    row(
      'Process CPU (s) / per workload (ms)',
      `${seconds(d.cpuMs)} / ${fixed(d.cpuMs / n, 2)}`,
      `${seconds(s.cpuMs)} / ${fixed(s.cpuMs / n, 2)}`,
      ratio(s.cpuMs, d.cpuMs),
      `≤ ${START_TARGETS.cpuRatio}× — ${v.cpu}`,
    );
    row(
      'RSS of the process: peak during the phase / at its end',
      `${mib(d.rssPeak)} / ${mib(d.rssEnd)} MiB`,
      `${mib(s.rssPeak)} / ${mib(s.rssEnd)} MiB`,
      '',
    );
    row(
      'Errors',
      `${d.rpc.errors} (${d.podsRunning} Running)`,
      `${s.rpc.errors} (${s.podsRunning} Running)`,
      '',
      '0',
    );
  }
  const last = runs[runs.length - 1];
  if (last) {
    const list = (p: StartPhase): string =>
      p.byResource.map(([k, v]) => `${k} ${fixed(v / p.n, 2)}`).join(', ');
    lines.push('');
    lines.push(
      `API requests per workload at N = ${last.n}: shim ${list(last.shim)}; direct ${list(last.direct)}.`,
    );
  }
  return lines;
}
