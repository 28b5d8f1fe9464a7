/** bench:grpc's interleaved StartWorkload rounds and their medians (bench/lib/start-rounds.ts). */
import { describe, expect, it } from '@jest/globals';
import type { StartPhase } from '../../bench/lib/start-phase.ts';
import { roundSpread, startVerdicts } from '../../bench/lib/start-report.ts';
import { comparisonOf, medianPhase } from '../../bench/lib/start-rounds.ts';

function phase(allRunningMs: number, extra: Partial<StartPhase> = {}, p50 = 100): StartPhase {
  return {
    target: 'shim',
    n: 500,
    allRunningMs,
    podsRunning: 500,
    rpc: {
      type: 'started',
      ids: [`ids-of-${allRunningMs}`],
      sendMs: allRunningMs / 2,
      p50,
      p99: p50 * 3,
      errors: 0,
      firstErrors: [],
    },
    requestsPerWorkload: 3,
    writesPerWorkload: 3,
    byResource: [['pods', allRunningMs]],
    cpuMs: allRunningMs / 10,
    rssPeak: allRunningMs * 1000,
    rssEnd: allRunningMs * 100,
    ...extra,
  };
}

describe('medianPhase', () => {
  it('takes the median of times, latencies and CPU, and keeps the last round for the rest', () => {
    const m = medianPhase([phase(9000, {}, 300), phase(5000, {}, 100), phase(7000, {}, 200)]);
    expect([m.allRunningMs, m.rpc.p50, m.rpc.p99, m.cpuMs, m.rpc.sendMs]).toEqual([
      7000, 200, 600, 700, 3500,
    ]);
    expect(m.rpc.ids).toEqual(['ids-of-7000']);
    expect(m.byResource).toEqual([['pods', 7000]]);
    expect(m.rssEnd).toBe(700_000);
  });

  it('sums errors, keeps the fewest Pods Running and the highest RSS peak', () => {
    const bad = phase(6000, {
      podsRunning: 497,
      rpc: { ...phase(6000).rpc, errors: 3, firstErrors: ['UNAVAILABLE'] },
    });
    const m = medianPhase([phase(9000), bad, phase(7000, { podsRunning: 499 })]);
    expect([m.rpc.errors, m.podsRunning, m.rssPeak]).toEqual([3, 497, 9_000_000]);
    expect(m.rpc.firstErrors).toEqual(['UNAVAILABLE']);
  });

  it('has a status time only when every round has one', () => {
    expect(medianPhase([phase(1, { statusRunningMs: 5 }), phase(2)]).statusRunningMs).toBe(
      undefined,
    );
    expect(
      medianPhase([phase(1, { statusRunningMs: 5 }), phase(2, { statusRunningMs: 9 })])
        .statusRunningMs,
    ).toBe(7);
  });
});

describe('comparisonOf', () => {
  const rounds = [
    { direct: phase(5000), crFloor: phase(8000), shim: phase(10_000) },
    { direct: phase(4000), crFloor: phase(6000), shim: phase(6000) },
    { direct: phase(6000), crFloor: phase(7000), shim: phase(8000) },
  ];

  it('judges on the ratio of the medians, and shows each round’s own ratio', () => {
    const c = comparisonOf(500, rounds);
    expect([c.direct.allRunningMs, c.crFloor?.allRunningMs, c.shim.allRunningMs]).toEqual([
      5000, 7000, 8000,
    ]);
    expect(c.rounds).toBe(rounds);
    expect(roundSpread(c)).toBe('2.00×, 1.50×, 1.33×');
    expect(startVerdicts(c).allRunning).toBe('**misses**');
  });

  it('has no CR floor unless every round has one, and no spread for one round', () => {
    expect(comparisonOf(500, [{ direct: phase(1), shim: phase(2) }]).crFloor).toBeUndefined();
    expect(roundSpread(comparisonOf(500, rounds.slice(0, 1)))).toBeUndefined();
  });
});
