/**
 * The kubectl path's targets are ratios of two phases that each move with this shared machine's
 * load (one pair of phases of the same code gave 0.99× to 1.33×), so bench:workloads measures the
 * floor and the operator in interleaved rounds and judges the medians of the rounds' ratios,
 * as bench:grpc does for the start path.
 */
import type { KubeClient } from '../../src/kube/client.ts';
import { fixed, median } from './stats.ts';
import { operatorPhase } from './workload-operator-phase.ts';
import {
  FLOOR_TARGETS,
  type FloorRound,
  type WorkloadBenchOptions,
  type WorkloadBenchResult,
} from './workload-options.ts';
import { clearPhase, floorPhase, log } from './workload-phases.ts';

/** The rounds after the first (whose floor and operator phases are the report's own). */
export async function extraFloorRounds(
  kube: KubeClient,
  kubeconfig: string,
  opts: WorkloadBenchOptions,
): Promise<FloorRound[]> {
  const rounds: FloorRound[] = [];
  for (let round = 2; round <= opts.floorRounds; round++) {
    log(`round ${round} of ${opts.floorRounds}: the floor, then the operator`);
    const floor = await floorPhase(kube, opts);
    await clearPhase(kube, floor.ns, 180_000);
    const operator = await operatorPhase(kube, kubeconfig, { ...opts, idleMs: 0 });
    await clearPhase(kube, operator.ns, 180_000);
    rounds.push({ floor: floor.timing, operator: operator.result.operator });
  }
  return rounds;
}

export interface RoundRatios {
  /** Operator ÷ floor of each round, in order. */
  exist: number[];
  running: number[];
}

export function roundRatios(rounds: FloorRound[]): RoundRatios {
  const exist = rounds.map((r) => r.operator.allExistMs / r.floor.allExistMs);
  const running = rounds.map((r) => r.operator.allRunningMs / r.floor.allRunningMs);
  return { exist, running };
}

/** "1.19×, the median of 3 interleaved rounds: 1.19, 1.27, 1.15×" (one round: its ratio). */
export function roundsText(ratios: number[]): string {
  if (ratios.length < 2) return `${fixed(ratios[0] ?? Number.NaN)}×`;
  const each = ratios.map((v) => fixed(v)).join(', ');
  return `${fixed(median(ratios))}×, the median of ${ratios.length} interleaved rounds: ${each}×`;
}

/**
 * Operator ÷ floor for "all Pods exist" and "all Running": the medians of the interleaved
 * rounds' ratios, judged against FLOOR_TARGETS.
 */
export function floorRatios(r: WorkloadBenchResult): {
  exist: number;
  running: number;
  /** "1.19×, the median of 3 interleaved rounds: …" */
  existText: string;
  runningText: string;
  judged: boolean;
  existOk: boolean;
  runningOk: boolean;
} {
  const rounds = roundRatios([r, ...r.extraFloorRounds]);
  const exist = median(rounds.exist);
  const running = median(rounds.running);
  return {
    exist,
    running,
    existText: roundsText(rounds.exist),
    runningText: roundsText(rounds.running),
    judged: r.options.n >= FLOOR_TARGETS.atN,
    existOk: exist <= FLOOR_TARGETS.ratio,
    runningOk: running <= FLOOR_TARGETS.ratio,
  };
}
