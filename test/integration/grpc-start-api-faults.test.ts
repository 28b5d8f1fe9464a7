/**
 * StartWorkload finding a Secret a dead start left behind, while the API server fails the
 * reads that decide whether it is a leftover: the answer is a retryable error, never
 * ALREADY_EXISTS (which would tell the caller a workload exists that was never created).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { status, type ServiceError } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../../src/api/common.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  startApiFaultProxy,
  type ApiFaultProxy,
  type ProxyClient,
} from '../support/api-fault-proxy.ts';
import { chaosStartRequest } from '../support/chaos.ts';

let proxy: ApiFaultProxy;
let api: ProxyClient;
let shimKube: KubeClient;
let h: GrpcHarness;

beforeAll(async () => {
  proxy = await startApiFaultProxy();
  api = await proxy.addClient('shim');
  shimKube = KubeClient.fromEnvironment(api.kubeconfig);
  h = await startHarness({ prefix: 'start-faults', serverKube: shimKube, withController: false });
});

afterAll(async () => {
  await h?.close();
  shimKube?.close();
  await proxy?.close();
});

/** The pull Secret a StartWorkload of `id` wrote before it died (no owner, no workload). */
async function leftover(id: string): Promise<void> {
  await h.kube.resource<KubeObject>(SECRETS).create(h.ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `workload-${id}-pull`,
      labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.workloadId]: id },
    },
  } as KubeObject);
}

const codeOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (err: unknown) => status[(err as ServiceError).code] ?? 'unknown',
  );

test.each([
  ['the leftover Secret', (id: string) => `/secrets/workload-${id}-pull`],
  ['the AgentWorkload', (id: string) => `/agentworkloads/workload-${id}`],
])(
  'reads of %s failing: a retryable error, and the retry starts it',
  async (_what, path) => {
    const id = randomUUID();
    await leftover(id);
    api.rules = [
      { kind: 'status', code: 503, match: (r) => r.method === 'GET' && r.path.endsWith(path(id)) },
    ];
    const first = await codeOf(call(h.client, 'startWorkload', chaosStartRequest(id)));
    expect(first).not.toBe('ALREADY_EXISTS');
    expect(['UNAVAILABLE', 'INTERNAL']).toContain(first);
    api.rules = [];
    expect(await codeOf(call(h.client, 'startWorkload', chaosStartRequest(id)))).toBe('OK');
  },
  60_000,
);
