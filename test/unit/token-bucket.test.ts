import { describe, expect, it } from '@jest/globals';
import { TokenBucket } from '../../src/kube/token-bucket.ts';

describe('TokenBucket (the one bucket of the client and the work queue)', () => {
  it('hands out the burst at once, then spaces reservations at the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 2, { now: () => now });
    expect([bucket.reserve(), bucket.reserve()]).toEqual([0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
    expect(bucket.reserve()).toBeCloseTo(200);
    now = 1_000; // 10 tokens earned, 2 already borrowed: the burst caps what is saved
    expect([bucket.reserve(), bucket.reserve()]).toEqual([0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
  });

  it('take() resolves at once while tokens last', async () => {
    const bucket = new TokenBucket(1, 3, { now: () => 0 });
    await Promise.all([bucket.take(), bucket.take(), bucket.take()]);
    expect(bucket.reserve()).toBeCloseTo(1_000);
  });
});
