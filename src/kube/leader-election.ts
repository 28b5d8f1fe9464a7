import type { Logger } from 'pino';
import type { KubeClient, KubeObject, ResourceClient } from './client.ts';
import { isAlreadyExists, isConflict, isNotFound } from './errors.ts';
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
}

function microTime(date: Date): string {
  return date.toISOString().replace('Z', '000Z');
}

/**
 * Lease-based leader election with controller-runtime's timings (15 s lease, 10 s renew
 * deadline, 2 s retry). Leadership that cannot be renewed within the deadline is given up
 * at once, before another replica may take it.
 */
export class LeaderElector {
  private readonly leases: ResourceClient<Lease>;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private observed?: { holder?: string; renewTime?: string; at: number };
  private timer?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(private readonly options: LeaderElectionOptions) {
    this.leases = options.client.resource<Lease>(LEASES);
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops campaigning; a leader releases the Lease so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (this.leading) {
      await this.setLeading(false);
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
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.options.logger.warn({ err: (err as Error).message }, 'leader election request failed');
      }
      const now = Date.now();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) await this.setLeading(true);
      } else if (this.leading && now - this.lastRenew > this.renewDeadlineMs) {
        this.options.logger.error('could not renew the leader lease in time; giving up leadership');
        await this.setLeading(false);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.retryPeriodMs * (ok ? 1 : 0.8 + Math.random() * 0.4));
      });
    }
  }

  private async setLeading(leading: boolean): Promise<void> {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.logger.info({ identity: this.options.identity, leading }, leading ? 'became leader' : 'lost leadership');
    if (leading) await this.options.onStartedLeading();
    else await this.options.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = new Date();
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
    if (this.observed?.holder !== spec.holderIdentity || this.observed?.renewTime !== spec.renewTime) {
      this.observed = { holder: spec.holderIdentity, renewTime: spec.renewTime, at: Date.now() };
    }
    const heldByOther = spec.holderIdentity && spec.holderIdentity !== identity;
    const expired = Date.now() > (this.observed?.at ?? 0) + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && !expired) return false;
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
