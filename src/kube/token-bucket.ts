/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. A reservation
 * always succeeds and may borrow from the future; it says how long to wait for the token.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: { now(): number } = Date,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Takes a token; returns how many ms from now it is due (0: at once). */
  reserve(): number {
    const now = this.clock.now();
    this.tokens = Math.min(
      this.burst,
      this.tokens + ((now - this.last) / 1000) * this.ratePerSecond,
    );
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.ratePerSecond) * 1000;
  }

  /** Resolves when a token is available; callers are served in order. */
  take(): Promise<void> {
    const waitMs = this.reserve();
    if (waitMs === 0) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, Math.ceil(waitMs)).unref());
  }
}
