/** How bench/REPORT.md judges a target beside the floor measured in the same run (bench/lib/verdict.ts). */
import { describe, expect, it } from '@jest/globals';
import type { GrpcBenchResult } from '../../bench/lib/grpc-options.ts';
import { inspectP99Verdict } from '../../bench/lib/grpc-report.ts';
import type { StartPhase } from '../../bench/lib/start-phase.ts';
import { startVerdicts } from '../../bench/lib/start-report.ts';
import { verdictBeside } from '../../bench/lib/verdict.ts';
import { rawVerdicts, type WorkloadBenchResult } from '../../bench/workloads.ts';

describe('verdictBeside', () => {
  it('meets whatever the floor; a miss is impossible only when the floor misses too', () => {
    expect(verdictBeside(true, { above: true, text: 'x' })).toBe('meets');
    expect(verdictBeside(false, { above: false, text: 'x' })).toBe('**misses**');
    expect(verdictBeside(false)).toBe('**misses**');
    expect(verdictBeside(false, { above: true, text: 'the floor is 2.00×' })).toBe(
      '**impossible here**: the floor is 2.00×',
    );
  });
});

describe('startVerdicts (the gRPC start path against the direct phase)', () => {
  const phase = (allRunningMs: number, p50: number, writes = 3, cpuMs = 1000): StartPhase =>
    ({
      allRunningMs,
      rpc: { p50 },
      writesPerWorkload: writes,
      cpuMs,
    }) as unknown as StartPhase;
  const direct = phase(1000, 100, 1, 1000);

  it('names the CR floor when it misses the time targets too', () => {
    const v = startVerdicts({ n: 500, direct, crFloor: phase(1630, 166), shim: phase(2000, 151) });
    expect(v.allRunning).toBe(
      "**impossible here**: the CR design's floor ÷ direct is 1.63× in the same run",
    );
    expect(v.rpcP50).toBe(
      "**impossible here**: the CR design's floor ÷ direct is 1.66× in the same run",
    );
  });

  it('says misses when the floor is within the target, and judges writes and CPU on the shim', () => {
    const v = startVerdicts({
      n: 500,
      direct,
      crFloor: phase(1400, 140),
      shim: phase(1600, 160, 4.004, 3001),
    });
    expect([v.allRunning, v.rpcP50, v.writes, v.cpu]).toEqual([
      '**misses**',
      '**misses**',
      'meets',
      '**misses**',
    ]);
    expect(startVerdicts({ n: 500, direct, shim: phase(1600, 150) }).rpcP50).toBe('meets');
    expect(startVerdicts({ n: 500, direct, shim: phase(1600, 151) }).allRunning).toBe('**misses**');
  });
});

describe('inspectP99Verdict', () => {
  const result = (inspectP99: number, bareP99: number, bareRps = 5000): GrpcBenchResult =>
    ({
      options: { rate: 5000 },
      load: {
        inspect: { open: { p99: inspectP99, rps: 5000 }, closed: { rps: 9000 } },
        bare: { open: { p99: bareP99, rps: bareRps } },
      },
    }) as unknown as GrpcBenchResult;

  it('is impossible when the bare grpc-js server misses 5 ms at the same load', () => {
    expect(inspectP99Verdict(result(24.1, 16.554))).toBe(
      "**impossible here**: the bare grpc-js server's p99 at the same load is 16.55 ms in the same run",
    );
    expect(inspectP99Verdict(result(24.1, 3, 4000))).toMatch(/^\*\*impossible here\*\*/);
    expect(inspectP99Verdict(result(24.1, 4.9))).toBe('**misses**');
    expect(inspectP99Verdict(result(4.9, 16))).toBe('meets');
  });
});

describe('rawVerdicts (the kubectl path against raw Pods)', () => {
  const result = (op: number, floor: number): WorkloadBenchResult =>
    ({
      baseline: { allExistMs: 10_000, allRunningMs: 10_000 },
      floor: { allExistMs: floor, allRunningMs: 12_000 },
      operator: { allExistMs: op, allRunningMs: 14_000 },
    }) as unknown as WorkloadBenchResult;

  it('is impossible when the no-controller floor is above 1.3× raw Pods', () => {
    expect(rawVerdicts(result(20_000, 15_000)).exist).toBe(
      '**impossible here**: the no-controller floor ÷ raw Pods is 1.50× in the same run',
    );
    expect(rawVerdicts(result(20_000, 12_000))).toEqual({
      exist: '**misses**',
      running: '**misses**',
    });
    expect(rawVerdicts(result(13_000, 12_000)).exist).toBe('meets');
  });
});
