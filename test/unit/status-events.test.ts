import { describe, expect, it } from '@jest/globals';
import type { AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import { recordsEvent } from '../../src/workload/status-writer.ts';

const s = (
  phase?: AgentWorkloadStatus['phase'],
  reason?: AgentWorkloadStatus['reason'],
): AgentWorkloadStatus => ({
  phase,
  reason,
});

describe('recordsEvent', () => {
  it('records what a person may act on or look back at', () => {
    expect(recordsEvent(s(), s('Pending', 'config_invalid'))).toBe(true);
    expect(recordsEvent(s('Running'), s('Failed', 'crashloop'))).toBe(true);
    expect(recordsEvent(s('Failed', 'crashloop'), s('Failed', 'image_pull_failed'))).toBe(true);
    expect(recordsEvent(s('Running'), s('Stopped'))).toBe(true);
  });

  it('records no pass-through phase and no start that ends Running', () => {
    expect(recordsEvent(s(), s('Starting'))).toBe(false);
    expect(recordsEvent(s(), s('Running'))).toBe(false);
    expect(recordsEvent(s('Starting'), s('Running'))).toBe(false);
    expect(recordsEvent(s('Pending', 'config_invalid'), s('Running'))).toBe(false);
    expect(recordsEvent(s('Running'), s('Stopping'))).toBe(false);
  });

  it('records nothing for an unchanged phase and reason', () => {
    expect(recordsEvent(s('Failed', 'crashloop'), s('Failed', 'crashloop'))).toBe(false);
    expect(recordsEvent(s('Pending', 'config_invalid'), s('Pending', 'config_invalid'))).toBe(
      false,
    );
  });
});
