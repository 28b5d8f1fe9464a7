import { describe, expect, it } from '@jest/globals';
import type { AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import {
  FIRST_STATUS_BACKLOG_MAX_MS,
  FIRST_STATUS_COALESCE_MS,
  STATUS_PROGRESS_COALESCE_MS,
  backlogWaitMs,
  coalesceWindowMs,
} from '../../src/workload/status-coalescing.ts';

const starting: AgentWorkloadStatus = {
  phase: 'Starting',
  observedGeneration: 1,
  podName: 'p',
  runner: 'r',
};

describe('coalesceWindowMs', () => {
  it('lets the first Pending or Starting of a workload wait for Running', () => {
    expect(coalesceWindowMs({}, starting)).toBe(FIRST_STATUS_COALESCE_MS);
    expect(coalesceWindowMs({}, { phase: 'Pending', observedGeneration: 1 })).toBe(
      FIRST_STATUS_COALESCE_MS,
    );
    expect(coalesceWindowMs({ phase: 'Pending', observedGeneration: 1 }, starting)).toBe(
      FIRST_STATUS_COALESCE_MS,
    );
  });

  it('lets progress within a transitional phase wait less', () => {
    expect(coalesceWindowMs(starting, { ...starting, message: 'm' })).toBe(
      STATUS_PROGRESS_COALESCE_MS,
    );
    const stopping = { ...starting, phase: 'Stopping' as const };
    expect(coalesceWindowMs(stopping, { ...stopping, message: 'm' })).toBe(
      STATUS_PROGRESS_COALESCE_MS,
    );
  });

  it('writes phase changes other than the first Pending or Starting at once', () => {
    expect(coalesceWindowMs(starting, { ...starting, phase: 'Running' })).toBe(0);
    expect(coalesceWindowMs({}, { ...starting, phase: 'Running' })).toBe(0);
    expect(coalesceWindowMs({ ...starting, phase: 'Running' }, starting)).toBe(0);
    expect(coalesceWindowMs({ phase: 'Failed' }, starting)).toBe(0);
  });

  it('writes a new generation, reason, Pod or runner at once', () => {
    expect(coalesceWindowMs(starting, { ...starting, observedGeneration: 2 })).toBe(0);
    expect(coalesceWindowMs(starting, { ...starting, reason: 'crashloop' })).toBe(0);
    expect(coalesceWindowMs(starting, { ...starting, podName: 'q' })).toBe(0);
    expect(coalesceWindowMs(starting, { ...starting, runner: 's' })).toBe(0);
  });

  it('uses the override for both windows', () => {
    expect(coalesceWindowMs({}, starting, 7)).toBe(7);
    expect(coalesceWindowMs(starting, { ...starting, message: 'm' }, 7)).toBe(7);
    expect(coalesceWindowMs(starting, { ...starting, phase: 'Running' }, 7)).toBe(0);
  });
});

describe('backlogWaitMs', () => {
  const window = FIRST_STATUS_COALESCE_MS;

  it('lets a first Pending or Starting wait on, a window at a time, while the controller has a backlog', () => {
    expect(backlogWaitMs({}, starting, window, window, true)).toBe(window);
    expect(
      backlogWaitMs({}, { phase: 'Pending', observedGeneration: 1 }, window, window, true),
    ).toBe(window);
    expect(backlogWaitMs({ phase: 'Pending' }, starting, 2 * window, window, true)).toBe(window);
  });

  it('writes it once the backlog is gone', () => {
    expect(backlogWaitMs({}, starting, window, window, false)).toBe(0);
  });

  it('never lets it wait longer than FIRST_STATUS_BACKLOG_MAX_MS in all', () => {
    expect(backlogWaitMs({}, starting, FIRST_STATUS_BACKLOG_MAX_MS - 1_000, window, true)).toBe(
      1_000,
    );
    expect(backlogWaitMs({}, starting, FIRST_STATUS_BACKLOG_MAX_MS, window, true)).toBe(0);
  });

  it('holds back no other change, and nothing when coalescing is off', () => {
    expect(backlogWaitMs(starting, { ...starting, phase: 'Running' }, window, window, true)).toBe(
      0,
    );
    expect(backlogWaitMs({}, { ...starting, phase: 'Running' }, window, window, true)).toBe(0);
    expect(backlogWaitMs(starting, { ...starting, message: 'm' }, window, window, true)).toBe(0);
    expect(backlogWaitMs({ phase: 'Failed' }, starting, window, window, true)).toBe(0);
    expect(backlogWaitMs({}, starting, 0, 0, true)).toBe(0);
  });
});
