/**
 * Fencing: the leader is partitioned from kube-apiserver (a blackhole at the API fault
 * proxy, as a network drops packets) while it reconciles a burst. Once its Lease has expired
 * not one write of it may reach the API server — not even requests it sent before the
 * partition and that a healed network would still deliver — and it exits non-zero; the new
 * leader converges everything, nothing duplicated.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import { waitForInvariants, type Expected } from '../support/chaos.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createRunner,
  startOperator,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { createWorkload, workloadManifest } from '../support/workloads.ts';

jest.setTimeout(240_000);

const client = testKubeClient();
const LEASE = `fencing-${randomBytes(4).toString('hex')}`;
const TOKEN = `fencing-token-${randomBytes(6).toString('hex')}`;
const LEASE_SECONDS = 6;
const BURST = 30;

let ns: TestNamespace;
let wns: TestNamespace;
let gateway: TestGateway;
let proxy: ApiFaultProxy;
const operators: OperatorProcess[] = [];

beforeAll(async () => {
  ns = await createTestNamespace(client, 'fence');
  wns = await createTestNamespace(client, 'fence-wl');
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: { identityJson: '{"runner_id":"fence"}', serviceName: 'fence', identityId: 'f' },
    },
  });
  await createRunner(client, ns.name, 'local', gateway.url, TOKEN, wns.name);
  proxy = await startApiFaultProxy();
});

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop('SIGKILL')));
  await proxy?.close();
  await gateway?.stop();
  await wns?.cleanup();
  await ns?.cleanup();
  client.close();
});

async function replica(name: string): Promise<{ op: OperatorProcess; api: ProxyClient }> {
  const api = await proxy.addClient(name);
  const op = await startOperator({
    name,
    env: {
      KUBECONFIG: api.kubeconfig,
      OPERATOR_NAMESPACE: ns.name,
      WORKLOAD_NAMESPACE: wns.name,
      LEADER_ELECTION: 'true',
      LEADER_ELECTION_ID: LEASE,
      LEADER_ELECTION_LEASE_DURATION_SECONDS: String(LEASE_SECONDS),
      LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '4',
      LEADER_ELECTION_RETRY_PERIOD_SECONDS: '1',
      POD_NAME: name,
      GRPC_AUTH_MODE: 'insecure',
    },
  });
  operators.push(op);
  return { op, api };
}

/** A write that made fence-a the holder until LEASE_SECONDS later: the acquiring POST or a renewal. */
const isLeaseHeld = (r: { method: string; path: string; status?: number }): boolean =>
  (r.method === 'PUT' && r.path.endsWith(`/leases/${LEASE}`) && r.status === 200) ||
  (r.method === 'POST' && r.path.endsWith('/leases') && r.status === 201);

test('a partitioned leader writes nothing once its Lease expired, and exits non-zero; the new leader converges the burst', async () => {
  const a = await replica('fence-a');
  await a.op.waitForLog((l) => l.msg === 'became leader', 'fence-a leads');
  await waitForRunnerReady(client, ns.name, 'local');
  const b = await replica('fence-b');

  // Slow writes: when the partition comes, some are on their way.
  a.api.rules = [{ kind: 'delay', ms: 400, match: (r) => r.write && !r.path.includes('/leases/') }];
  const expected = new Map<string, Expected>();
  for (let i = 0; i < BURST; i++) {
    await createWorkload(client, wns.name, workloadManifest(`burst-${i}`));
    expected.set(`burst-${i}`, { phase: 'Running' });
  }
  await eventually(
    () => a.api.records.filter((r) => r.method === 'POST' && r.path.endsWith('/pods')).length >= 3,
    { what: 'fence-a creating Pods of the burst' },
  );
  a.api.partition('blackhole');
  const partitionedAt = Date.now();

  await b.op.waitForLog((l) => l.msg === 'became leader', 'fence-b takes over', 60_000);
  // The partition may come before the first renewal: then the acquisition is the last hold.
  const lastRenewal = a.api.records.filter(isLeaseHeld).at(-1);
  if (!lastRenewal?.forwardedAt) throw new Error('fence-a never held the Lease');
  const expiredAt = lastRenewal.forwardedAt + LEASE_SECONDS * 1000;
  // The network heals while fence-a still has requests waiting at the proxy.
  const heldAtHeal = a.api.records.filter((r) => r.write && r.outcome === 'pending').length;
  a.api.heal();

  const { ms, state } = await waitForInvariants(client, wns.name, expected, 120_000);
  const late = a.api.writesSince(expiredAt);
  console.log(
    `fencing: fence-a partitioned ${partitionedAt - lastRenewal.forwardedAt} ms after its last renewal; ` +
      `fence-b led ${Date.now() - partitionedAt} ms after the partition; ${heldAtHeal} writes of fence-a held at the heal; ` +
      `writes of fence-a that reached the API server after its Lease expired: ${late.length}; ` +
      `converged ${ms} ms after the heal (${state.pods.length} Pods)`,
  );
  expect(late.map((r) => `${r.method} ${r.path} → ${r.status}`)).toEqual([]);
  // Status written after a read is pinned to the version read: a stale writer gets a conflict.
  const statusPatches = [...a.api.records, ...b.api.records].filter(
    (r) => r.method === 'PATCH' && /\/agentworkloads\/[^/]+\/status$/.test(r.path),
  );
  expect(statusPatches.length).toBeGreaterThan(0);
  const unpinned = statusPatches.filter(
    (r) =>
      !(JSON.parse(r.body ?? '{}') as { metadata?: { resourceVersion?: string } }).metadata
        ?.resourceVersion,
  );
  expect(unpinned.map((r) => r.path)).toEqual([]);
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    a.op.exited,
    new Promise<'running'>((resolve) => (timer = setTimeout(() => resolve('running'), 10_000))),
  ]);
  clearTimeout(timer);
  expect(exit).toEqual({ code: 1, signal: null });
  expect(a.op.logs().some((l) => l.msg === 'leader election lost: exiting')).toBe(true);
  expect(b.op.running).toBe(true);
});
