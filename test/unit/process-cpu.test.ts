/** bench/lib/process-cpu.ts: CPU seconds of a state dir's recorded processes, from /proc. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from '@jest/globals';
import { cpuSince, cpuSnapshot } from '../../bench/lib/process-cpu.ts';

const stateDir = mkdtempSync(path.join(os.tmpdir(), 'process-cpu-'));
mkdirSync(path.join(stateDir, 'pids'));
writeFileSync(path.join(stateDir, 'pids', 'this-process.pid'), `${process.pid}\n`);
writeFileSync(path.join(stateDir, 'pids', 'gone.pid'), '999999999\n');

afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

it("counts a recorded process's CPU over a window and leaves out one that is gone", () => {
  const start = cpuSnapshot(stateDir);
  const before = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(before).user < 300_000) x += Math.sqrt(x + 1);
  const use = cpuSince(start, cpuSnapshot(stateDir));
  expect(Object.keys(use.components)).toEqual(['this-process']);
  // /proc counts in 10 ms ticks.
  expect(use.components['this-process']).toBeGreaterThanOrEqual(0.25);
  expect(use.machineBusyShare).toBeGreaterThan(0);
  expect(use.machineBusyShare).toBeLessThanOrEqual(1);
  expect(use.cores).toBe(os.cpus().length);
  expect(x).toBeGreaterThan(0);
});

it('has no components without a state dir (a cluster this process did not start)', () => {
  expect(cpuSnapshot(undefined).components).toEqual({});
});
