import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { KubeObject } from '../../src/kube/client.ts';
import { LEASES, PODS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createRunner,
  httpGet,
  parseMetrics,
  startOperator,
  waitForRunnerReady,
  type LogLine,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { createWorkload, waitForPhase, workloadManifest } from '../support/workloads.ts';

const client = testKubeClient();
const pods = client.resource<IPod & KubeObject>(PODS);
const LEASE = `failover-${randomBytes(4).toString('hex')}`;
const TOKEN = `ha-token-${randomBytes(6).toString('hex')}`;
const HANDOVER_LIMIT_MS = 15_000;

let ns: TestNamespace;
/** The workload namespace: never the operator's. */
let wns: TestNamespace;
let gateway: TestGateway;
const replicas: OperatorProcess[] = [];

async function leaseHolder(): Promise<string | undefined> {
  try {
    const lease = await client
      .resource<KubeObject & { spec?: { holderIdentity?: string } }>(LEASES)
      .get(ns.name, LEASE);
    return lease.spec?.holderIdentity;
  } catch {
    return undefined;
  }
}

async function podUids(): Promise<Map<string, string>> {
  const list = await pods.list(wns.name);
  return new Map(list.items.map((p) => [p.metadata?.name ?? '', p.metadata?.uid ?? '']));
}

function reconcileTotal(metricsText: string): number | undefined {
  const series = parseMetrics(metricsText).filter(
    (s) =>
      s.name === 'controller_runtime_reconcile_total' && s.labels.controller === 'agentworkload',
  );
  return series.length ? series.reduce((sum, s) => sum + s.value, 0) : undefined;
}

const createdPods = (r: OperatorProcess): LogLine[] =>
  r.logs().filter((l) => l.msg === 'created Pod');

beforeAll(async () => {
  ns = await createTestNamespace(client, 'op-ha');
  wns = await createTestNamespace(client, 'op-ha-wl');
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: '{"runner_id":"ha"}',
        serviceName: 'ha.agyn',
        identityId: 'ha-identity',
      },
    },
  });
  await createRunner(client, ns.name, 'local', gateway.url, TOKEN, wns.name);
  const env = (name: string): Record<string, string> => ({
    OPERATOR_NAMESPACE: ns.name,
    WORKLOAD_NAMESPACE: wns.name,
    LEADER_ELECTION: 'true',
    LEADER_ELECTION_ID: LEASE,
    POD_NAME: name,
    GRPC_AUTH_MODE: 'insecure',
  });
  replicas.push(
    ...(await Promise.all([
      startOperator({ name: 'ha-a', env: env('ha-a') }),
      startOperator({ name: 'ha-b', env: env('ha-b') }),
    ])),
  );
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
  await gateway?.stop();
  await wns?.cleanup();
  await ns?.cleanup();
  client.close();
});

test('two replicas: one leads and reconciles; killing it hands over within 15 s without double reconciling', async () => {
  const holder = await eventually(leaseHolder, { timeoutMs: 20_000, what: 'a Lease holder' });
  const leader = replicas.find((r) => r.name === holder);
  const follower = replicas.find((r) => r.name !== holder);
  if (!leader || !follower) throw new Error(`unexpected Lease holder ${holder}`);
  await leader.waitForLog(
    (l) => l.msg === 'controller started' && l.controller === 'agentworkload',
    'leader reconciling',
  );
  await waitForRunnerReady(client, ns.name, 'local');

  for (const name of ['ha-1', 'ha-2', 'ha-3'])
    await createWorkload(client, wns.name, workloadManifest(name));
  for (const name of ['ha-1', 'ha-2', 'ha-3'])
    await waitForPhase(client, wns.name, name, 'Running');
  const podsBefore = await podUids();

  // Only the leader reconciles: the follower never started a controller, counted a reconcile or created a Pod.
  expect(
    follower.logs().filter((l) => ['became leader', 'controller started'].includes(l.msg)),
  ).toEqual([]);
  expect(createdPods(follower)).toEqual([]);
  expect(reconcileTotal((await httpGet(`${follower.httpUrl}/metrics`)).body)).toBeUndefined();
  expect(reconcileTotal((await httpGet(`${leader.httpUrl}/metrics`)).body)).toBeGreaterThan(0);
  expect(
    createdPods(leader)
      .map((l) => l.pod)
      .sort(),
  ).toEqual(['ha-1', 'ha-2', 'ha-3']);
  expect((await httpGet(`${follower.httpUrl}/readyz`)).status).toBe(200);

  const killedAt = Date.now();
  await leader.stop('SIGKILL');
  const leaderLastLog = Math.max(...leader.logs().map((l) => l.time));
  // Work that arrives while nobody leads must be picked up by the successor.
  await createWorkload(client, wns.name, workloadManifest('ha-4'));

  const became = await follower.waitForLog(
    (l) => l.msg === 'became leader',
    'follower takes over',
    25_000,
  );
  const started = await follower.waitForLog(
    (l) => l.msg === 'controller started' && l.controller === 'agentworkload',
    'follower reconciling',
  );
  const handoverMs = became.time - killedAt;
  console.log(
    `failover: leader ${leader.name} SIGKILLed; ${follower.name} became leader after ${handoverMs} ms ` +
      `and reconciled after ${started.time - killedAt} ms (limit ${HANDOVER_LIMIT_MS} ms)`,
  );
  expect(handoverMs).toBeLessThanOrEqual(HANDOVER_LIMIT_MS);
  expect(await leaseHolder()).toBe(follower.name);

  // Workloads keep converging under the new leader: new work starts, stopping works, nothing is recreated.
  await waitForPhase(client, wns.name, 'ha-4', 'Running');
  await client.resource(AGENT_WORKLOADS).mergePatch(wns.name, 'ha-1', { spec: { stopped: true } });
  await waitForPhase(client, wns.name, 'ha-1', 'Stopped');
  const podsAfter = await podUids();
  for (const name of ['ha-2', 'ha-3']) expect(podsAfter.get(name)).toBe(podsBefore.get(name));
  expect(podsAfter.has('ha-1')).toBe(false);

  // No overlap: everything the follower did came after the leader was dead, and each Pod was created once.
  expect(started.time).toBeGreaterThanOrEqual(killedAt);
  expect(leaderLastLog).toBeLessThan(killedAt + 1);
  const followerCreated = createdPods(follower);
  expect(followerCreated.every((l) => l.time >= killedAt)).toBe(true);
  const allCreated = [...createdPods(leader), ...followerCreated].map((l) => String(l.pod)).sort();
  expect(allCreated).toEqual(['ha-1', 'ha-2', 'ha-3', 'ha-4']);
  expect(follower.running).toBe(true);
});
