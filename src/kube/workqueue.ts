import { kubeMetrics, type InFlightWork, type WorkqueueMetrics } from './metrics.ts';
import { DeadlineHeap, Fifo } from './queue-structures.ts';
import { TokenBucket } from './token-bucket.ts';

/** Time source and timers of a queue; tests inject a manual one. `now()` is in milliseconds. */
export interface QueueClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: QueueClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface RateLimiterOptions {
  /** Delay of a key's first retry; each further consecutive failure doubles it. Default 5 ms. */
  baseDelayMs?: number;
  /** Cap on a key's delay. Default 1000 s. */
  maxDelayMs?: number;
  /**
   * Overall token bucket shared by all keys (client-go's 10 qps, burst 100 unless `false`). Every
   * rate-limited add waits the longer of its key's backoff and its token, so when many keys
   * fail at once (API server outage) retries after the first `burst` come at `qps` per second.
   */
  bucket?: { qps: number; burst: number } | false;
}

export const DEFAULT_RETRY_BUCKET = { qps: 10, burst: 100 };

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1_000_000;

/** Per-key exponential backoff combined with an overall token bucket. */
export class RateLimiter<K extends string = string> {
  private readonly failures = new Map<K, number>();
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly bucket?: TokenBucket;

  constructor(options: RateLimiterOptions = {}, clock: QueueClock = systemClock) {
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    if (!(this.baseDelayMs > 0) || !(this.maxDelayMs >= this.baseDelayMs)) {
      throw new RangeError('rate limiter needs 0 < baseDelayMs <= maxDelayMs');
    }
    const { qps, burst } = options.bucket === false ? {} : (options.bucket ?? DEFAULT_RETRY_BUCKET);
    if (qps !== undefined && burst !== undefined) {
      if (!(qps > 0) || !(burst >= 1))
        throw new RangeError('token bucket needs qps > 0, burst >= 1');
      this.bucket = new TokenBucket(qps, burst, clock);
    }
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  when(key: K): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const backoff = Math.min(this.baseDelayMs * 2 ** failures, this.maxDelayMs);
    return Math.max(backoff, this.reserveToken());
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  private reserveToken(): number {
    return this.bucket?.reserve() ?? 0;
  }
}

export interface WorkQueueOptions {
  /** The `name` label of the queue's workqueue_* metrics. */
  name: string;
  rateLimiter?: RateLimiterOptions;
  clock?: QueueClock;
}

export interface AddOptions {
  /**
   * The key comes from an informer's start-up list rather than from a change: it is handed out
   * after every key added without this flag, so real changes go ahead of the start-up backlog.
   * A later ordinary add of a key still waiting here moves it to the ordinary lane.
   */
  initial?: boolean;
}

type Lane = 'normal' | 'initial';

interface Slot<K> {
  key: K;
  seq: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A rate-limited, delaying work queue with client-go semantics.
 *
 * - One entry per key; a key handed out by `get()` is not handed out again before `done(key)`.
 * - A key added while it is processed is marked dirty and queued once more on `done(key)`,
 *   however many times it was added meanwhile.
 * - `addAfter` keeps only the earliest pending deadline of each key.
 * - `addRateLimited` delays by the key's backoff (see RateLimiterOptions); `forget` resets it.
 * - As in client-go, every `addAfter` (so every `addRateLimited`) counts in workqueue_retries_total,
 *   and workqueue_depth counts dirty keys, including those that will be queued again on `done`.
 */
export class WorkQueue<K extends string = string> {
  readonly name: string;
  private readonly clock: QueueClock;
  private readonly limiter: RateLimiter<K>;
  private readonly metrics: WorkqueueMetrics;
  private readonly untrackInFlight: () => void;

  /** Keys that need processing, with the lane they go to: waiting ones and dirty processing ones. */
  private readonly dirty = new Map<K, Lane>();
  /** Waiting keys, with the sequence number of their live slot in a lane. */
  private readonly waiting = new Map<K, number>();
  private readonly lanes: Record<Lane, Fifo<Slot<K>>> = { normal: new Fifo(), initial: new Fifo() };
  private seq = 0;
  private readonly processing = new Map<K, number>();
  private readonly addedAt = new Map<K, number>();

  private readonly delayed = new Map<K, number>();
  private readonly deadlines = new DeadlineHeap<K>();
  private timer: unknown;
  private timerAt = Infinity;

  private readonly getters: Array<(key: K | undefined) => void> = [];
  private drained: Array<() => void> = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.clock = options.clock ?? systemClock;
    this.limiter = new RateLimiter<K>(options.rateLimiter, this.clock);
    const metrics = kubeMetrics();
    this.metrics = metrics.workqueue(this.name);
    this.untrackInFlight = metrics.trackInFlightWork(this.name, () => this.inFlight());
  }

  add(key: K, options?: AddOptions): void {
    if (this.shuttingDown) return;
    const lane: Lane = options?.initial === true ? 'initial' : 'normal';
    const current = this.dirty.get(key);
    if (current !== undefined) {
      if (current === 'initial' && lane === 'normal') {
        this.dirty.set(key, lane);
        if (this.waiting.has(key)) this.enqueue(key, lane);
      }
      return;
    }
    this.metrics.adds.inc();
    this.dirty.set(key, lane);
    this.addedAt.set(key, this.clock.now());
    this.metrics.depth.set(this.dirty.size);
    if (this.processing.has(key)) return;
    this.enqueue(key, lane);
    this.dispatch();
  }

  /** Adds `key` once `ms` have passed; a key with an earlier pending deadline keeps that one. */
  addAfter(key: K, ms: number): void {
    if (this.shuttingDown) return;
    this.metrics.retries.inc();
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const pending = this.delayed.get(key);
    if (pending !== undefined && pending <= at) return;
    this.delayed.set(key, at);
    this.deadlines.push({ key, at });
    if (at < this.timerAt) this.arm(at);
  }

  addRateLimited(key: K): void {
    if (this.shuttingDown) return;
    this.addAfter(key, this.limiter.when(key));
  }

  /** Resets the key's backoff; call it when the key was processed successfully. */
  forget(key: K): void {
    this.limiter.forget(key);
  }

  /** How many times the key was rate-limited since it was last forgotten. */
  numRequeues(key: K): number {
    return this.limiter.numRequeues(key);
  }

  /**
   * Resolves with the next key, waiting for one if none is queued. The caller owns the key
   * until it calls `done(key)`. Resolves `undefined` once the queue is shut down.
   */
  get(): Promise<K | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: K): void {
    const startedAt = this.processing.get(key);
    if (startedAt === undefined) return;
    this.processing.delete(key);
    this.metrics.workDuration.observe((this.clock.now() - startedAt) / 1000);
    const lane = this.dirty.get(key);
    if (lane !== undefined && !this.shuttingDown) {
      this.enqueue(key, lane);
      this.dispatch();
    }
    if (this.shuttingDown && this.processing.size === 0) this.finishDrain();
  }

  /** Number of keys waiting to be handed out (not counting keys being processed). */
  len(): number {
    return this.waiting.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops the queue at once: adds are ignored, waiting and delayed keys are dropped, and every
   * pending and future `get()` resolves `undefined`. Keys already handed out may still be `done`.
   */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.delayed.clear();
    this.deadlines.clear();
    this.dirty.clear();
    this.waiting.clear();
    this.lanes.normal.clear();
    this.lanes.initial.clear();
    this.addedAt.clear();
    this.metrics.depth.set(0);
    for (const resolve of this.getters.splice(0)) resolve(undefined);
    if (this.processing.size === 0) this.finishDrain();
  }

  /** Shuts down like `shutDown()`, then resolves once every key handed out has been `done`. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private enqueue(key: K, lane: Lane): void {
    const seq = ++this.seq;
    this.waiting.set(key, seq);
    this.lanes[lane].push({ key, seq });
  }

  private take(): K | undefined {
    const key = this.pop();
    if (key === undefined) return undefined;
    const now = this.clock.now();
    this.dirty.delete(key);
    this.processing.set(key, now);
    const addedAt = this.addedAt.get(key);
    if (addedAt !== undefined) this.metrics.queueDuration.observe((now - addedAt) / 1000);
    this.addedAt.delete(key);
    this.metrics.depth.set(this.dirty.size);
    return key;
  }

  private pop(): K | undefined {
    for (const lane of [this.lanes.normal, this.lanes.initial]) {
      for (let slot = lane.shift(); slot !== undefined; slot = lane.shift()) {
        if (this.waiting.get(slot.key) === slot.seq) {
          this.waiting.delete(slot.key);
          return slot.key;
        }
      }
    }
    return undefined;
  }

  private dispatch(): void {
    while (this.getters.length > 0 && this.waiting.size > 0) {
      const key = this.take();
      if (key === undefined) return;
      this.getters.shift()?.(key);
    }
  }

  private arm(at: number): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - this.clock.now())));
    this.timer = this.clock.setTimeout(() => this.fireDeadlines(), wait);
  }

  private fireDeadlines(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    for (let next = this.deadlines.peek(); next !== undefined; next = this.deadlines.peek()) {
      if (this.delayed.get(next.key) !== next.at) {
        this.deadlines.pop();
      } else if (next.at > now) {
        this.arm(next.at);
        return;
      } else {
        this.deadlines.pop();
        this.delayed.delete(next.key);
        this.add(next.key);
      }
    }
  }

  private finishDrain(): void {
    this.untrackInFlight();
    for (const resolve of this.drained.splice(0)) resolve();
  }

  private inFlight(): InFlightWork {
    const now = this.clock.now();
    let unfinished = 0;
    let longest = 0;
    for (const startedAt of this.processing.values()) {
      unfinished += now - startedAt;
      longest = Math.max(longest, now - startedAt);
    }
    return { unfinishedSeconds: unfinished / 1000, longestSeconds: longest / 1000 };
  }
}
