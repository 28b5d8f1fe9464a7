/**
 * How bench/REPORT.md judges a target: on the figure of one run and, for a miss, beside the
 * floor measured in the same run. A miss whose floor (the least any implementation of the
 * design does here) misses the target too is impossible on this machine, not a defect.
 */

/** A floor measured in the same run, as far as one target is concerned. */
export interface FloorEvidence {
  /** The floor's own figure misses the target. */
  above: boolean;
  /** What the floor is and its figure, e.g. "the CR design's floor is 1.63× direct in the same run". */
  text: string;
}

export function verdict(ok: boolean): string {
  return ok ? 'meets' : '**misses**';
}

/** "meets"; "**impossible here**: <why>" when the floor misses too; else "**misses**". */
export function verdictBeside(ok: boolean, floor?: FloorEvidence): string {
  if (ok) return 'meets';
  return floor?.above ? `**impossible here**: ${floor.text}` : '**misses**';
}

/** A ratio floor ÷ baseline against a ratio target, worded for verdictBeside. */
export function ratioFloor(floorRatio: number, target: number, what: string): FloorEvidence {
  return {
    above: floorRatio > target,
    text: `${what} is ${floorRatio.toFixed(2)}× in the same run`,
  };
}
