/**
 * Token mode without an existing Secret: the operator (not the chart) creates the gRPC
 * token Secret with a random token when it is missing, and never changes one that exists,
 * so the chart renders no secret material and GitOps renders stay identical.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { createTestNamespace, testKubeClient, type TestNamespace } from '../support/kube.ts';
import { startOperator, type OperatorProcess } from '../support/operator-process.ts';

type Secret = KubeObject & { data?: Record<string, string> };
const client = testKubeClient();
const secrets = client.resource<Secret>(SECRETS);
let ns: TestNamespace;
let wns: TestNamespace;
const operators: OperatorProcess[] = [];

beforeAll(async () => {
  ns = await createTestNamespace(client, 'it-token');
  wns = await createTestNamespace(client, 'it-token-wl');
});
afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop()));
  await ns?.cleanup();
  await wns?.cleanup();
});

function operatorEnv(secret: string, create: boolean): Record<string, string> {
  return {
    OPERATOR_NAMESPACE: ns.name,
    WORKLOAD_NAMESPACE: wns.name,
    LEADER_ELECTION: 'false',
    GRPC_AUTH_MODE: 'token',
    GRPC_TOKEN_SECRET: secret,
    GRPC_TOKEN_SECRET_CREATE: String(create),
  };
}

async function runOnce(name: string, secret: string, create: boolean): Promise<void> {
  const op = await startOperator({ name, env: operatorEnv(secret, create) });
  operators.push(op);
  await op.stop();
}

const tokenOf = async (name: string): Promise<string> =>
  Buffer.from((await secrets.get(ns.name, name)).data?.token ?? '', 'base64').toString();

test('creates a missing token Secret with a random token and keeps it across restarts', async () => {
  await runOnce('token-a', 'generated-token', true);
  const first = await tokenOf('generated-token');
  expect(first).toMatch(/^[0-9a-f]{64}$/);
  const created = await secrets.get(ns.name, 'generated-token');
  expect(created.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'k8s-runner' });

  await runOnce('token-b', 'generated-token', true);
  expect(await tokenOf('generated-token')).toBe(first);
});

test('never changes an existing token Secret', async () => {
  await secrets.create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'given-token', namespace: ns.name },
    data: { token: Buffer.from('orchestrator-token').toString('base64') },
  });
  await runOnce('token-c', 'given-token', true);
  expect(await tokenOf('given-token')).toBe('orchestrator-token');
});

test('creates nothing unless asked to', async () => {
  await runOnce('token-d', 'absent-token', false);
  await expect(secrets.get(ns.name, 'absent-token')).rejects.toMatchObject({ statusCode: 404 });
});
