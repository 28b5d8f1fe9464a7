/**
 * A workload the gRPC shim creates is reconciled by the controller of the same process
 * without waiting for the watch (the hand-off, src/main.ts): with every watch of
 * AgentWorkloads failing, StartWorkload still leads to the Pod. And the informer under it:
 * an object recorded ahead of its watch event is seen once, and the event is no change.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { StartWorkloadRequest } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { CONFIGMAPS, PODS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import type { RequestInfo } from '../support/api-fault-rules.ts';
import {
  createTestNamespace,
  eventually,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';

type ConfigMap = KubeObject & { data?: Record<string, string> };

const direct = KubeClient.fromEnvironment(process.env.KUBECONFIG);
let proxy: ApiFaultProxy;

beforeAll(async () => {
  proxy = await startApiFaultProxy();
});

let h: GrpcHarness | undefined;
let api: ProxyClient | undefined;

afterAll(async () => {
  if (api) api.rules = [];
  await h?.close();
  await proxy?.close();
  direct.close();
});

const watchOf = (plural: string) => (r: RequestInfo) => r.watch && r.path.endsWith(`/${plural}`);

test('an object recorded ahead of its watch event is seen at once, and the event is no change', async () => {
  const api = await proxy.addClient('informer');
  const kube = KubeClient.fromEnvironment(api.kubeconfig);
  const ns: TestNamespace = await createTestNamespace(direct, 'ahead');
  const configMaps = direct.resource<ConfigMap>(CONFIGMAPS);
  api.rules = [{ kind: 'status', code: 503, match: watchOf('configmaps') }];
  const informer = new Informer(kube.resource<ConfigMap>(CONFIGMAPS), {
    namespace: ns.name,
    logger: testLogger,
  });
  const seen: string[] = [];
  const mine = (o: ConfigMap): boolean => o.metadata?.name !== 'kube-root-ca.crt';
  informer.addHandler({
    onAdd: (o) => mine(o) && seen.push(`add:${o.metadata?.name}`),
    onUpdate: (_o, n) => mine(n) && seen.push(`update:${n.metadata?.name}:${n.data?.v}`),
    onDelete: (o) => mine(o) && seen.push(`delete:${o.metadata?.name}`),
  });
  try {
    informer.start();
    await informer.waitForSync();
    const manifest = (name: string) =>
      ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: '1' } }) as ConfigMap;
    const created = await configMaps.create(ns.name, manifest('own'));
    expect(informer.recordWrite(created)).toBe(true);
    expect(informer.get(ns.name, 'own')?.metadata?.resourceVersion).toBe(
      created.metadata?.resourceVersion,
    );
    expect(seen).toEqual(['add:own']);

    // The watch comes back and brings the ADDED of `own` (same version), then `next`'s.
    api.rules = [];
    await configMaps.create(ns.name, manifest('next'));
    await eventually(() => seen.includes('add:next'), { what: 'the watch to resume' });
    expect(seen).toEqual(['add:own', 'add:next']);
    expect(api.records.some((r) => r.watch && r.status === 200)).toBe(true);

    // A write older than what the watch brought since is refused; a deletion removes it.
    await configMaps.mergePatch(ns.name, 'own', { data: { v: '2' } });
    await eventually(() => seen.includes('update:own:2'), { what: 'the update' });
    expect(informer.recordWrite(created)).toBe(false);
    expect(informer.get(ns.name, 'own')?.data?.v).toBe('2');
    await configMaps.delete(ns.name, 'own');
    await eventually(() => seen.includes('delete:own'), { what: 'the deletion' });
    expect(informer.get(ns.name, 'own')).toBeUndefined();
  } finally {
    await informer.stop();
    kube.close();
    await ns.cleanup();
  }
}, 60_000);

test('StartWorkload leads to the Pod while no watch of AgentWorkloads gets through', async () => {
  const operator = (api = await proxy.addClient('operator'));
  // From the first watch on: the caches list, but never hear of an AgentWorkload by watch.
  operator.rules = [{ kind: 'status', code: 503, match: watchOf('agentworkloads') }];
  const harness = (h = await startHarness({ prefix: 'handoff', kubeconfig: operator.kubeconfig }));
  const id = randomUUID();
  const answer = await call(
    harness.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: { name: 'main', image: 'registry.example.invalid/agent:1' },
    }),
  );
  const podName = answer.containers?.main ?? '';
  const namespace = harness.ns.name;
  await eventually(() => direct.resource<KubeObject>(PODS).get(namespace, podName), {
    timeoutMs: 20_000,
    what: 'the Pod of the started workload',
  });
  const watches = operator.records.filter(watchOf('agentworkloads'));
  expect(watches.length).toBeGreaterThan(0);
  expect(watches.every((r) => r.outcome === 'status')).toBe(true);
}, 60_000);
