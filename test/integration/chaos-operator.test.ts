/**
 * Faults of the operator itself and of the platform gateway, on a private cluster:
 * - the operator SIGKILLed at random moments during creations, stops and removals (through
 *   its gRPC shim and as CRs), and restarted each time;
 * - the platform gateway unreachable for a while: reconciling goes on, the Runner stays
 *   Ready, and the state reports catch up once it is back.
 * Sizes: CHAOS_OPERATOR_OPS (default 60; the size is 500), CHAOS_GATEWAY_DOWN_SECONDS
 * (default 15; "minutes" in the issue). CHAOS_SEED replays a run.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { Metadata, status } from '@grpc/grpc-js';
import type { Runner } from '../../src/api/runner.ts';
import {
  InspectWorkloadRequest,
  StopWorkloadRequest,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { WorkloadStatus } from '../../src/gen/agynio/api/runners/v1/runners.ts';
import { isAlreadyExists, isNotFound } from '../../src/kube/errors.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  chaosSeed,
  chaosStartRequest,
  freePort,
  grpcClient,
  pool,
  removeUntilAnswered,
  retrying,
  seededRandom,
  sizeFromEnv,
  sleep,
  startChaosOperator,
  startPrivateCluster,
  startTcpProxy,
  startUntilAnswered,
  transientGrpcError,
  transientKubeError,
  waitForInvariants,
  type Expected,
  type PrivateCluster,
  type Workload,
} from '../support/chaos.ts';
import { createTestNamespace, eventually, testLogger } from '../support/kube.ts';
import {
  createRunner,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { fastRunner, workloadManifest, SIM_ANNOTATION_PREFIXES } from '../support/workloads.ts';

jest.setTimeout(600_000);

const OPS = sizeFromEnv('CHAOS_OPERATOR_OPS', 60);
/** One SIGKILL per 20 operations, at least 3. */
const KILLS = sizeFromEnv('CHAOS_OPERATOR_KILLS', Math.max(3, Math.round(OPS / 20)));
const GATEWAY_DOWN_SECONDS = sizeFromEnv('CHAOS_GATEWAY_DOWN_SECONDS', 15);
const seed = chaosSeed();
const random = seededRandom(seed);
const TOKEN = `chaos-op-${randomUUID()}`;

let cluster: PrivateCluster;
let gateway: TestGateway;

beforeAll(async () => {
  const started = Date.now();
  cluster = await startPrivateCluster();
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: '{"runner_id":"chaos-op"}',
        serviceName: 'chaos.agyn',
        identityId: 'chaos-op',
      },
    },
  });
  console.log(
    `chaos-operator: private cluster in ${cluster.dir} up after ${Date.now() - started} ms; seed ${seed}`,
  );
}, 600_000);

afterAll(async () => {
  await gateway?.stop();
  await cluster?.down();
});

const workloadsApi = () => cluster.client.resource<Workload>(AGENT_WORKLOADS);

async function createCr(namespace: string, name: string): Promise<void> {
  await retrying(async () => {
    try {
      await workloadsApi().create(namespace, workloadManifest(name) as unknown as Workload);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }, transientKubeError);
}

async function deleteCr(namespace: string, name: string): Promise<void> {
  await retrying(async () => {
    try {
      await workloadsApi().delete(namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }, transientKubeError);
}

test(`the operator SIGKILLed at random moments during ${OPS} creations, stops and removals: the same invariants hold`, async () => {
  const ns = await createTestNamespace(cluster.client, 'chaos-kill');
  const wns = await createTestNamespace(cluster.client, 'chaos-kill-wl');
  await createRunner(cluster.client, ns.name, 'local', gateway.url, TOKEN, wns.name);
  const grpcPort = await freePort();
  const start = (n: number) =>
    startChaosOperator(cluster, {
      name: `chaos-kill-op-${n}`,
      namespace: ns.name,
      workloadNamespace: wns.name,
      grpcPort,
    });
  let operator: OperatorProcess = await start(0);
  await waitForRunnerReady(cluster.client, ns.name, 'local');
  const client = grpcClient(grpcPort);
  // A workload no operation touches: a restarted operator must never deny that it exists.
  const sentinel = randomUUID();
  await startUntilAnswered(() => client, chaosStartRequest(sentinel));
  const firstAnswers: string[] = [];
  /** The first answer of InspectWorkload(sentinel) that is not "the operator is away". */
  const firstAnswer = async (): Promise<string> => {
    for (;;) {
      const code = await new Promise<number>((resolve) =>
        client.inspectWorkload(
          InspectWorkloadRequest.fromPartial({ workloadId: sentinel }),
          new Metadata(),
          { deadline: Date.now() + 2_000 },
          (err) => resolve(err ? (err.code as number) : 0),
        ),
      );
      if (code !== status.UNAVAILABLE && code !== status.DEADLINE_EXCEEDED)
        return status[code] ?? String(code);
      await sleep(5);
    }
  };

  const expected = new Map<string, Expected>([[`workload-${sentinel}`, { phase: 'Running' }]]);
  const viaGrpc: string[] = []; // workload ids started through the shim and not removed
  const asCr: string[] = [];
  const take = <T>(list: T[]): T | undefined =>
    list.length ? list.splice(Math.floor(random() * list.length), 1)[0] : undefined;
  const counts = { startGrpc: 0, createCr: 0, stopGrpc: 0, removeGrpc: 0, deleteCr: 0 };

  const ops = Array.from({ length: OPS }, () => random());
  let done = 0;
  const operation = async (r: number): Promise<void> => {
    await sleep(random() * 100);
    if (r < 0.4 || expected.size < 4) {
      const id = randomUUID();
      const result = await startUntilAnswered(() => client, chaosStartRequest(id), 240_000);
      expect([0, status.ALREADY_EXISTS]).toContain(result.code);
      expected.set(`workload-${id}`, { phase: 'Running' });
      viaGrpc.push(id);
      counts.startGrpc++;
    } else if (r < 0.55) {
      const name = `cr-${randomUUID().slice(0, 8)}`;
      await createCr(wns.name, name);
      expected.set(name, { phase: 'Running' });
      asCr.push(name);
      counts.createCr++;
    } else if (r < 0.65) {
      const id = take(viaGrpc);
      if (id === undefined) return;
      await retrying(
        () =>
          new Promise<void>((resolve, reject) =>
            client.stopWorkload(
              StopWorkloadRequest.fromPartial({ workloadId: id, timeoutSec: 1 }),
              new Metadata(),
              { deadline: Date.now() + 20_000 },
              // NOT_FOUND: an earlier attempt that seemed to fail did stop it.
              (err) => (err && err.code !== status.NOT_FOUND ? reject(err) : resolve()),
            ),
          ),
        transientGrpcError,
        240_000,
      );
      // Stop is deletion, as upstream.
      expected.delete(`workload-${id}`);
      counts.stopGrpc++;
    } else if (r < 0.85) {
      const id = take(viaGrpc);
      if (id === undefined) return;
      const result = await removeUntilAnswered(() => client, id, 240_000);
      expect([0, status.NOT_FOUND]).toContain(result.code);
      expected.delete(`workload-${id}`);
      counts.removeGrpc++;
    } else {
      const name = take(asCr);
      if (name === undefined) return;
      await deleteCr(wns.name, name);
      expected.delete(name);
      counts.deleteCr++;
    }
  };
  const working = pool(ops, 3, async (r) => {
    try {
      await operation(r);
    } finally {
      done++;
    }
  });

  // SIGKILL at random moments while the operations go on (after a random number of them, and
  // a random delay into the next), restarting the operator each time.
  const killAt = Array.from({ length: KILLS }, () =>
    Math.floor(OPS * (0.05 + 0.9 * random())),
  ).sort((x, y) => x - y);
  let kills = 0;
  const killing = (async () => {
    for (const at of killAt) {
      while (done < at) await sleep(10);
      await sleep(random() * 300);
      await operator.stop('SIGKILL');
      kills++;
      await sleep(random() * 1_000);
      const probing = firstAnswer();
      operator = await start(kills);
      firstAnswers.push(await probing);
    }
  })();
  const t0 = Date.now();
  await Promise.all([working, killing]);
  const opsMs = Date.now() - t0;

  const { ms, state } = await waitForInvariants(cluster.client, wns.name, expected, 180_000);
  console.log(
    `chaos operator kill: ${done} operations ${JSON.stringify(counts)} in ${opsMs} ms with ${kills} SIGKILLs; ` +
      `converged ${ms} ms later: ${state.workloads.length} workloads, ${state.pods.length} Pods, ${state.secrets.length} Secrets`,
  );
  expect(kills).toBe(KILLS);
  // Served from synced caches only: never NOT_FOUND for a workload that exists.
  expect(firstAnswers).toEqual(firstAnswers.map(() => 'OK'));
  client.close();
  await operator.stop();
  await ns.cleanup();
  await wns.cleanup();
});

const REPORTED: Record<number, string> = {
  [WorkloadStatus.WORKLOAD_STATUS_RUNNING]: 'Running',
  [WorkloadStatus.WORKLOAD_STATUS_STARTING]: 'Starting',
  [WorkloadStatus.WORKLOAD_STATUS_STOPPING]: 'Stopping',
  [WorkloadStatus.WORKLOAD_STATUS_STOPPED]: 'Stopped',
  [WorkloadStatus.WORKLOAD_STATUS_FAILED]: 'Failed',
};

test(`the gateway unreachable for ${GATEWAY_DOWN_SECONDS} s: reconciling goes on, the Runner stays Ready, state reports catch up`, async () => {
  const proxy = await startTcpProxy(gateway.port);
  const ns = await createTestNamespace(cluster.client, 'chaos-gw');
  const wns = await createTestNamespace(cluster.client, 'chaos-gw-wl');
  await createRunner(cluster.client, ns.name, 'local', proxy.url, TOKEN, wns.name);
  const operator = await startChaosOperator(cluster, {
    name: 'chaos-gw-op',
    namespace: ns.name,
    workloadNamespace: wns.name,
  });
  try {
    await waitForRunnerReady(cluster.client, ns.name, 'local');
    const expected = new Map<string, Expected>();
    for (let i = 0; i < 4; i++) {
      await createCr(wns.name, `before-${i}`);
      expected.set(`before-${i}`, { phase: 'Running' });
    }
    await waitForInvariants(cluster.client, wns.name, expected, 60_000);

    /** The phase the gateway last heard for each workload id. */
    const lastReported = (): Map<string, string> => {
      const seen = new Map<string, string>();
      for (const r of gateway.requests.reportWorkloadState)
        seen.set(r.workloadId, REPORTED[r.status] ?? String(r.status));
      return seen;
    };
    /** Workloads whose last report differs from their phase (the gateway is behind). */
    const behind = async (): Promise<string[]> => {
      const reported = lastReported();
      const list = await workloadsApi().list(wns.name);
      return list.items
        .filter((w) => expected.has(w.metadata?.name ?? ''))
        .filter((w) => reported.get(w.metadata?.uid ?? '') !== w.status?.phase)
        .map(
          (w) =>
            `${w.metadata?.name}: ${w.status?.phase} reported ${reported.get(w.metadata?.uid ?? '') ?? 'never'}`,
        );
    };
    await eventually(async () => (await behind()).length === 0, {
      timeoutMs: 30_000,
      what: 'reports of the first workloads',
    });

    await proxy.cut();
    const cutAt = Date.now();
    const heardBefore = gateway.count('reportWorkloadState');
    // Work goes on while the gateway is away: new workloads, a stop, a deletion.
    for (let i = 0; i < 6; i++) {
      await createCr(wns.name, `during-${i}`);
      expected.set(`during-${i}`, { phase: 'Running' });
    }
    await workloadsApi().mergePatch(wns.name, 'before-1', { spec: { stopped: true } });
    expected.set('before-1', { phase: 'Stopped' });
    await deleteCr(wns.name, 'before-2');
    expected.delete('before-2');
    const { ms: reconciledMs } = await waitForInvariants(
      cluster.client,
      wns.name,
      expected,
      60_000,
    );

    const runnerReady = async () =>
      (
        await cluster.client.resource<Runner>(RUNNERS).get(ns.name, 'local')
      ).status?.conditions?.find((c) => c.type === 'Ready');
    const readyDuring: string[] = [];
    while (Date.now() - cutAt < GATEWAY_DOWN_SECONDS * 1000) {
      const ready = await runnerReady();
      readyDuring.push(`${ready?.status}/${ready?.reason}`);
      // Ready, or degraded with a reason that names the gateway.
      expect(ready?.status === 'True' || /Gateway/.test(ready?.reason ?? '')).toBe(true);
      await sleep(1_000);
    }
    expect(gateway.count('reportWorkloadState')).toBe(heardBefore);
    expect((await behind()).length).toBeGreaterThan(0);

    await proxy.restore();
    const restoredAt = Date.now();
    await eventually(async () => (await behind()).length === 0, {
      timeoutMs: 150_000,
      intervalMs: 250,
      what: 'the state reports to catch up',
    }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; still behind: ${(await behind()).join('; ')}`);
    });
    const caughtUpMs = Date.now() - restoredAt;
    const ready = await runnerReady();
    console.log(
      `chaos gateway: down ${GATEWAY_DOWN_SECONDS} s; workloads reconciled ${reconciledMs} ms after the changes while it was down; ` +
        `Runner Ready during the outage: ${[...new Set(readyDuring)].join(', ')}; ` +
        `reports caught up ${caughtUpMs} ms after it returned (${gateway.count('reportWorkloadState') - heardBefore} reports)`,
    );
    expect(ready?.status).toBe('True');
    expect(operator.running).toBe(true);
  } finally {
    await operator.stop();
    await proxy.close();
    await ns.cleanup();
    await wns.cleanup();
  }
});

test('a start that died between its Secrets and its AgentWorkload leaves nothing behind', async () => {
  type Secret = KubeObject & { data?: Record<string, string>; type?: string };
  const secretsApi = cluster.client.resource<Secret>(SECRETS);
  /** The Secrets a StartWorkload writes before its AgentWorkload, as a dead one left them. */
  const leftovers = async (namespace: string, id: string): Promise<void> => {
    for (const suffix of ['pull', 'inline-files']) {
      await secretsApi.create(namespace, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: `workload-${id}-${suffix}`,
          labels: { 'app.kubernetes.io/managed-by': 'k8s-runner', 'agyn.io/workload-id': id },
        },
        data: { stale: Buffer.from('from the start that died').toString('base64') },
      });
    }
  };
  const names = async (namespace: string): Promise<string[]> =>
    (await secretsApi.list(namespace)).items.map((s) => s.metadata?.name ?? '').sort();

  // Retried by the client: the same start goes through, replacing what the dead one left.
  const ns = await createTestNamespace(cluster.client, 'chaos-partial');
  const wns = await createTestNamespace(cluster.client, 'chaos-partial-wl');
  await createRunner(cluster.client, ns.name, 'local', gateway.url, TOKEN, wns.name);
  const operator = await startChaosOperator(cluster, {
    name: 'chaos-partial-op',
    namespace: ns.name,
    workloadNamespace: wns.name,
  });
  const client = grpcClient(operator.grpcPort);
  // A second namespace for an in-process controller that collects orphans after 1.5 s
  // (the operator waits a minute): the start is never retried there.
  const other = await createTestNamespace(cluster.client, 'chaos-orphans');
  const controller = new WorkloadController({
    client: cluster.client,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: other.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
    orphanSecretGraceMs: 1_500,
  });
  try {
    await waitForRunnerReady(cluster.client, ns.name, 'local');
    const retried = randomUUID();
    await leftovers(wns.name, retried);
    const result = await startUntilAnswered(() => client, chaosStartRequest(retried));
    expect(result.code).toBe(0);
    await waitForInvariants(
      cluster.client,
      wns.name,
      new Map([[`workload-${retried}`, { phase: 'Running' }]]),
      60_000,
    );
    const pull = await secretsApi.get(wns.name, `workload-${retried}-pull`);
    expect(Object.keys(pull.data ?? {})).toEqual(['.dockerconfigjson']);

    await controller.startInformers();
    controller.start();
    const abandoned = randomUUID();
    await leftovers(other.name, abandoned);
    // Not the operator's to collect: no workload id, or owned by something else.
    await secretsApi.create(other.name, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'users-own', labels: { 'app.kubernetes.io/managed-by': 'k8s-runner' } },
    });
    // A workload stopped before it ever had a Pod still adopts its Secrets, and takes them along.
    const stopped = randomUUID();
    await leftovers(other.name, stopped);
    await workloadsApi().create(other.name, {
      ...workloadManifest(`workload-${stopped}`, {
        workloadId: stopped,
        stopped: true,
        imagePullSecretRef: { name: `workload-${stopped}-pull` },
      }),
    } as unknown as Workload);
    await eventually(
      async () => {
        const s = await secretsApi.get(other.name, `workload-${stopped}-pull`);
        return s.metadata?.ownerReferences?.some((r) => r.kind === 'AgentWorkload');
      },
      { what: 'the stopped workload adopting its pull Secret' },
    );
    await eventually(
      async () => !(await names(other.name)).includes(`workload-${abandoned}-pull`),
      {
        what: 'the abandoned Secrets collected',
      },
    );
    await workloadsApi().delete(other.name, `workload-${stopped}`);
    await eventually(async () => (await names(other.name)).join() === 'users-own', {
      timeoutMs: 30_000,
      what: 'only the Secret that is not a workload’s left',
    });
    client.close();
  } finally {
    await controller.stop();
    await controller.stopInformers();
    await operator.stop();
    await ns.cleanup();
    await wns.cleanup();
    await other.cleanup();
  }
});
