import type { Logger } from 'pino';
import { kubeMetrics } from './metrics.ts';
import type { KubeClient, KubeObject, ResourceClient } from './client.ts';
import { isAlreadyExists, isConflict, isNotFound } from './errors.ts';
import type { WriteFence } from './fence.ts';
import { LEASES } from './resources.ts';

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  logger: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  /**
   * Closed the moment leadership is lost (not on stop()), before onStoppedLeading runs:
   * nothing the deposed leader still has in flight may write.
   */
  fence?: WriteFence;
}

/**
 * A follower takes over at most one lease duration plus one (jittered) retry period after the
 * leader's last renewal, so these defaults hand over within 10 + 2.4 s of a leader's death.
 */
export const DEFAULT_LEASE_DURATION_MS = 10_000;
export const DEFAULT_RENEW_DEADLINE_MS = 7_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
const JITTER = 0.2;

function microTime(date: Date): string {
  return date.toISOString().replace('Z', '000Z');
}

/** Checks client-go's constraints: lease duration > renew deadline > retry period × (1 + jitter). */
export function validateLeaderElectionTimings(
  leaseMs: number,
  renewMs: number,
  retryMs: number,
): void {
  if (!(retryMs > 0)) throw new RangeError('leader election: the retry period must be positive');
  if (!(renewMs > retryMs * (1 + JITTER))) {
    throw new RangeError('leader election: the renew deadline must exceed the retry period by 20%');
  }
  if (!(leaseMs > renewMs))
    throw new RangeError('leader election: the lease duration must exceed the renew deadline');
}

/**
 * Lease-based leader election in the manner of client-go. The leader renews every retry
 * period; once it has not renewed for the renew deadline (measured from the start of its last
 * successful attempt, by a timer that does not wait for a hanging request) it stops leading
 * at once, before a follower may consider the lease expired. A follower considers the lease
 * expired one lease duration after it last saw it change, and tries again at that moment.
 * Leadership callbacks run one after the other, never blocking renewals.
 */
export class LeaderElector {
  private readonly leases: ResourceClient<Lease>;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private leading = false;
  private stopped = false;
  private observed?: { holder?: string; renewTime?: string; durationMs: number; at: number };
  private timer?: NodeJS.Timeout;
  private deadline?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private wake?: () => void;
  private transitions: Promise<void> = Promise.resolve();

  constructor(private readonly options: LeaderElectionOptions) {
    this.leases = options.client.resource<Lease>(LEASES);
    this.leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    validateLeaderElectionTimings(this.leaseDurationMs, this.renewDeadlineMs, this.retryPeriodMs);
    kubeMetrics().leaderStatus(options.name, false);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader stops leading and releases the Lease so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    clearTimeout(this.deadline);
    this.setLeading(false);
    await this.transitions;
    try {
      const lease = await this.leases.get(this.options.namespace, this.options.name);
      if (lease.spec?.holderIdentity === this.options.identity) {
        await this.leases.replace(this.options.namespace, this.options.name, {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
        });
      }
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, 'could not release the lease');
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const attemptAt = Date.now();
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew(new Date(attemptAt));
      } catch (err) {
        this.options.logger.warn({ err: (err as Error).message }, 'leader election request failed');
      }
      if (this.stopped) break;
      if (ok) this.renewed(attemptAt);
      else if (this.leading && this.heldByOther()) {
        this.options.logger.error(
          { holder: this.observed?.holder },
          'another replica holds the lease',
        );
        this.stepDown();
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.nextDelay(ok));
      });
    }
  }

  private renewed(attemptAt: number): void {
    clearTimeout(this.deadline);
    const left = attemptAt + this.renewDeadlineMs - Date.now();
    if (left <= 0) {
      this.options.logger.error('renewing the leader lease took longer than the renew deadline');
      this.stepDown();
      return;
    }
    this.deadline = setTimeout(() => {
      this.options.logger.error('could not renew the leader lease in time; giving up leadership');
      this.stepDown();
    }, left);
    this.setLeading(true);
  }

  /** Leadership lost (not given up by stop()). */
  private stepDown(): void {
    clearTimeout(this.deadline);
    if (this.leading) this.options.fence?.close('leader election lost');
    this.setLeading(false);
  }

  private heldByOther(): boolean {
    const holder = this.observed?.holder;
    return holder !== undefined && holder !== '' && holder !== this.options.identity;
  }

  /** A follower wakes up when the lease it watches expires, if that comes before its next retry. */
  private nextDelay(ok: boolean): number {
    if (ok) return this.retryPeriodMs;
    let delay = this.retryPeriodMs * (1 - JITTER + Math.random() * 2 * JITTER);
    if (this.observed && this.heldByOther()) {
      const untilExpiry = this.observed.at + this.observed.durationMs - Date.now();
      if (untilExpiry >= 0 && untilExpiry < delay) delay = untilExpiry + 1 + Math.random() * 50;
    }
    return delay;
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    kubeMetrics().leaderStatus(this.options.name, leading);
    const { identity, logger } = this.options;
    logger.info({ identity, leading }, leading ? 'became leader' : 'lost leadership');
    const callback = leading ? this.options.onStartedLeading : this.options.onStoppedLeading;
    this.transitions = this.transitions
      .then(() => callback())
      .catch((err: unknown) => {
        logger.error({ err, leading }, 'leadership callback failed');
      });
  }

  private async tryAcquireOrRenew(now: Date): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const durationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await this.leases.get(namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.leases.create(namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        } as Lease);
        return true;
      } catch (createErr) {
        if (isAlreadyExists(createErr)) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    let observed = this.observed;
    if (
      !observed ||
      observed.holder !== spec.holderIdentity ||
      observed.renewTime !== spec.renewTime
    ) {
      const durationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
      observed = {
        holder: spec.holderIdentity,
        renewTime: spec.renewTime,
        durationMs,
        at: Date.now(),
      };
      this.observed = observed;
    }
    const expired = Date.now() > observed.at + observed.durationMs;
    if (this.heldByOther() && !expired) return false;
    const takeover = spec.holderIdentity !== identity;
    try {
      await this.leases.replace(namespace, name, {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takeover ? microTime(now) : spec.acquireTime,
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover ? 1 : 0),
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}
