import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { WriteFence } from '../../src/kube/fence.ts';
import { LeaderElector, validateLeaderElectionTimings } from '../../src/kube/leader-election.ts';
import { setKubeMetrics } from '../../src/kube/metrics.ts';
import { metricsRegistry, promKubeMetrics } from '../../src/observability/metrics.ts';

// The app's metrics, as main plugs them into the generic layer.
setKubeMetrics(promKubeMetrics);

type Lease = KubeObject & {
  spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
};

/** One Lease in memory with resourceVersion checks, as the API server keeps it. */
class LeaseStore {
  lease?: Lease;
  private version = 0;

  get(): Lease {
    if (!this.lease) throw new KubeApiError(404, 'NotFound', 'not found');
    return structuredClone(this.lease);
  }

  create(body: Lease): Lease {
    if (this.lease) throw new KubeApiError(409, 'AlreadyExists', 'exists');
    this.lease = {
      ...structuredClone(body),
      metadata: { ...body.metadata, resourceVersion: String(++this.version) },
    };
    return structuredClone(this.lease);
  }

  replace(body: Lease): Lease {
    if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) {
      throw new KubeApiError(409, 'Conflict', 'conflict');
    }
    this.lease = {
      ...structuredClone(body),
      metadata: { ...body.metadata, resourceVersion: String(++this.version) },
    };
    return structuredClone(this.lease);
  }
}

/** A replica's view of the store; a partitioned replica's requests never answer. */
function replicaClient(store: LeaseStore) {
  const state = { partitioned: false };
  const call = <T>(fn: () => T): Promise<T> =>
    state.partitioned ? new Promise<T>(() => {}) : Promise.resolve().then(fn);
  const resource = {
    get: () => call(() => store.get()),
    create: (_ns: string, body: Lease) => call(() => store.create(body)),
    replace: (_ns: string, _name: string, body: Lease) => call(() => store.replace(body)),
  };
  return { client: { resource: () => resource } as unknown as KubeClient, state };
}

const logger = pino({ level: 'silent' });
const TIMINGS = { leaseDurationMs: 1_000, renewDeadlineMs: 600, retryPeriodMs: 100 };
const electors: LeaderElector[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function replica(store: LeaseStore, identity: string, events: string[], name = 'lease') {
  const { client, state } = replicaClient(store);
  const fence = new WriteFence();
  const elector = new LeaderElector({
    fence,
    client,
    namespace: 'ns',
    name,
    identity,
    logger,
    ...TIMINGS,
    onStartedLeading: () => void events.push(`${identity} started`),
    onStoppedLeading: () => void events.push(`${identity} stopped`),
  });
  electors.push(elector);
  return { elector, state, fence };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out');
    await sleep(5);
  }
  return Date.now();
}

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => Promise.race([e.stop(), sleep(200)])));
});

describe('LeaderElector', () => {
  it('creates the Lease, leads, and releases the Lease on stop', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const { elector, fence } = replica(store, 'a', events);
    elector.start();
    await until(() => elector.isLeader);
    expect(store.lease?.spec?.holderIdentity).toBe('a');
    expect(
      await metricsRegistry.getSingleMetricAsString('leader_election_master_status'),
    ).toContain('leader_election_master_status{name="lease"} 1');
    await elector.stop();
    expect(elector.isLeader).toBe(false);
    expect(events).toEqual(['a started', 'a stopped']);
    expect(fence.closed).toBe(false);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
  });

  it('a follower waits while the leader renews and takes a released Lease within a retry period', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = replica(store, 'a', events);
    a.elector.start();
    await until(() => a.elector.isLeader);
    const b = replica(store, 'b', events);
    b.elector.start();
    await sleep(TIMINGS.leaseDurationMs * 1.5);
    expect(b.elector.isLeader).toBe(false);
    const stoppedAt = Date.now();
    await a.elector.stop();
    const tookOver = await until(() => b.elector.isLeader);
    expect(tookOver - stoppedAt).toBeLessThan(TIMINGS.retryPeriodMs * 1.2 + 100);
    expect(events).toEqual(['a started', 'a stopped', 'b started']);
  });

  it('a partitioned leader stops at its renew deadline, before the follower takes over', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = replica(store, 'a', events);
    a.elector.start();
    await until(() => a.elector.isLeader);
    const b = replica(store, 'b', events);
    b.elector.start();
    await sleep(300);
    a.state.partitioned = true;
    const cutAt = Date.now();
    const aStopped = await until(() => !a.elector.isLeader);
    // Fenced the moment it stopped leading: nothing it still has in flight may write.
    expect(a.fence.closed).toBe(true);
    const bLeads = await until(() => b.elector.isLeader);
    expect(aStopped - cutAt).toBeLessThanOrEqual(TIMINGS.renewDeadlineMs + 50);
    expect(bLeads).toBeGreaterThan(aStopped);
    // The follower acts one lease duration after it last saw a renewal, and at that moment.
    expect(bLeads - cutAt).toBeGreaterThanOrEqual(
      TIMINGS.leaseDurationMs - TIMINGS.retryPeriodMs * 1.2,
    );
    expect(bLeads - cutAt).toBeLessThanOrEqual(
      TIMINGS.leaseDurationMs + TIMINGS.retryPeriodMs * 1.2 + 150,
    );
    expect(events.indexOf('a stopped')).toBeLessThan(events.indexOf('b started'));
  });

  it('a leader that finds another holder on the Lease stops leading at once', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = replica(store, 'a', events);
    a.elector.start();
    await until(() => a.elector.isLeader);
    const lease = store.get();
    store.replace({
      ...lease,
      spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: 'later' },
    });
    const seenAt = Date.now();
    await until(() => !a.elector.isLeader);
    expect(a.fence.closed).toBe(true);
    expect(Date.now() - seenAt).toBeLessThan(TIMINGS.retryPeriodMs * 2 + 50);
    expect(events).toEqual(['a started', 'a stopped']);
  });

  it('rejects timings where a follower could take over before the leader gives up', () => {
    expect(() => validateLeaderElectionTimings(10_000, 7_000, 2_000)).not.toThrow();
    expect(() => validateLeaderElectionTimings(7_000, 7_000, 2_000)).toThrow(/lease duration/);
    expect(() => validateLeaderElectionTimings(10_000, 2_200, 2_000)).toThrow(/renew deadline/);
    expect(() => validateLeaderElectionTimings(10_000, 7_000, 0)).toThrow(/retry period/);
  });
});
