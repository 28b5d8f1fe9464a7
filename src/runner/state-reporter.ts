import type { Logger } from 'pino';
import type { AgentWorkload, AgentWorkloadStatus } from '../api/agentworkload.ts';
import type { WorkloadStateSink } from '../workload/seams.ts';
import { GatewayError, type GatewayClient } from './gateway-client.ts';
import { backoffMs, type BackoffOptions } from './runner-status.ts';
import { workloadReportOf, type WorkloadReport } from './workload-report.ts';

/** Where and as whom to report the workloads of one Runner. */
export interface ReportTarget {
  gateway: Pick<GatewayClient, 'reportWorkloadState'>;
  gatewayUrl: string;
  runnerId: string;
  serviceToken: string;
}

export type ReportTargetLookup =
  | { ok: true; target: ReportTarget }
  /** permanent: the Runner is gone, so reports for it are dropped rather than retried. */
  | { ok: false; permanent: boolean; why: string };

/** Implemented by RunnerController from its caches. */
export interface ReportTargetSource {
  reportTarget(runnerName: string): ReportTargetLookup;
  /** The platform refused `runnerId` on a report: the identity needs enrolling again. */
  identityRejected(runnerName: string, runnerId: string): void;
}

export const DEFAULT_REPORT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 60_000 };

export interface GatewayStateReporterOptions {
  targets: ReportTargetSource;
  logger: Logger;
  /** Retry backoff per workload. Default 0.5 s doubling to 60 s (±20 % jitter). */
  backoff?: Partial<BackoffOptions>;
  /** Reports in flight at once, over all workloads. Default 8. */
  maxConcurrent?: number;
  /** Workloads remembered to skip repeated identical reports. Default 10,000. */
  maxTracked?: number;
  now?: () => Date;
  random?: () => number;
}

interface Queued {
  report: WorkloadReport;
  /** Identity of the report's content, without its time. */
  content: string;
}

interface Entry {
  key: string;
  /** The latest report not yet sent; a newer one replaces it. */
  pending?: Queued;
  sending?: Queued;
  /** Content of the last report the platform took. */
  delivered?: string;
  attempts: number;
  timer?: NodeJS.Timeout;
  queued: boolean;
}

type Result = 'delivered' | 'retry' | 'drop';

const REJECTED = new Set(['NOT_FOUND', 'UNAUTHENTICATED', 'PERMISSION_DENIED']);
const PERMANENT = new Set([
  'INVALID_ARGUMENT',
  'FAILED_PRECONDITION',
  'OUT_OF_RANGE',
  'MALFORMED_RESPONSE',
]);

/**
 * Sends every observed workload transition to the platform with ReportWorkloadState, best
 * effort: queued per workload and coalesced (the latest state replaces a pending one), one
 * report in flight per workload so they arrive in order, retried with capped backoff, and
 * never blocking the caller. A gateway answering UNIMPLEMENTED is not reported to again.
 */
export class GatewayStateReporter implements WorkloadStateSink {
  readonly stats = { delivered: 0, coalesced: 0, retries: 0, dropped: 0 };
  private readonly targets: ReportTargetSource;
  private readonly logger: Logger;
  private readonly backoff: BackoffOptions;
  private readonly maxConcurrent: number;
  private readonly maxTracked: number;
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly entries = new Map<string, Entry>();
  private ready: string[] = [];
  private inFlight = 0;
  private readonly sends = new Set<Promise<void>>();
  private readonly unimplemented = new Set<string>();
  private idleWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(options: GatewayStateReporterOptions) {
    this.targets = options.targets;
    this.logger = options.logger.child({ component: 'state-reporter' });
    this.backoff = { ...DEFAULT_REPORT_BACKOFF, ...options.backoff };
    this.maxConcurrent = options.maxConcurrent ?? 8;
    this.maxTracked = options.maxTracked ?? 10_000;
    this.now = options.now ?? (() => new Date());
    this.random = options.random ?? Math.random;
    if (!(this.maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be at least 1');
  }

  workloadChanged(workload: AgentWorkload, status: AgentWorkloadStatus): void {
    if (this.stopped) return;
    const report = workloadReportOf(workload, status, this.now());
    if (!report) return;
    if (this.unimplemented.size > 0) {
      const found = this.targets.reportTarget(report.runner);
      if (found.ok && this.unimplemented.has(found.target.gatewayUrl)) return;
    }
    const key = workload.metadata.uid ?? `${workload.metadata.namespace}/${workload.metadata.name}`;
    const content = JSON.stringify([
      report.runner,
      report.workloadId,
      report.status,
      report.containers,
    ]);
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    } else {
      entry = { key, attempts: 0, queued: false };
      this.entries.set(key, entry);
      this.trim();
    }
    if (entry.pending) {
      if (entry.pending.content !== content) {
        entry.pending = { report, content };
        this.stats.coalesced++;
      }
      return;
    }
    if ((entry.sending ? entry.sending.content : entry.delivered) === content) return;
    entry.pending = { report, content };
    if (!entry.sending && !entry.timer) this.enqueue(entry);
    this.pump();
  }

  /** Number of workloads with a report not yet delivered (queued, waiting to retry or in flight). */
  pending(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.pending || e.sending) n++;
    return n;
  }

  /** Retries everything waiting at once; resolves when every queued report was delivered or dropped. */
  flush(): Promise<void> {
    for (const entry of this.entries.values()) {
      if (entry.timer === undefined) continue;
      clearTimeout(entry.timer);
      entry.timer = undefined;
      if (entry.pending) this.enqueue(entry);
    }
    this.pump();
    return this.whenIdle();
  }

  /** Drops what is queued and waits for the reports in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      entry.pending = undefined;
    }
    this.ready = [];
    await Promise.all([...this.sends]);
    this.entries.clear();
    this.notifyIdle();
  }

  private enqueue(entry: Entry): void {
    if (entry.queued) return;
    entry.queued = true;
    this.ready.push(entry.key);
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.maxConcurrent && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      const entry = this.entries.get(key);
      if (!entry) continue;
      entry.queued = false;
      if (!entry.pending || entry.sending || entry.timer) continue;
      const item = entry.pending;
      entry.pending = undefined;
      entry.sending = item;
      this.inFlight++;
      const send: Promise<void> = this.deliver(item)
        .catch((err: unknown): Result => {
          this.logger.error({ err }, 'unexpected failure while reporting workload state');
          return 'retry';
        })
        .then((result) => this.settle(entry, item, result))
        .finally(() => this.sends.delete(send));
      this.sends.add(send);
    }
    this.notifyIdle();
  }

  private async deliver(item: Queued): Promise<Result> {
    const { report } = item;
    const found = this.targets.reportTarget(report.runner);
    if (!found.ok) {
      if (found.permanent) {
        this.logger.debug(
          { runner: report.runner, why: found.why },
          'dropping a workload state report',
        );
        return 'drop';
      }
      return 'retry';
    }
    const { target } = found;
    if (this.unimplemented.has(target.gatewayUrl)) return 'drop';
    try {
      await target.gateway.reportWorkloadState({
        runnerId: target.runnerId,
        serviceToken: target.serviceToken,
        workloadId: report.workloadId,
        status: report.status,
        containers: report.containers,
        observedAt: report.observedAt,
      });
      return 'delivered';
    } catch (err) {
      if (!(err instanceof GatewayError)) {
        this.logger.warn(
          { workloadId: report.workloadId, err: (err as Error).message },
          'workload state report not sent',
        );
        return 'drop';
      }
      if (err.code === 'UNIMPLEMENTED') {
        if (!this.unimplemented.has(target.gatewayUrl)) {
          this.unimplemented.add(target.gatewayUrl);
          this.logger.warn(
            { gateway: target.gatewayUrl },
            'the platform does not implement ReportWorkloadState; workload states are no longer reported to it',
          );
        }
        return 'drop';
      }
      if (REJECTED.has(err.code)) {
        this.targets.identityRejected(report.runner, target.runnerId);
        return 'retry';
      }
      if (PERMANENT.has(err.code)) {
        this.logger.warn(
          { workloadId: report.workloadId, err: err.message },
          'the platform refused a workload state report',
        );
        return 'drop';
      }
      this.logger.debug(
        { workloadId: report.workloadId, err: err.message },
        'workload state report failed; will retry',
      );
      return 'retry';
    }
  }

  private settle(entry: Entry, item: Queued, result: Result): void {
    entry.sending = undefined;
    this.inFlight--;
    if (result === 'delivered') {
      entry.delivered = item.content;
      entry.attempts = 0;
      this.stats.delivered++;
    } else if (result === 'drop') {
      entry.attempts = 0;
      this.stats.dropped++;
    } else if (!this.stopped) {
      this.stats.retries++;
      entry.attempts++;
      entry.pending ??= item;
      const delay = backoffMs(entry.attempts, this.backoff) * (0.8 + 0.4 * this.random());
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        this.enqueue(entry);
        this.pump();
      }, delay);
      entry.timer.unref();
    }
    if (!entry.timer && entry.pending) this.enqueue(entry);
    const idle = !entry.pending && !entry.sending && !entry.timer;
    const finished = item.report.status === 'STOPPED' || item.report.status === 'FAILED';
    if (idle && (finished || result === 'drop') && this.entries.get(entry.key) === entry)
      this.entries.delete(entry.key);
    this.pump();
  }

  /** Forgets the least recently changed idle workloads beyond maxTracked. */
  private trim(): void {
    if (this.entries.size <= this.maxTracked) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxTracked) break;
      if (!entry.pending && !entry.sending && !entry.timer) this.entries.delete(key);
    }
  }

  private whenIdle(): Promise<void> {
    if (this.pending() === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0) return;
    if (!this.stopped && this.pending() > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
