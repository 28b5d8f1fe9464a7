import { describe, expect, it } from '@jest/globals';
import type { AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import { mayCoalesce } from '../../src/workload/status-coalescing.ts';

const starting: AgentWorkloadStatus = {
  phase: 'Starting',
  observedGeneration: 1,
  podName: 'p',
  runner: 'r',
};

describe('mayCoalesce', () => {
  it('lets the first Pending or Starting of a workload wait for Running', () => {
    expect(mayCoalesce({}, starting)).toBe(true);
    expect(mayCoalesce({}, { phase: 'Pending', observedGeneration: 1 })).toBe(true);
    expect(mayCoalesce({ phase: 'Pending', observedGeneration: 1 }, starting)).toBe(true);
  });

  it('lets progress within a transitional phase wait', () => {
    expect(mayCoalesce(starting, { ...starting, message: 'm' })).toBe(true);
    expect(
      mayCoalesce({ ...starting, phase: 'Stopping' }, { ...starting, phase: 'Stopping' }),
    ).toBe(true);
  });

  it('writes phase changes other than the first Starting at once', () => {
    expect(mayCoalesce(starting, { ...starting, phase: 'Running' })).toBe(false);
    expect(mayCoalesce({}, { ...starting, phase: 'Running' })).toBe(false);
    expect(mayCoalesce({ ...starting, phase: 'Running' }, starting)).toBe(false);
    expect(mayCoalesce({ phase: 'Failed' }, starting)).toBe(false);
  });

  it('writes a new generation, reason, Pod or runner at once', () => {
    expect(mayCoalesce(starting, { ...starting, observedGeneration: 2 })).toBe(false);
    expect(mayCoalesce(starting, { ...starting, reason: 'crashloop' })).toBe(false);
    expect(mayCoalesce(starting, { ...starting, podName: 'q' })).toBe(false);
    expect(mayCoalesce(starting, { ...starting, runner: 's' })).toBe(false);
  });
});
