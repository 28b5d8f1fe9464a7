import { pino } from 'pino';
import type { ReconcileResult } from '../../src/kube/controller.ts';
import { Controller } from '../../src/kube/controller.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { WorkQueue } from '../../src/kube/workqueue.ts';
import { setKubeMetrics } from '../../src/kube/metrics.ts';
import { metricsRegistry, promKubeMetrics } from '../../src/observability/metrics.ts';

// The app's metrics, as main plugs them into the generic layer.
setKubeMetrics(promKubeMetrics);

interface LogLine {
  level: number;
  msg: string;
  key?: string;
  controller?: string;
  err?: { message: string };
}

function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

let controllers = 0;
const started: Controller[] = [];

function controller(
  reconcile: (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>,
  workers = 2,
) {
  const { logger, lines } = capturingLogger();
  const c = new Controller({
    name: `test-controller-${++controllers}`,
    workers,
    reconcile,
    logger,
    queue: { rateLimiter: { baseDelayMs: 2, maxDelayMs: 50 } },
  });
  started.push(c);
  return { c, lines };
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
});

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs = 1000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(2);
  }
}

async function sample(
  metric: string,
  labels: Record<string, string>,
  series = metric,
): Promise<number | undefined> {
  const { values } = await metricsRegistry.getSingleMetric(metric)!.get();
  return values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? metric) === series &&
      Object.entries(labels).every(([k, x]) => v.labels[k] === x),
  )?.value;
}

describe('Controller', () => {
  it('reconciles different keys concurrently but never one key twice at once', async () => {
    const active = new Map<string, number>();
    let concurrent = 0;
    let maxConcurrent = 0;
    let sameKeyOverlap = false;
    const calls: string[] = [];
    const gate = deferred();
    const { c } = controller(async (key) => {
      calls.push(key);
      const n = (active.get(key) ?? 0) + 1;
      if (n > 1) sameKeyOverlap = true;
      active.set(key, n);
      maxConcurrent = Math.max(maxConcurrent, ++concurrent);
      await gate.promise;
      await sleep(1);
      active.set(key, (active.get(key) ?? 1) - 1);
      concurrent--;
    }, 3);
    c.start();
    c.enqueue('a');
    c.enqueue('b');
    c.enqueue('c');
    await until(() => concurrent === 3);
    for (let i = 0; i < 20; i++) c.enqueue('a');
    await sleep(5);
    expect(calls).toHaveLength(3);
    gate.resolve();
    await until(() => calls.length === 4 && concurrent === 0);
    expect(sameKeyOverlap).toBe(false);
    expect(maxConcurrent).toBe(3);
    expect(calls.filter((k) => k === 'a')).toHaveLength(2);
  });

  it('retries a failing key with growing backoff until it succeeds', async () => {
    const attempts: number[] = [];
    const { c, lines } = controller(async (key) => {
      attempts.push(performance.now());
      if (attempts.length <= 3) throw new Error(`boom ${key}`);
    });
    c.start();
    c.enqueue('flaky');
    await until(() => attempts.length === 4);
    await until(() => c.queue.numRequeues('flaky') === 0);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(1.5);
    expect(gaps[1]).toBeGreaterThanOrEqual(3.5);
    expect(gaps[2]).toBeGreaterThanOrEqual(7.5);
    const errors = lines.filter((l) => l.msg === 'reconcile failed');
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatchObject({
      key: 'flaky',
      controller: c.name,
      err: { message: 'boom flaky' },
    });
    expect(await sample('controller_runtime_reconcile_errors_total', { controller: c.name })).toBe(
      3,
    );
    expect(
      await sample('controller_runtime_reconcile_total', { controller: c.name, result: 'error' }),
    ).toBe(3);
    expect(
      await sample('controller_runtime_reconcile_total', { controller: c.name, result: 'success' }),
    ).toBe(1);
  });

  it('survives reconciles that throw synchronously', async () => {
    const done: string[] = [];
    const { c } = controller((key) => {
      if (key === 'bad' && !done.includes('bad-once')) {
        done.push('bad-once');
        throw new Error('sync throw');
      }
      done.push(key);
      return Promise.resolve();
    }, 1);
    c.start();
    c.enqueue('bad');
    c.enqueue('good');
    await until(() => done.includes('good') && done.includes('bad'));
    expect(await sample('controller_runtime_reconcile_errors_total', { controller: c.name })).toBe(
      1,
    );
  });

  it('honours requeueAfterMs and resets the backoff', async () => {
    const calls: number[] = [];
    let requeuesBeforeTimedCall = -1;
    const { c } = controller(async (key) => {
      calls.push(performance.now());
      if (calls.length === 1) throw new Error('first');
      if (calls.length === 2) return { requeueAfterMs: 30 };
      requeuesBeforeTimedCall = c.queue.numRequeues(key);
      return undefined;
    });
    c.start();
    c.enqueue('timed');
    await until(() => calls.length === 3);
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(29);
    expect(requeuesBeforeTimedCall).toBe(0);
    expect(
      await sample('controller_runtime_reconcile_total', {
        controller: c.name,
        result: 'requeue_after',
      }),
    ).toBe(1);
  });

  it('requeues with backoff on { requeue: true } without counting an error', async () => {
    let calls = 0;
    const { c } = controller(async () => (++calls < 3 ? { requeue: true } : undefined));
    c.start();
    c.enqueue('again');
    await until(() => calls === 3);
    const labels = { controller: c.name };
    expect(
      await sample('controller_runtime_reconcile_total', { ...labels, result: 'requeue' }),
    ).toBe(2);
    expect(await sample('controller_runtime_reconcile_errors_total', labels)).toBe(0);
  });

  it('retries a reconcile that lost an optimistic-concurrency race as a requeue, not an error', async () => {
    let calls = 0;
    const conflict = new KubeApiError(409, 'Conflict', 'the object has been modified');
    const { c, lines } = controller(async () => {
      if (++calls < 3) throw conflict;
    });
    c.start();
    c.enqueue('raced');
    await until(() => calls === 3);
    const labels = { controller: c.name };
    expect(
      await sample('controller_runtime_reconcile_total', { ...labels, result: 'requeue' }),
    ).toBe(2);
    expect(await sample('controller_runtime_reconcile_errors_total', labels)).toBe(0);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('stop aborts in-flight reconciles, stops promptly and drops queued keys', async () => {
    const seen: string[] = [];
    const signals: AbortSignal[] = [];
    const { c } = controller(
      (key, signal) =>
        new Promise((_resolve, reject) => {
          seen.push(key);
          signals.push(signal);
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        }),
    );
    c.start();
    c.enqueue('a');
    c.enqueue('b');
    c.enqueue('c');
    await until(() => seen.length === 2);
    const start = performance.now();
    await c.stop();
    expect(performance.now() - start).toBeLessThan(100);
    expect(signals.every((s) => s.aborted)).toBe(true);
    c.enqueue('d');
    await sleep(10);
    expect(seen).toEqual(['a', 'b']);
    expect(c.queue.isShuttingDown).toBe(true);
    expect(await sample('controller_runtime_reconcile_errors_total', { controller: c.name })).toBe(
      0,
    );
    expect(await sample('controller_runtime_active_workers', { controller: c.name })).toBe(0);
    await expect(c.stop()).resolves.toBeUndefined();
    expect(() => c.start()).toThrow();
  });

  it('records controller metrics', async () => {
    const gate = deferred();
    let finished = 0;
    const { c } = controller(async () => {
      await gate.promise;
      finished++;
    }, 3);
    const labels = { controller: c.name };
    expect(
      await sample('controller_runtime_reconcile_total', { ...labels, result: 'success' }),
    ).toBe(0);
    c.start();
    expect(await sample('controller_runtime_max_concurrent_reconciles', labels)).toBe(3);
    c.enqueue('x');
    c.enqueue('y');
    await until(() => c.queue.len() === 0);
    await sleep(1);
    expect(await sample('controller_runtime_active_workers', labels)).toBe(2);
    gate.resolve();
    await until(() => finished === 2);
    await sleep(1);
    expect(await sample('controller_runtime_active_workers', labels)).toBe(0);
    expect(
      await sample('controller_runtime_reconcile_total', { ...labels, result: 'success' }),
    ).toBe(2);
    const time = 'controller_runtime_reconcile_time_seconds';
    expect(await sample(time, labels, `${time}_count`)).toBe(2);
    expect(await sample('workqueue_adds_total', { name: c.name })).toBe(2);
  });

  it('uses a queue it is given', async () => {
    const queue = new WorkQueue({ name: `given-queue-${++controllers}` });
    const seen: string[] = [];
    const { logger } = capturingLogger();
    const c = new Controller({
      name: `test-controller-${++controllers}`,
      queue,
      logger,
      reconcile: async (key) => {
        seen.push(key);
      },
    });
    started.push(c);
    expect(c.queue).toBe(queue);
    queue.add('k');
    c.start();
    await until(() => seen.length === 1);
    await c.stop();
    expect(queue.isShuttingDown).toBe(true);
  });
});
