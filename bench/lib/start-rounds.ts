/**
 * bench:grpc's StartWorkload phases run in interleaved rounds (direct, CR floor, shim, then
 * again), as the issue measured the Go runner: one round's few seconds move with the shared
 * machine, so each figure is the median over the rounds and the ratios are of medians.
 */
import type { StartPhase } from './start-phase.ts';
import type { StartComparison, StartRound } from './start-report.ts';
import { median } from './stats.ts';

/**
 * One phase from its rounds: times, latencies, requests and CPU are medians; errors are
 * summed, Pods Running is the fewest and the RSS peak the highest of any round; the ids and
 * request breakdown are the last round's (its workloads are the ones left running).
 */
export function medianPhase(phases: StartPhase[]): StartPhase {
  const last = phases.at(-1);
  if (!last) throw new Error('medianPhase: no rounds');
  const med = (pick: (p: StartPhase) => number): number => median(phases.map(pick));
  const status = phases.map((p) => p.statusRunningMs);
  return {
    ...last,
    allRunningMs: med((p) => p.allRunningMs),
    podsRunning: Math.min(...phases.map((p) => p.podsRunning)),
    ...(status.every((s) => s !== undefined) ? { statusRunningMs: median(status) } : {}),
    rpc: {
      ...last.rpc,
      sendMs: med((p) => p.rpc.sendMs),
      p50: med((p) => p.rpc.p50),
      p99: med((p) => p.rpc.p99),
      errors: phases.reduce((sum, p) => sum + p.rpc.errors, 0),
      firstErrors: phases.flatMap((p) => p.rpc.firstErrors).slice(0, 5),
    },
    requestsPerWorkload: med((p) => p.requestsPerWorkload),
    writesPerWorkload: med((p) => p.writesPerWorkload),
    cpuMs: med((p) => p.cpuMs),
    rssPeak: Math.max(...phases.map((p) => p.rssPeak)),
  };
}

/** The comparison of one N from its rounds, which it keeps to show their spread. */
export function comparisonOf(n: number, rounds: StartRound[]): StartComparison {
  const floors = rounds.map((r) => r.crFloor);
  const crFloor = floors.every((f) => f !== undefined) ? medianPhase(floors) : undefined;
  return {
    n,
    direct: medianPhase(rounds.map((r) => r.direct)),
    ...(crFloor ? { crFloor } : {}),
    shim: medianPhase(rounds.map((r) => r.shim)),
    rounds,
  };
}
