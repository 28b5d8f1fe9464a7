/** Pure helpers of the benchmarks (bench/lib): parsing the image's settings, main.ts's log, tallies. */
import { describe, expect, it } from '@jest/globals';
import { runtimeEnv } from '../../bench/lib/deployed-env.ts';
import { emptyMax, foldMax } from '../../bench/lib/memory-poller.ts';
import { startedLine } from '../../bench/lib/operator-child.ts';
import { resourceOf, tallyRequests } from '../../bench/lib/request-tally.ts';
import type { ChildMemory } from '../../bench/lib/child-ipc.ts';
import { parseDockerfile } from '../support/dockerfile.ts';
import type { GrpcBenchResult } from '../../bench/lib/grpc-options.ts';
import { rssVerdict, rssVerdictText } from '../../bench/lib/grpc-report.ts';
import { floorRatios, floorVerdict, type WorkloadBenchResult } from '../../bench/workloads.ts';

describe('runtimeEnv (the Dockerfile parser of test/support/dockerfile.ts)', () => {
  it('reads the last stage only, later lines winning, runtime variables only', () => {
    const text = [
      'FROM node:24 AS build',
      'ENV NODE_OPTIONS=--build-only',
      'FROM distroless',
      'ENV NODE_ENV=production',
      'ENV NODE_OPTIONS=--max-semi-space-size=8',
      'ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=512"',
      'ENV OTHER=1 MALLOC_ARENA_MAX=2',
    ].join('\n');
    expect(runtimeEnv(text)).toEqual({
      NODE_ENV: 'production',
      NODE_OPTIONS: '--max-semi-space-size=4 --max-old-space-size=512',
      MALLOC_ARENA_MAX: '2',
    });
  });

  it('parses several pairs, quotes, the legacy form and continuations', () => {
    const text = [
      'FROM x',
      'ENV A=1 B="two words" C=\'single quoted\' Q="a \\"quote\\""',
      'ENV LEGACY value with spaces',
      'ENV D="--a --b" \\',
      '    E=5',
      '# ENV F=commented',
    ].join('\n');
    expect(parseDockerfile(text).env).toEqual({
      A: '1',
      B: 'two words',
      C: 'single quoted',
      Q: 'a "quote"',
      LEGACY: 'value with spaces',
      D: '--a --b',
      E: '5',
    });
  });
});

describe('startedLine', () => {
  it('finds main.ts\'s "k8s-runner started" line and its ports', () => {
    const log = [
      '{"level":30,"msg":"cache synced"}',
      'not json',
      '{"level":30,"grpcPort":41234,"httpPort":41235,"msg":"k8s-runner started"}',
    ].join('\n');
    expect(startedLine(log)).toEqual({ grpcPort: 41234, httpPort: 41235 });
  });

  it('waits for a whole line with both ports', () => {
    expect(startedLine('{"level":30,"grpcPort":41234,"msg":"k8s-runner started"}')).toBeUndefined();
    expect(
      startedLine('{"level":30,"grpcPort":41234,"httpPort":5,"msg":"k8s-runner sta'),
    ).toBeUndefined();
    expect(
      startedLine('{"msg":"about \\"k8s-runner started\\"","grpcPort":1,"httpPort":2}'),
    ).toBeUndefined();
  });
});

describe('foldMax', () => {
  it('keeps the highest of each figure and counts the samples', () => {
    const sample = (rss: number, heapTotal: number, external: number): ChildMemory => ({
      type: 'memory',
      rss,
      peakRss: rss,
      lifetimePeakRss: rss,
      heapUsed: heapTotal / 2,
      heapTotal,
      external,
      arrayBuffers: external / 2,
      cpuMs: 0,
    });
    const max = [sample(100, 50, 9), sample(120, 40, 3)].reduce(foldMax, emptyMax());
    expect(max).toEqual({
      samples: 2,
      rss: 120,
      heapTotal: 50,
      heapUsed: 25,
      external: 9,
      arrayBuffers: 4.5,
    });
  });
});

describe('request tally', () => {
  it('names the resource and subresource of core, group, namespaced and cluster paths', () => {
    expect(resourceOf('/api/v1/namespaces/ns/pods/p-1/status')).toBe('pods/status');
    expect(resourceOf('/api/v1/namespaces/ns/pods?watch=1')).toBe('pods');
    expect(resourceOf('/apis/agyn.io/v1alpha1/namespaces/ns/agentworkloads/w')).toBe(
      'agentworkloads',
    );
    expect(resourceOf('/api/v1/namespaces/ns')).toBe('namespaces');
    expect(resourceOf('/apis/coordination.k8s.io/v1/leases')).toBe('leases');
  });

  it('counts by verb and resource and still makes the request', async () => {
    const calls: string[] = [];
    const target = {
      request<T>(method: string, path: string): Promise<T> {
        calls.push(`${method} ${path}`);
        return Promise.resolve(method as T);
      },
    };
    const counts = tallyRequests(target as never);
    await expect(target.request('POST', '/api/v1/namespaces/ns/pods')).resolves.toBe('POST');
    await target.request('POST', '/api/v1/namespaces/ns/pods');
    await target.request('PATCH', '/apis/agyn.io/v1alpha1/namespaces/ns/agentworkloads/w/status');
    expect([...counts]).toEqual([
      ['POST pods', 2],
      ['PATCH agentworkloads/status', 1],
    ]);
    expect(calls).toHaveLength(3);
  });
});

describe('rssVerdict', () => {
  const MiB = 1024 * 1024;
  const result = (n: number, peakMiB: number, floorMiB = 100): GrpcBenchResult =>
    ({
      start: [{ n }],
      memory: { lifetimePeak: peakMiB * MiB, bareModules: { loadPeak: floorMiB * MiB } },
    }) as unknown as GrpcBenchResult;

  it('judges the whole run’s peak against 120 MiB, only from N = 500 on', () => {
    expect(rssVerdict(result(500, 120))).toEqual({ ok: true, judged: true, floorAbove: false });
    expect(rssVerdict(result(500, 120.5))).toEqual({ ok: false, judged: true, floorAbove: false });
    expect(rssVerdict(result(200, 100))).toEqual({ ok: true, judged: false, floorAbove: false });
  });

  it('calls the target impossible when the floor with the operator’s modules is above it', () => {
    expect(rssVerdict(result(500, 160, 130)).floorAbove).toBe(true);
    expect(rssVerdictText(result(500, 160, 130.04))).toBe(
      "**impossible with the card's modules**: bare grpc-js + the operator's modules, " +
        'with the same objects and load, peaks at 130.0 MiB',
    );
  });

  it('otherwise says misses and what the operator adds over that floor', () => {
    expect(rssVerdictText(result(500, 160, 110))).toBe(
      "**misses**: operator − floor with the operator's modules = 50.0 MiB (the operator's own code)",
    );
    expect(rssVerdictText(result(500, 119, 110))).toBe('meets');
    expect(rssVerdictText(result(200, 160, 130))).toBe('not judged (N = 200)');
  });
});

describe('floorRatios (the kubectl path against its no-controller floor)', () => {
  const result = (n: number, op: [number, number], floor: [number, number]): WorkloadBenchResult =>
    ({
      options: { n },
      operator: { allExistMs: op[0], allRunningMs: op[1] },
      floor: { allExistMs: floor[0], allRunningMs: floor[1] },
      extraFloorRounds: [],
    }) as unknown as WorkloadBenchResult;

  it('divides the operator by the floor and judges each against 1.2×', () => {
    const r = result(1000, [12_000, 130_000], [10_000, 100_000]);
    const f = floorRatios(r);
    expect(f.exist).toBeCloseTo(1.2);
    expect(f.running).toBeCloseTo(1.3);
    expect([f.existOk, f.runningOk, f.judged]).toEqual([true, false, true]);
    expect(floorVerdict(f.runningOk, r)).toBe('**misses**');
  });

  it('takes the median of the rounds, the first being the operator and floor of the rows', () => {
    const round = (op: number, floor: number) => ({
      operator: { allExistMs: op, allRunningMs: op },
      floor: { allExistMs: floor, allRunningMs: floor },
    });
    const r = {
      ...result(1000, [13_000, 13_000], [10_000, 10_000]),
      extraFloorRounds: [round(11_000, 10_000), round(12_500, 10_000)],
    } as unknown as WorkloadBenchResult;
    const f = floorRatios(r);
    expect(f.exist).toBeCloseTo(1.25);
    expect(f.existOk).toBe(false);
    expect(f.existText).toBe('1.25×, the median of 3 interleaved rounds: 1.30, 1.10, 1.25×');
  });

  it('says at which N a smaller run was measured', () => {
    const r = result(300, [10_000, 100_000], [10_000, 100_000]);
    expect(floorRatios(r).judged).toBe(false);
    expect(floorVerdict(true, r)).toBe('meets (measured at N=300)');
  });
});
