import type { Logger } from 'pino';
import { isConflict } from './errors.ts';
import { kubeMetrics, type ControllerMetrics, type ReconcileOutcome } from './metrics.ts';
import type { AddOptions, WorkQueueOptions } from './workqueue.ts';
import { WorkQueue } from './workqueue.ts';
import { childLogger } from './child-logger.ts';

export interface ReconcileResult {
  /** Process the key again after this many milliseconds (its backoff is reset). */
  requeueAfterMs?: number;
  /** Process the key again after its backoff, without counting an error. */
  requeue?: boolean;
}

export type Reconcile = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  name: string;
  /**
   * The queue to consume, or options for a queue the controller creates (its metrics `name`
   * defaults to the controller's). Either way the controller owns it: `stop()` shuts it down.
   */
  queue?: WorkQueue | Partial<WorkQueueOptions>;
  /** Number of keys reconciled concurrently. Default 2. */
  workers?: number;
  reconcile: Reconcile;
  logger: Logger;
}

export const DEFAULT_WORKERS = 2;

/**
 * Runs `workers` loops that take keys from the queue and reconcile them, with controller-runtime's
 * result handling. A stopped controller cannot be started again; create a new one.
 */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly workers: number;
  private readonly reconcile: Reconcile;
  private readonly logger: Logger;
  private readonly metrics: ControllerMetrics;
  private readonly abort = new AbortController();
  private state: 'new' | 'started' | 'stopped' = 'new';
  private running: Promise<void>[] = [];
  private stopping?: Promise<void>;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.queue =
      options.queue instanceof WorkQueue
        ? options.queue
        : new WorkQueue({ name: options.name, ...options.queue });
    this.workers = options.workers ?? DEFAULT_WORKERS;
    if (!Number.isInteger(this.workers) || this.workers < 1) {
      throw new RangeError(`controller ${this.name}: workers must be a positive integer`);
    }
    this.reconcile = options.reconcile;
    this.logger = childLogger(options.logger, { controller: this.name });
    this.metrics = kubeMetrics().controller(this.name);
  }

  start(): void {
    if (this.state !== 'new') throw new Error(`controller ${this.name} was already ${this.state}`);
    this.state = 'started';
    this.metrics.maxConcurrentReconciles.set(this.workers);
    this.running = Array.from({ length: this.workers }, () => this.work());
    this.logger.info({ workers: this.workers }, 'controller started');
  }

  enqueue(key: string, options?: AddOptions): void {
    this.queue.add(key, options);
  }

  /**
   * Stops taking work, aborts the signal of running reconciles and resolves once every worker
   * has returned. Keys still queued are dropped; reconciles failing after the abort are logged
   * at debug level and not counted as errors.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    const wasStarted = this.state === 'started';
    this.state = 'stopped';
    this.queue.shutDown();
    this.abort.abort();
    await Promise.all(this.running);
    if (wasStarted) this.logger.info('controller stopped');
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      try {
        await this.process(key);
      } catch (err) {
        this.logger.error({ err, key }, 'failed to handle reconcile outcome; retrying');
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const { metrics, queue } = this;
    metrics.activeWorkers.inc();
    const endTimer = metrics.reconcileTime.startTimer();
    let result: ReconcileResult | void;
    try {
      result = await this.reconcile(key, this.abort.signal);
    } catch (err) {
      if (this.abort.signal.aborted) {
        this.logger.debug({ err, key }, 'reconcile ended by stop');
        return;
      }
      queue.addRateLimited(key);
      if (isConflict(err)) {
        // Optimistic concurrency at work (a write based on a version someone replaced): retried
        // from the newer version, as a requeue rather than a failure.
        this.count('requeue');
        this.logger.debug(
          { key, retries: queue.numRequeues(key) },
          'reconcile conflicted; retrying',
        );
        return;
      }
      metrics.reconcileErrors.inc();
      this.count('error');
      this.logger.error({ err, key, retries: queue.numRequeues(key) }, 'reconcile failed');
      return;
    } finally {
      endTimer();
      metrics.activeWorkers.dec();
    }
    const requeueAfterMs = result?.requeueAfterMs;
    if (requeueAfterMs !== undefined && requeueAfterMs > 0) {
      queue.forget(key);
      queue.addAfter(key, requeueAfterMs);
      this.count('requeue_after');
    } else if (result?.requeue === true) {
      queue.addRateLimited(key);
      this.count('requeue');
    } else {
      queue.forget(key);
      this.count('success');
    }
  }

  private count(outcome: ReconcileOutcome): void {
    this.metrics.reconcileTotal[outcome].inc();
  }
}
