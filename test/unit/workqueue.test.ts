import type { QueueClock } from '../../src/kube/workqueue.ts';
import { RateLimiter, WorkQueue } from '../../src/kube/workqueue.ts';
import { setKubeMetrics } from '../../src/kube/metrics.ts';
import { metricsRegistry, promKubeMetrics } from '../../src/observability/metrics.ts';

// The app's metrics, as main plugs them into the generic layer.
setKubeMetrics(promKubeMetrics);

class ManualClock implements QueueClock {
  private time = 0;
  private nextId = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.nextId;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  pendingTimers(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = target;
  }
}

let queues = 0;
function queue(options: { maxDelayMs?: number; clock?: QueueClock } = {}): WorkQueue {
  return new WorkQueue({
    name: `test-queue-${++queues}`,
    clock: options.clock ?? new ManualClock(),
    rateLimiter: { maxDelayMs: options.maxDelayMs },
  });
}

async function sample(metric: string, name: string, series = metric): Promise<number | undefined> {
  const { values } = await metricsRegistry.getSingleMetric(metric)!.get();
  return values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? metric) === series && v.labels.name === name,
  )?.value;
}

async function drainAll(q: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (q.len() > 0) {
    const key = (await q.get())!;
    keys.push(key);
    q.done(key);
  }
  return keys;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('WorkQueue', () => {
  it('keeps one entry per key', async () => {
    const q = queue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await drainAll(q)).toEqual(['a', 'b']);
  });

  it('never hands out a key being processed, and re-queues it once when done', async () => {
    const q = queue();
    q.add('a');
    const key = await q.get();
    expect(key).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    expect(second).toBeUndefined();
    q.done('a');
    await tick();
    expect(second).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('processes a key at most twice for a burst of 20 adds during processing', async () => {
    const q = queue();
    const processed: string[] = [];
    const active = new Set<string>();
    let overlap = false;
    const worker = async () => {
      for (let key = await q.get(); key !== undefined; key = await q.get()) {
        if (active.has(key)) overlap = true;
        active.add(key);
        processed.push(key);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active.delete(key);
        q.done(key);
      }
    };
    const workers = [worker(), worker()];
    q.add('burst');
    await tick();
    for (let i = 0; i < 20; i++) q.add('burst');
    await new Promise((resolve) => setTimeout(resolve, 30));
    q.shutDown();
    await Promise.all(workers);
    expect(overlap).toBe(false);
    expect(processed).toEqual(['burst', 'burst']);
  });

  it('backs off per key exponentially from 5 ms, capped, and resets on forget', () => {
    const limiter = new RateLimiter({ maxDelayMs: 40 });
    const delays = Array.from({ length: 6 }, () => limiter.when('a'));
    expect(delays).toEqual([5, 10, 20, 40, 40, 40]);
    expect(limiter.when('b')).toBe(5);
    expect(limiter.numRequeues('a')).toBe(6);
    limiter.forget('a');
    expect(limiter.numRequeues('a')).toBe(0);
    expect(limiter.when('a')).toBe(5);
  });

  it('defaults the backoff cap to 1000 s', () => {
    const limiter = new RateLimiter();
    let last = 0;
    for (let i = 0; i < 40; i++) last = limiter.when('a');
    expect(last).toBe(1_000_000);
  });

  it('spreads retries with a global bucket by default (client-go: 10 qps, burst 100)', () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({}, clock);
    for (let i = 0; i < 100; i++) expect(limiter.when(`k${i}`)).toBe(5);
    expect(limiter.when('k100')).toBeCloseTo(100);
    expect(limiter.when('k101')).toBeCloseTo(200);
    const unlimited = new RateLimiter({ bucket: false }, clock);
    for (let i = 0; i < 200; i++) expect(unlimited.when(`k${i}`)).toBe(5);
  });

  it('spreads retries with the optional token bucket', () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ bucket: { qps: 10, burst: 2 } }, clock);
    expect(limiter.when('a')).toBe(5);
    expect(limiter.when('b')).toBe(5);
    expect(limiter.when('c')).toBeCloseTo(100);
    expect(limiter.when('d')).toBeCloseTo(200);
    clock.advance(1000);
    expect(limiter.when('e')).toBe(5);
  });

  it('delays rate-limited keys by their backoff', async () => {
    const clock = new ManualClock();
    const q = queue({ clock, maxDelayMs: 10 });
    q.addRateLimited('a');
    expect(q.numRequeues('a')).toBe(1);
    clock.advance(4);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(await drainAll(q)).toEqual(['a']);
    q.addRateLimited('a');
    clock.advance(9);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(await drainAll(q)).toEqual(['a']);
    q.addRateLimited('a');
    clock.advance(10);
    expect(await drainAll(q)).toEqual(['a']);
    q.forget('a');
    q.addRateLimited('a');
    clock.advance(5);
    expect(await drainAll(q)).toEqual(['a']);
  });

  it('keeps only the earliest addAfter deadline of a key', async () => {
    const clock = new ManualClock();
    const q = queue({ clock });
    q.addAfter('a', 50);
    q.addAfter('a', 10);
    q.addAfter('a', 30);
    q.addAfter('b', 20);
    clock.advance(9);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(await drainAll(q)).toEqual(['a']);
    clock.advance(10);
    expect(await drainAll(q)).toEqual(['b']);
    clock.advance(100);
    expect(q.len()).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('adds a key with a non-positive delay at once', () => {
    const q = queue();
    q.addAfter('a', 0);
    q.addAfter('b', -5);
    expect(q.len()).toBe(2);
  });

  it('fires addAfter on real timers', async () => {
    const q = new WorkQueue({ name: `test-queue-${++queues}` });
    const start = performance.now();
    q.addAfter('a', 20);
    expect(await q.get()).toBe('a');
    expect(performance.now() - start).toBeGreaterThanOrEqual(19);
    q.shutDown();
  });

  it('hands out initial-list keys after ordinary adds', async () => {
    const q = queue();
    q.add('list-1', { initial: true });
    q.add('list-2', { initial: true });
    q.add('list-3', { initial: true });
    q.add('change-1');
    q.add('list-2');
    q.add('change-2');
    q.add('change-1', { initial: true });
    expect(q.len()).toBe(5);
    expect(await drainAll(q)).toEqual(['change-1', 'list-2', 'change-2', 'list-1', 'list-3']);
  });

  it('re-queues a key made dirty while processing in the lane of its adds', async () => {
    const q = queue();
    q.add('a');
    q.add('b', { initial: true });
    expect(await q.get()).toBe('a');
    q.add('a', { initial: true });
    q.done('a');
    q.add('c');
    expect(await drainAll(q)).toEqual(['c', 'b', 'a']);
  });

  it('shutDown releases waiting getters and ignores further adds', async () => {
    const clock = new ManualClock();
    const q = queue({ clock });
    const waiting = q.get();
    q.addAfter('later', 10);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
    q.add('a');
    q.addRateLimited('b');
    expect(q.len()).toBe(0);
    expect(await q.get()).toBeUndefined();
    expect(q.isShuttingDown).toBe(true);
  });

  it('shutDown drops queued keys', async () => {
    const q = queue();
    q.add('a');
    q.add('b');
    q.shutDown();
    expect(q.len()).toBe(0);
    expect(await q.get()).toBeUndefined();
  });

  it('shutDownWithDrain resolves once the keys handed out are done', async () => {
    const q = queue();
    q.add('a');
    q.add('b');
    const a = (await q.get())!;
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => (drained = true));
    q.add('a');
    await tick();
    expect(drained).toBe(false);
    expect(await q.get()).toBeUndefined();
    q.done(a);
    await drain;
    expect(drained).toBe(true);
    expect(q.len()).toBe(0);
    await expect(q.shutDownWithDrain()).resolves.toBeUndefined();
  });

  it('records workqueue metrics under its name', async () => {
    const clock = new ManualClock();
    const q = queue({ clock });
    const name = q.name;
    expect(await sample('workqueue_adds_total', name)).toBe(0);
    q.add('a');
    q.add('a');
    q.add('b');
    expect(await sample('workqueue_adds_total', name)).toBe(2);
    expect(await sample('workqueue_depth', name)).toBe(2);

    clock.advance(100);
    const a = (await q.get())!;
    expect(await sample('workqueue_depth', name)).toBe(1);
    const queued = 'workqueue_queue_duration_seconds';
    expect(await sample(queued, name, `${queued}_count`)).toBe(1);
    expect(await sample(queued, name, `${queued}_sum`)).toBeCloseTo(0.1);

    clock.advance(250);
    expect(await sample('workqueue_unfinished_work_seconds', name)).toBeCloseTo(0.25);
    expect(await sample('workqueue_longest_running_processor_seconds', name)).toBeCloseTo(0.25);
    q.done(a);
    const work = 'workqueue_work_duration_seconds';
    expect(await sample(work, name, `${work}_count`)).toBe(1);
    expect(await sample(work, name, `${work}_sum`)).toBeCloseTo(0.25);
    expect(await sample('workqueue_unfinished_work_seconds', name)).toBe(0);

    q.addRateLimited('c');
    q.addAfter('d', 10);
    expect(await sample('workqueue_retries_total', name)).toBe(2);

    q.shutDown();
    expect(await sample('workqueue_depth', name)).toBe(0);
    const text = await metricsRegistry.metrics();
    expect(text).toContain(`workqueue_adds_total{name="${name}"} 2`);
    expect(text).toContain('process_cpu_user_seconds_total');
  });
});
