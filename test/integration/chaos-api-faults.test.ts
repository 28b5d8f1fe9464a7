/**
 * The operator behind the API fault proxy (a busy, flaky API server rather than dead
 * processes): workloads created as CRs (kubectl-style writes, themselves throttled) and
 * through the gRPC shim while the proxy answers ~10 % of the operator's requests 429, resets
 * and ends its watches at random and partitions it for 5 s at a time; then one long full
 * partition, during which its request rate must stay bounded, and convergence after it.
 * Sizes: CHAOS_API_WORKLOADS (default 60; the size is 1000), CHAOS_API_PARTITION_SECONDS
 * (default 15; the 60). CHAOS_SEED replays a run.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { KubeClient } from '../../src/kube/client.ts';
import { isAlreadyExists, isNotFound } from '../../src/kube/errors.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { DEFAULT_RETRY_BUCKET } from '../../src/kube/workqueue.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import type { FaultRule } from '../support/api-fault-rules.ts';
import {
  chaosSeed,
  chaosStartRequest,
  grpcClient,
  pool,
  removeUntilAnswered,
  retrying,
  seededRandom,
  sizeFromEnv,
  sleep,
  startUntilAnswered,
  transientKubeError,
  waitForInvariants,
  type Expected,
  type Workload,
} from '../support/chaos.ts';
import { createTestNamespace, testKubeClient, type TestNamespace } from '../support/kube.ts';
import {
  createRunner,
  startOperator,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { SIM_ANNOTATION_PREFIXES, workloadManifest } from '../support/workloads.ts';

const WORKLOADS = sizeFromEnv('CHAOS_API_WORKLOADS', 60);
const PARTITION_SECONDS = sizeFromEnv('CHAOS_API_PARTITION_SECONDS', 15);
jest.setTimeout(600_000 + WORKLOADS * 1_500 + PARTITION_SECONDS * 1_000);
/**
 * What the operator may send while it cannot reach the API server at all. In the first
 * seconds the work in flight fails and is retried within the work queue's shared bucket
 * (its burst); from then on informers back off (800 ms → 30 s) and retries share the
 * bucket's rate. A storm (hundreds per second, or no decay) is a bug whatever the machine.
 */
const SETTLE_SECONDS = 3;
const MAX_PARTITIONED_RPS = DEFAULT_RETRY_BUCKET.burst;
const MAX_SETTLED_RPS = DEFAULT_RETRY_BUCKET.qps;
const seed = chaosSeed();
const random = seededRandom(seed);
const TOKEN = `chaos-api-${randomUUID()}`;

const admin = testKubeClient();
let proxy: ApiFaultProxy;
let gateway: TestGateway;
let ns: TestNamespace;
let wns: TestNamespace;
let op: ProxyClient;
let kubectl: KubeClient;
let operator: OperatorProcess;

/**
 * The operator's faults: throttling, 5xx, watches reset in the middle, lagging 2 s behind the
 * API server or ended at once.
 */
const OPERATOR_FAULTS: FaultRule[] = [
  { kind: 'status', code: 429, retryAfterSeconds: 1, probability: 0.1 },
  { kind: 'status', code: 503, probability: 0.02 },
  { kind: 'resetWatch', minMs: 500, maxMs: 5_000, probability: 0.3 },
  { kind: 'lagWatch', ms: 2_000, probability: 0.3 },
  { kind: 'endWatch', probability: 0.05 },
];

beforeAll(async () => {
  ns = await createTestNamespace(admin, 'chaos-api');
  wns = await createTestNamespace(admin, 'chaos-api-wl');
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: { identityJson: '{"runner_id":"api"}', serviceName: 'api', identityId: 'a' },
    },
  });
  await createRunner(admin, ns.name, 'local', gateway.url, TOKEN, wns.name);
  proxy = await startApiFaultProxy({ random });
  op = await proxy.addClient('operator');
  const writer = await proxy.addClient('kubectl');
  writer.rules = [{ kind: 'status', code: 429, retryAfterSeconds: 1, probability: 0.1 }];
  kubectl = KubeClient.fromEnvironment(writer.kubeconfig);
  operator = await startOperator({
    name: 'chaos-api-op',
    env: {
      KUBECONFIG: op.kubeconfig,
      OPERATOR_NAMESPACE: ns.name,
      WORKLOAD_NAMESPACE: wns.name,
      LEADER_ELECTION: 'false',
      GRPC_AUTH_MODE: 'insecure',
      LOG_LEVEL: 'info',
      POD_ANNOTATION_PREFIXES: SIM_ANNOTATION_PREFIXES.join(','),
    },
  });
  await waitForRunnerReady(admin, ns.name, 'local');
  console.log(`chaos-api: seed ${seed}, ${WORKLOADS} workloads, ${PARTITION_SECONDS} s partition`);
});

afterAll(async () => {
  await operator?.stop();
  kubectl?.close();
  await proxy?.close();
  await gateway?.stop();
  await wns?.cleanup();
  await ns?.cleanup();
  admin.close();
});

const workloads = (kube: KubeClient) => kube.resource<Workload>(AGENT_WORKLOADS);

async function createCr(name: string): Promise<void> {
  await retrying(async () => {
    try {
      await workloads(kubectl).create(wns.name, workloadManifest(name) as unknown as Workload);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }, transientKubeError);
}

async function deleteCr(name: string): Promise<void> {
  await retrying(async () => {
    try {
      await workloads(kubectl).delete(wns.name, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }, transientKubeError);
}

/** 5 s partitions of the operator at random moments until `done` resolves. */
async function partitionsUntil(done: Promise<unknown>): Promise<number> {
  let over = false;
  void done.finally(() => (over = true));
  let count = 0;
  while (!over) {
    await Promise.race([sleep(3_000 + random() * 7_000), done]);
    if (over) break;
    op.partition('reset', 5_000);
    count++;
    await sleep(5_000);
  }
  return count;
}

test(`${WORKLOADS} workloads as CRs and through gRPC under 429s, watch resets, lagging watches and 5 s partitions; then a ${PARTITION_SECONDS} s full partition`, async () => {
  const grpc = grpcClient(operator.grpcPort);
  const expected = new Map<string, Expected>();
  const viaGrpc: string[] = [];
  const asCr: string[] = [];
  op.rules = OPERATOR_FAULTS;

  const started = Date.now();
  const creating = pool(
    Array.from({ length: WORKLOADS }, (_, i) => i),
    4,
    async (i) => {
      if (i % 2 === 0) {
        const name = `cr-${i}`;
        await createCr(name);
        expected.set(name, { phase: 'Running' });
        asCr.push(name);
      } else {
        const id = randomUUID();
        const result = await startUntilAnswered(() => grpc, chaosStartRequest(id), 240_000);
        expect([0, 6 /* ALREADY_EXISTS */]).toContain(result.code);
        expected.set(`workload-${id}`, { phase: 'Running' });
        viaGrpc.push(id);
      }
    },
  );
  const partitions = partitionsUntil(creating);
  await creating;
  // A tenth removed again, half through each path.
  const removals = Math.max(2, Math.round(WORKLOADS / 10));
  await pool(
    Array.from({ length: removals }, (_, i) => i),
    4,
    async (i) => {
      if (i % 2 === 0) {
        const name = asCr.pop();
        if (!name) return;
        await deleteCr(name);
        expected.delete(name);
      } else {
        const id = viaGrpc.pop();
        if (!id) return;
        const result = await removeUntilAnswered(() => grpc, id, 240_000);
        expect([0, 5 /* NOT_FOUND */]).toContain(result.code);
        expected.delete(`workload-${id}`);
      }
    },
  );
  const partitioned = await partitions;
  const opsMs = Date.now() - started;
  const converged = await waitForInvariants(admin, wns.name, expected, 180_000 + WORKLOADS * 300);
  const injected = op.records.filter((r) => r.outcome !== 'forwarded').length;
  console.log(
    `chaos-api faults: ${WORKLOADS} created and ${removals} removed in ${opsMs} ms with ${partitioned} 5 s partitions; ` +
      `${op.records.length} operator requests, ${injected} of them faulted; converged ${converged.ms} ms later: ` +
      `${converged.state.workloads.length} workloads, ${converged.state.pods.length} Pods, ${converged.state.secrets.length} Secrets`,
  );

  // The long partition: the faults stop, the network goes; work arrives meanwhile.
  op.rules = [];
  const cutAt = Date.now();
  op.partition('reset');
  const stop = asCr.pop();
  if (stop) {
    await workloads(admin).mergePatch(wns.name, stop, { spec: { stopped: true } });
    expected.set(stop, { phase: 'Stopped' });
  }
  const gone = asCr.pop();
  if (gone) {
    await workloads(admin).delete(wns.name, gone);
    expected.delete(gone);
  }
  for (let i = 0; i < 3; i++) {
    await workloads(admin).create(wns.name, workloadManifest(`during-${i}`) as unknown as Workload);
    expected.set(`during-${i}`, { phase: 'Running' });
  }
  await sleep(PARTITION_SECONDS * 1000 - (Date.now() - cutAt));
  const healedAt = Date.now();
  op.heal();
  const perSecond = op.requestsPerSecond(cutAt, healedAt);
  const maxRps = Math.max(...perSecond);
  const total = perSecond.reduce((x, y) => x + y, 0);
  const after = await waitForInvariants(admin, wns.name, expected, 120_000);
  console.log(
    `chaos-api partition: ${PARTITION_SECONDS} s; operator requests during it ${total} ` +
      `(max ${maxRps}/s, per second ${perSecond.join(' ')}); converged ${after.ms} ms after it healed`,
  );
  expect(maxRps).toBeLessThanOrEqual(MAX_PARTITIONED_RPS);
  expect(Math.max(...perSecond.slice(SETTLE_SECONDS))).toBeLessThanOrEqual(MAX_SETTLED_RPS);
  expect(operator.running).toBe(true);
  grpc.close();
});
