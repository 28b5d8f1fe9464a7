import { expect, test } from '@jest/globals';
import { pino } from 'pino';
import { WriteFence, WriteFencedError, exitOnLostLease } from '../../src/kube/fence.ts';

const logger = pino({ level: 'silent' });

test('writes in flight are aborted when the fence closes and later writes are refused; reads go on', () => {
  const fence = new WriteFence();
  const caller = new AbortController();
  expect(fence.guard('GET', caller.signal).signal).toBe(caller.signal);
  const write = fence.guard('PATCH', caller.signal).signal;
  const bare = fence.guard('post').signal;
  expect(write?.aborted).toBe(false);
  fence.close('leader election lost');
  expect(write?.aborted).toBe(true);
  expect(bare?.aborted).toBe(true);
  expect(write?.reason).toBeInstanceOf(WriteFencedError);
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
    expect(() => fence.guard(method)).toThrow('write refused: leader election lost');
  expect(fence.guard('GET').signal).toBeUndefined();
  expect(fence.guard('HEAD', caller.signal).signal).toBe(caller.signal);
});

test('the caller can still abort a write itself, before or after guarding it', () => {
  const caller = new AbortController();
  const { signal } = new WriteFence().guard('DELETE', caller.signal);
  caller.abort();
  expect(signal?.aborted).toBe(true);
  expect(new WriteFence().guard('POST', caller.signal).signal?.aborted).toBe(true);
});

test('each write has a signal of its own, released when its request ends', () => {
  const fence = new WriteFence();
  const caller = new AbortController();
  const writes = Array.from({ length: 50 }, () => fence.guard('POST', caller.signal));
  expect(new Set(writes.map((w) => w.signal)).size).toBe(50);
  expect(fence.writesInFlight).toBe(50);
  for (const w of writes.slice(0, 49)) w.release();
  expect(fence.writesInFlight).toBe(1);
  // A released write no longer follows the caller's signal or the fence.
  caller.abort();
  expect(writes[0]?.signal?.aborted).toBe(false);
  expect(writes[49]?.signal?.aborted).toBe(true);
  fence.close('lost');
  expect(writes[1]?.signal?.aborted).toBe(false);
});

test('a lost lease closes the fence before stopping the work, then exits 1', async () => {
  const fence = new WriteFence();
  const seen: string[] = [];
  await exitOnLostLease({
    fence,
    logger,
    stopWork: async () => void seen.push(`stop (fence closed: ${fence.closed})`),
    exit: (code) => void seen.push(`exit ${code}`),
  });
  expect(seen).toEqual(['stop (fence closed: true)', 'exit 1']);
});

test('work that does not stop in time does not hold the exit back', async () => {
  const seen: number[] = [];
  await exitOnLostLease({
    fence: new WriteFence(),
    logger,
    stopWork: () => new Promise(() => {}),
    graceMs: 20,
    exit: (code) => void seen.push(code),
  });
  expect(seen).toEqual([1]);
});
