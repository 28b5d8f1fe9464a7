/**
 * The API fault proxy itself, in front of the shared test cluster's kube-apiserver: it
 * forwards faithfully, injects each fault it promises, partitions one client without
 * touching another, and counts what each client sent.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { CONFIGMAPS } from '../../src/kube/resources.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';

type ConfigMap = KubeObject & { data?: Record<string, string> };

const admin = testKubeClient();
let proxy: ApiFaultProxy;
let ns: TestNamespace;
let a: ProxyClient;
let b: ProxyClient;
let kubeA: KubeClient;
let kubeB: KubeClient;

beforeAll(async () => {
  ns = await createTestNamespace(admin, 'fault-proxy');
  proxy = await startApiFaultProxy();
  a = await proxy.addClient('a');
  b = await proxy.addClient('b');
  kubeA = KubeClient.fromEnvironment(a.kubeconfig);
  kubeB = KubeClient.fromEnvironment(b.kubeconfig);
});

afterAll(async () => {
  kubeA?.close();
  kubeB?.close();
  await proxy?.close();
  await ns?.cleanup();
  admin.close();
});

const configMaps = (kube: KubeClient) => kube.resource<ConfigMap>(CONFIGMAPS);
const cm = (name: string): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name },
  data: { k: 'v' },
});

/** The body of a watch until the proxy or the server ends it: events and how it ended. */
async function drain(res: IncomingMessage): Promise<{ text: string; aborted: boolean }> {
  let text = '';
  try {
    for await (const chunk of res) text += String(chunk);
    return { text, aborted: false };
  } catch {
    return { text, aborted: true };
  }
}

test('forwards reads, writes and watches through re-originated TLS, and counts them per client', async () => {
  const from = Date.now();
  await configMaps(kubeA).create(ns.name, cm('counted'));
  expect((await configMaps(kubeA).get(ns.name, 'counted')).data).toEqual({ k: 'v' });
  await configMaps(kubeB).list(ns.name);
  const writes = a.writesSince(from);
  expect(writes.map((w) => `${w.method} ${w.path} ${w.status}`)).toEqual([
    `POST /api/v1/namespaces/${ns.name}/configmaps 201`,
  ]);
  expect(b.writesSince(from)).toEqual([]);
  expect(a.requestsPerSecond(from).reduce((x, y) => x + y, 0)).toBe(2);
  expect(b.requestsPerSecond(from).reduce((x, y) => x + y, 0)).toBe(1);
});

test('429 with Retry-After: surfaced for a create, retried for a read', async () => {
  a.rules = [{ kind: 'status', code: 429, retryAfterSeconds: 1, match: (r) => r.write }];
  const err = await configMaps(kubeA)
    .create(ns.name, cm('throttled'))
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(KubeApiError);
  expect((err as KubeApiError).statusCode).toBe(429);
  expect((err as KubeApiError).retryAfterSeconds).toBe(1);
  await expect(admin.resource(CONFIGMAPS).get(ns.name, 'throttled')).rejects.toMatchObject({
    statusCode: 404,
  });

  let throttled = 0;
  a.rules = [
    { kind: 'status', code: 429, retryAfterSeconds: 0, match: (r) => !r.write && ++throttled <= 2 },
  ];
  const from = Date.now();
  await configMaps(kubeA).get(ns.name, 'counted');
  expect(a.records.filter((r) => r.at >= from).map((r) => r.status)).toEqual([429, 429, 200]);
  a.rules = [];
});

test('500 and 503 are injected; the client retries a read after them', async () => {
  const codes = [500, 503] as const;
  let n = 0;
  a.rules = codes.map((code, i) => ({
    kind: 'status' as const,
    code,
    match: () => n === i && ++n > 0,
  }));
  const from = Date.now();
  await configMaps(kubeA).get(ns.name, 'counted');
  expect(a.records.filter((r) => r.at >= from).map((r) => `${r.outcome}/${r.status}`)).toEqual([
    'status/500',
    'status/503',
    'forwarded/200',
  ]);
  a.rules = [];
});

test('a watch reset in the middle and a watch that ends at once', async () => {
  const path = configMaps(kubeA).path(ns.name);
  a.rules = [{ kind: 'resetWatch', minMs: 300, maxMs: 300 }];
  const res = await kubeA.stream(path, { query: { watch: 'true', resourceVersion: '0' } });
  const reset = await drain(res);
  expect(reset.aborted).toBe(true);
  // The events up to the reset arrived: the initial ADDED of the existing ConfigMap.
  expect(reset.text).toContain('"name":"counted"');

  a.rules = [{ kind: 'endWatch' }];
  const ended = await drain(
    await kubeA.stream(path, { query: { watch: 'true', resourceVersion: '0' } }),
  );
  expect(ended).toEqual({ text: '', aborted: false });
  expect(a.records.at(-1)).toMatchObject({ watch: true, outcome: 'endWatch', status: 200 });
  a.rules = [];
});

test("a lagging watch: every event arrives the rule's delay late, in order", async () => {
  const path = configMaps(kubeA).path(ns.name);
  a.rules = [{ kind: 'lagWatch', ms: 400 }];
  const res = await kubeA.stream(path, { query: { watch: 'true' } });
  const arrivals: { at: number; text: string }[] = [];
  res.on('data', (chunk: Buffer) => arrivals.push({ at: Date.now(), text: String(chunk) }));
  const names = ['lag-1', 'lag-2', 'lag-3'];
  const written: number[] = [];
  for (const name of names) {
    await configMaps(kubeB).create(ns.name, cm(name));
    written.push(Date.now());
  }
  await eventually(
    () =>
      arrivals
        .map((x) => x.text)
        .join('')
        .includes('"name":"lag-3"'),
    {
      what: 'the lagged events',
    },
  );
  res.destroy();
  const text = arrivals.map((x) => x.text).join('');
  const positions = names.map((n) => text.indexOf(`"name":"${n}"`));
  expect(positions[0]).toBeGreaterThanOrEqual(0);
  expect(positions).toEqual([...positions].sort((x, y) => x - y));
  const first = arrivals.find((x) => x.text.includes('"name":"lag-1"'))!;
  expect(first.at - written[0]!).toBeGreaterThanOrEqual(350);
  expect(a.records.at(-1)).toMatchObject({ watch: true, outcome: 'forwarded' });
  a.rules = [];
});

test('slow responses: the request is held before it is forwarded', async () => {
  a.rules = [{ kind: 'delay', ms: 400, match: (r) => r.path.endsWith('/configmaps/counted') }];
  await configMaps(kubeA).get(ns.name, 'counted');
  const last = a.records.at(-1)!;
  expect(last.forwardedAt! - last.at).toBeGreaterThanOrEqual(400);
  a.rules = [];
});

test('a reset partition cuts one client, its watches too, and leaves the other alone', async () => {
  const path = configMaps(kubeA).path(ns.name);
  const watch = drain(await kubeA.stream(path, { query: { watch: 'true' } }));
  a.partition('reset');
  expect((await watch).aborted).toBe(true);
  await expect(configMaps(kubeA).get(ns.name, 'counted')).rejects.toMatchObject({
    reason: 'NetworkError',
  });
  expect(a.records.at(-1)?.outcome).toBe('partitioned');
  await configMaps(kubeB).get(ns.name, 'counted');
  a.heal();
  await configMaps(kubeA).get(ns.name, 'counted');
});

test('a blackhole partition holds requests: forwarded when it heals if the client still waits, else dropped', async () => {
  a.partition('blackhole');
  const held = configMaps(kubeA).create(ns.name, cm('held'));
  const abort = new AbortController();
  const gaveUp = kubeA
    .request('POST', configMaps(kubeA).path(ns.name), {
      body: cm('abandoned'),
      signal: abort.signal,
    })
    .catch((e: unknown) => e);
  await eventually(() => a.records.filter((r) => r.write && r.outcome === 'pending').length === 2, {
    what: 'both creates held at the proxy',
  });
  abort.abort();
  await gaveUp;
  await eventually(() => a.records.some((r) => r.outcome === 'dropped'), {
    what: 'the proxy to see the abandoned create closed',
  });
  // Nothing reached the API server while partitioned.
  await expect(admin.resource(CONFIGMAPS).get(ns.name, 'held')).rejects.toMatchObject({
    statusCode: 404,
  });
  const healedAt = Date.now();
  a.heal();
  expect((await held).metadata?.name).toBe('held');
  expect(a.writesSince(healedAt).map((r) => r.path)).toEqual([
    `/api/v1/namespaces/${ns.name}/configmaps`,
  ]);
  expect(a.records.filter((r) => r.outcome === 'dropped')).toHaveLength(1);
  await expect(admin.resource(CONFIGMAPS).get(ns.name, 'abandoned')).rejects.toMatchObject({
    statusCode: 404,
  });
});
