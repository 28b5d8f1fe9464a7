import { describe, expect, it } from '@jest/globals';
import type { AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import {
  FIRST_STATUS_COALESCE_MS,
  STATUS_PROGRESS_COALESCE_MS,
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
