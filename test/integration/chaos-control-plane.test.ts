/**
 * Faults of the control plane under a running operator, on a private cluster (these tests
 * SIGKILL kube-apiserver and etcd, so they never touch the shared test cluster):
 * - kube-apiserver and etcd killed and restarted while workloads are being created;
 * - watches expired (410 Gone) by an etcd compaction while the operator was cut off;
 * - the opt-in finalizer policy's 503 window after a kube-apiserver restart.
 * Sizes: CHAOS_APISERVER_WORKLOADS (default 40; the size is 200),
 * CHAOS_COMPACTION_WORKLOADS (default 12). CHAOS_SEED replays a run.
 */
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { RunnerServiceClient } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { installFinalizerPolicy } from '../../bench/lib/finalizer-policy.ts';
import { WORKLOAD_FINALIZER } from '../../src/api/common.ts';
import { isAlreadyExists, isNotFound, KubeApiError } from '../../src/kube/errors.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import {
  chaosSeed,
  chaosStartRequest,
  grpcClient,
  pool,
  retrying,
  seededRandom,
  sizeFromEnv,
  sleep,
  startChaosOperator,
  startPrivateCluster,
  startTcpProxy,
  startUntilAnswered,
  transientKubeError,
  waitForInvariants,
  type Expected,
  type PrivateCluster,
  type TcpProxy,
  type Workload,
} from '../support/chaos.ts';
import { createTestNamespace, type TestNamespace } from '../support/kube.ts';
import {
  createRunner,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { workloadManifest } from '../support/workloads.ts';

jest.setTimeout(600_000);

const WORKLOADS = sizeFromEnv('CHAOS_APISERVER_WORKLOADS', 40);
const COMPACTION_WORKLOADS = sizeFromEnv('CHAOS_COMPACTION_WORKLOADS', 12);
const seed = chaosSeed();
const random = seededRandom(seed);
const TOKEN = `chaos-cp-${randomUUID()}`;

/**
 * CR-created workloads carry a simulation scenario, so "true phase" is not always Running.
 * The main containers that exit run for 30 s first: a main container that exits before the
 * operator saw it Running is by design a failed start (src/workload/health.ts), so a shorter
 * run could end unobserved during a fault and make the verdict depend on the fault's timing.
 */
const SCENARIOS: Array<{ annotations: Record<string, string>; expected: Expected }> = [
  { annotations: {}, expected: { phase: 'Running' } },
  {
    annotations: { 'sim.agyn.io/scenario': 'exit-0', 'sim.agyn.io/step-delay': '30s' },
    expected: { phase: 'Stopped' },
  },
  {
    annotations: { 'sim.agyn.io/scenario': 'exit-1', 'sim.agyn.io/step-delay': '30s' },
    expected: { phase: 'Failed', reason: 'crashloop' },
  },
];

let cluster: PrivateCluster;
let gateway: TestGateway;

beforeAll(async () => {
  const started = Date.now();
  cluster = await startPrivateCluster();
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: '{"runner_id":"chaos-cp"}',
        serviceName: 'chaos.agyn',
        identityId: 'chaos-cp',
      },
    },
  });
  console.log(
    `chaos-control-plane: private cluster in ${cluster.dir} up after ${Date.now() - started} ms; seed ${seed}`,
  );
}, 600_000);

afterAll(async () => {
  await gateway?.stop();
  await cluster?.down();
});

/**
 * A Runner whose workloads get 5 minutes to start: after a restart of kube-apiserver the
 * simulated kubelet (kwok) and the scheduler resume with their own backoff, at times for
 * longer than the default minute, and a workload not Running by then is rightly a failed
 * start. These tests are about the operator, so the grace is not what they measure.
 */
async function createPatientRunner(namespace: string, workloadNamespace: string): Promise<void> {
  await createRunner(cluster.client, namespace, 'local', gateway.url, TOKEN, workloadNamespace);
  await cluster.client
    .resource(RUNNERS)
    .mergePatch(namespace, 'local', { spec: { health: { startGraceSeconds: 300 } } });
}

/** A namespace with a Ready Runner and the operator serving a workload namespace of its own. */
async function setUp(
  prefix: string,
  env: Record<string, string> = {},
): Promise<{ ns: TestNamespace; wns: TestNamespace; operator: OperatorProcess }> {
  const ns = await createTestNamespace(cluster.client, prefix);
  const wns = await createTestNamespace(cluster.client, `${prefix}-wl`);
  await createPatientRunner(ns.name, wns.name);
  const operator = await startChaosOperator(cluster, {
    name: `${prefix}-op`,
    namespace: ns.name,
    workloadNamespace: wns.name,
    env,
  });
  await waitForRunnerReady(cluster.client, ns.name, 'local');
  return { ns, wns, operator };
}

async function createCr(
  name: string,
  annotations: Record<string, string>,
  namespace: string,
): Promise<void> {
  const api = cluster.client.resource<Workload>(AGENT_WORKLOADS);
  await retrying(
    async () => {
      try {
        await api.create(namespace, workloadManifest(name, {}, annotations) as unknown as Workload);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err; // an earlier attempt went through
      }
    },
    transientKubeError,
    180_000,
  );
}

test(`watches expired by an etcd compaction (410 Gone) are relisted and the operator keeps going`, async () => {
  // The operator reaches the API server through a proxy, so its watches can be cut while the
  // cluster moves on: workloads are created and deleted behind its back, etcd is compacted
  // and the API server's watch cache restarted, so the resource versions it resumes from are gone.
  const server = /server:\s*https:\/\/127\.0\.0\.1:(\d+)/.exec(
    await readFile(cluster.kubeconfig, 'utf8'),
  );
  const proxy: TcpProxy = await startTcpProxy(Number(server?.[1]), 'https');
  const kubeconfig = path.join(cluster.dir, 'kubeconfig-via-proxy');
  await writeFile(
    kubeconfig,
    (await readFile(cluster.kubeconfig, 'utf8')).replace(/server:.*/, `server: ${proxy.url}`),
  );
  const viaProxy = { ...cluster, kubeconfig };
  const ns = await createTestNamespace(cluster.client, 'chaos-gone');
  const wns = await createTestNamespace(cluster.client, 'chaos-gone-wl');
  await createPatientRunner(ns.name, wns.name);
  const operator = await startChaosOperator(viaProxy, {
    name: 'chaos-gone-op',
    namespace: ns.name,
    workloadNamespace: wns.name,
  });
  await waitForRunnerReady(cluster.client, ns.name, 'local');
  const expected = new Map<string, Expected>();
  try {
    for (let i = 0; i < COMPACTION_WORKLOADS / 2; i++) {
      await createCr(`before-${i}`, {}, wns.name);
      expected.set(`before-${i}`, { phase: 'Running' });
    }
    await waitForInvariants(cluster.client, wns.name, expected, 60_000);

    await proxy.cut();
    const api = cluster.client.resource<Workload>(AGENT_WORKLOADS);
    // Behind its back: a deletion (the finalizer waits for the operator) and new workloads.
    await api.delete(wns.name, 'before-0');
    expected.delete('before-0');
    for (let i = 0; i < COMPACTION_WORKLOADS / 2; i++) {
      await createCr(`during-${i}`, {}, wns.name);
      expected.set(`during-${i}`, { phase: 'Running' });
    }
    const revision = await cluster.compactEtcd();
    await cluster.restartComponent('kube-apiserver', 0);
    // kube-scheduler resumes its own watches after a backoff that can exceed a minute; it
    // is not under test, so it starts afresh (same command line) instead of being waited for.
    await cluster.restartComponent('kube-scheduler', 0);
    await proxy.restore();

    const relisted = await operator.waitForLog(
      (l) => l.msg === 'watch expired (410 Gone); relisting' && l.resource === 'agentworkloads',
      'a relist of agentworkloads after 410 Gone',
      90_000,
    );
    // Workloads created after the compaction converge too.
    for (let i = 0; i < COMPACTION_WORKLOADS / 2; i++) {
      await createCr(`after-${i}`, {}, wns.name);
      expected.set(`after-${i}`, { phase: 'Running' });
    }
    const { ms } = await waitForInvariants(cluster.client, wns.name, expected, 120_000);
    const gone = operator.logs().filter((l) => l.msg === 'watch expired (410 Gone); relisting');
    console.log(
      `chaos compaction: etcd compacted at revision ${revision}; ${gone.length} watches relisted after 410 ` +
        `(${[...new Set(gone.map((l) => String(l.resource)))].join(', ')}); converged ${ms} ms after the last creation`,
    );
    expect(relisted).toBeDefined();
    expect(
      await api.get(wns.name, 'before-0').then(
        () => 'exists',
        (err: unknown) => (isNotFound(err) ? 'gone' : String(err)),
      ),
    ).toBe('gone');
  } finally {
    await operator.stop();
    await proxy.close();
    await ns.cleanup();
    await wns.cleanup();
  }
});

test(`kube-apiserver and etcd SIGKILLed and restarted while ${WORKLOADS} workloads are created: every workload reaches its true phase, no duplicates, no orphans`, async () => {
  const { ns, wns, operator } = await setUp('chaos-api');
  const client = grpcClient(operator.grpcPort);
  const expected = new Map<string, Expected>();
  let issued = 0;
  let retried = 0;
  const plan = Array.from({ length: WORKLOADS }, (_, i) => {
    const viaGrpc = random() < 0.75;
    // Workloads whose main container exits run 30 s first: start them in the first part.
    const scenarios = i < WORKLOADS * 0.6 ? SCENARIOS : SCENARIOS.slice(0, 1);
    return viaGrpc
      ? { kind: 'grpc' as const, id: randomUUID() }
      : {
          kind: 'cr' as const,
          name: `cr-${i}`,
          scenario: scenarios[Math.floor(random() * scenarios.length)]!,
        };
  });

  const t0 = Date.now();
  const creating = pool(plan, 3, async (item) => {
    issued++;
    if (item.kind === 'grpc') {
      const result = await startUntilAnswered(
        () => client as RunnerServiceClient,
        chaosStartRequest(item.id),
        240_000,
      );
      if (result.attempts > 1) retried++;
      expect([0, status.ALREADY_EXISTS]).toContain(result.code);
      expected.set(`workload-${item.id}`, { phase: 'Running' });
    } else {
      await createCr(item.name, item.scenario.annotations, wns.name);
      expected.set(item.name, item.scenario.expected);
    }
    await sleep(50 + random() * 100);
  });

  // The faults, each once a share of the creations has been issued (and while they go on).
  const faults: string[] = [];
  const at = async (share: number): Promise<void> => {
    while (issued < WORKLOADS * share && issued < WORKLOADS) await sleep(20);
  };
  const injecting = (async () => {
    await at(0.2);
    faults.push(`kube-apiserver killed after ${issued} issued`);
    await cluster.restartComponent('kube-apiserver', 2);
    await at(0.45);
    faults.push(`etcd killed after ${issued} issued`);
    await cluster.restartComponent('etcd', 2);
    await at(0.7);
    faults.push(`etcd and kube-apiserver killed together after ${issued} issued`);
    await Promise.all([
      cluster.restartComponent('etcd', 3),
      cluster.restartComponent('kube-apiserver', 3),
    ]);
  })();
  await Promise.all([creating, injecting]);
  const createdMs = Date.now() - t0;

  const { ms, state } = await waitForInvariants(cluster.client, wns.name, expected, 240_000);
  console.log(
    `chaos apiserver/etcd: ${WORKLOADS} workloads (${plan.filter((p) => p.kind === 'grpc').length} via gRPC, ` +
      `${retried} needed retries) created in ${createdMs} ms across faults [${faults.join('; ')}]; ` +
      `converged ${ms} ms after the last creation; ${state.pods.length} Pods, ${state.secrets.length} Secrets`,
  );
  expect(operator.running).toBe(true);
  client.close();
  await operator.stop();
  await ns.cleanup();
  await wns.cleanup();
});

test('the opt-in finalizer policy after a kube-apiserver restart: creates are refused with 503 only until the API server has the kind schema again, then carry the finalizer', async () => {
  // The reason the chart's policy is opt-in (README, "Status writes"): the API server applies a
  // MutatingAdmissionPolicy only with the kind's OpenAPI schema, which it learns by polling
  // its own /openapi/v3 every 5 s; until then it refuses the create whatever the failurePolicy.
  const wns = await createTestNamespace(cluster.client, 'chaos-fpol');
  const removePolicy = await installFinalizerPolicy(cluster.client, wns.name);
  const api = cluster.client.resource<Workload>(AGENT_WORKLOADS);
  const created: string[] = [];
  const create = async (name: string) => {
    const made = await api.create(wns.name, workloadManifest(name) as unknown as Workload);
    created.push(name);
    return made;
  };
  try {
    await cluster.restartComponent('kube-apiserver', 0);
    const healthy = Date.now();
    const refusals: string[] = [];
    let accepted: Workload | undefined;
    for (let i = 0; !accepted && Date.now() - healthy < 30_000; i++) {
      try {
        accepted = await create(`after-restart-${i}`);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.statusCode === 503)) throw err;
        refusals.push(err.message);
        await sleep(50);
      }
    }
    const windowMs = Date.now() - healthy;
    console.log(
      `finalizer policy after a kube-apiserver restart: ${refusals.length} creates refused with 503 ` +
        `for ${refusals.length ? windowMs : 0} ms after it was healthy`,
    );
    expect(accepted?.metadata.finalizers).toContain(WORKLOAD_FINALIZER);
    expect(refusals.filter((m) => !/Resource kind .*AgentWorkload not found/.test(m))).toEqual([]);
    // Once the schema is at hand the window is closed: no refusal follows.
    for (let i = 0; i < 20; i++) {
      const made = await create(`steady-${i}`);
      expect(made.metadata.finalizers).toContain(WORKLOAD_FINALIZER);
    }
  } finally {
    await removePolicy();
    await Promise.all(
      created.map((name) =>
        api.mergePatch(wns.name, name, { metadata: { finalizers: null } }).catch(() => undefined),
      ),
    );
    await wns.cleanup();
  }
});
