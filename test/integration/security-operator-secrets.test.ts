/**
 * The operator keeps in memory only the Secrets of its namespace it needs: Runner tokens
 * (agyn.io/runner-token: "true"), gateway CAs (agyn.io/gateway-ca: "true"), the Runners'
 * identity Secrets (its own labels) and the gRPC token Secret by name. Another Secret of the
 * namespace — a database password, a Helm release — never enters its caches.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { InformerCache } from '../../src/kube/cache.ts';
import { operatorSecretCache } from '../../src/runner/operator-secrets.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';

type Secret = ISecret & KubeObject;

const client = testKubeClient();
let ns: TestNamespace;

async function putSecret(name: string, labels: Record<string, string> = {}): Promise<void> {
  await client.resource<Secret>(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, labels },
    data: { value: Buffer.from(`value of ${name}`).toString('base64') },
  } as Secret);
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'op-secrets');
  // Created first: a cache that held them would hold them before the labelled ones below.
  await putSecret('database-password');
  await putSecret('sh.helm.release.v1.other.v1', { owner: 'helm' });
  await putSecret('looks-managed', { 'app.kubernetes.io/managed-by': 'k8s-runner' });
  await putSecret('grpc-token', { 'app.kubernetes.io/managed-by': 'k8s-runner' });
  await putSecret('runner-token', { 'agyn.io/runner-token': 'true' });
  await putSecret('gateway-ca', { 'agyn.io/gateway-ca': 'true' });
  await putSecret('r1-identity', {
    'app.kubernetes.io/managed-by': 'k8s-runner',
    'agyn.io/runner': 'r1',
  });
});

afterAll(async () => {
  await ns.cleanup();
  client.close();
});

describe('the operator namespace’s Secrets in the operator’s memory', () => {
  test('the Runner controller caches Runner tokens, gateway CAs and identities, and no other Secret', async () => {
    const controller = new RunnerController({ client, namespace: ns.name, logger: testLogger });
    await controller.start();
    try {
      const cache = controller.secretInformer;
      await eventually(() => cache.get(ns.name, 'r1-identity'), { what: 'the identity cached' });
      const cached = [
        'database-password',
        'sh.helm.release.v1.other.v1',
        'looks-managed',
        'grpc-token',
        'runner-token',
        'gateway-ca',
        'r1-identity',
      ].filter((name) => cache.get(ns.name, name) !== undefined);
      expect(cached).toEqual(['runner-token', 'gateway-ca', 'r1-identity']);
    } finally {
      await controller.stop();
    }
  });

  test('the operator’s cache adds the gRPC token Secret by its name, and still no other Secret', async () => {
    const cache = operatorSecretCache<Secret>(
      new InformerCache(client, testLogger),
      ns.name,
      'grpc-token',
    );
    cache.start();
    try {
      await cache.waitForSync();
      expect(cache.get(ns.name, 'grpc-token')?.metadata?.name).toBe('grpc-token');
      expect(cache.get(ns.name, 'database-password')).toBeUndefined();
      expect(cache.get(ns.name, 'looks-managed')).toBeUndefined();
      // A new unrelated Secret stays out; a newly labelled one comes in.
      await putSecret('later-password');
      await putSecret('later-token', { 'agyn.io/runner-token': 'true' });
      await eventually(() => cache.get(ns.name, 'later-token'), { what: 'the new token cached' });
      expect(cache.get(ns.name, 'later-password')).toBeUndefined();
    } finally {
      await cache.stop();
    }
  });
});
