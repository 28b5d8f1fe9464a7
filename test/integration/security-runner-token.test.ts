// Issue 13 attack 7: a Runner could name any Secret as its service token and send it to a
// plain-text gateway. The token now goes only to https/grpcs gateways (or with the explicit
// spec.gateway.insecure flag), and only from a Secret labelled as a Runner token.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Runner } from '../../src/api/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { GatewayClient } from '../../src/runner/gateway-client.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';

type Secret = ISecret & KubeObject;
const client = testKubeClient();
const runnersApi = client.resource<Runner>(RUNNERS);
const secretsApi = client.resource<Secret>(SECRETS);
let ns: TestNamespace;
let controller: RunnerController;
let gw: TestGateway;
const TOKEN = 'platform-service-token-7f3a';

beforeAll(async () => {
  ns = await createTestNamespace(client, 'sec-token');
  gw = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: JSON.stringify({ runner_id: 'runner-id-x', key: 'k' }),
        serviceName: 'svc-x',
        identityId: 'ident-x',
      },
    },
  });
  controller = new RunnerController({
    client,
    namespace: ns.name,
    logger: testLogger,
    backoff: { initialMs: 100, maxMs: 800 },
    gatewayFactory: (url, caPem) => new GatewayClient({ url, caPem, timeoutMs: 1_500 }),
  });
  await controller.start();
});

afterAll(async () => {
  await controller?.stop();
  await gw?.stop();
  await ns?.cleanup();
  client.close();
});

/** The Enrolled condition once it has `reason` (a missing Secret in a lagging cache comes first). */
async function enrolledWith(
  name: string,
  reason: string,
): Promise<{ reason?: string; message?: string; status?: string }> {
  let last: unknown;
  try {
    return await eventually(
      async () => {
        const c = (await runnersApi.get(ns.name, name)).status?.conditions?.find(
          (x) => x.type === 'Enrolled',
        );
        last = c;
        return c?.reason === reason ? c : undefined;
      },
      { what: `${name} Enrolled/${reason}` },
    );
  } catch (err) {
    throw new Error(`${String(err)}; last Enrolled condition: ${JSON.stringify(last)}`);
  }
}

async function runner(
  name: string,
  secret: string,
  gateway: Record<string, unknown>,
): Promise<void> {
  await runnersApi.create(ns.name, {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name },
    spec: {
      gateway,
      serviceToken: { secretRef: { name: secret, key: 'token' } },
      workloadNamespace: 'agents',
    },
  } as unknown as Runner);
}

it('an unlabelled Secret is not sent anywhere; labelled, it is', async () => {
  // Any Secret of the namespace, e.g. one that was never meant for a Runner.
  await secretsApi.create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'someone-elses' },
    data: { token: Buffer.from(TOKEN).toString('base64') },
  } as Secret);
  await runner('borrower', 'someone-elses', { url: gw.url, insecure: true });
  // The operator does not even see it: it caches only Secrets labelled as Runner tokens.
  const c = await enrolledWith('borrower', 'TokenSecretMissing');
  expect(c.status).toBe('False');
  expect(c.message).toMatch(
    /^token Secret "someone-elses" not found among the Secrets labelled agyn.io\/runner-token: "true"/,
  );
  expect(gw.requests.enrollRunner).toEqual([]);

  await secretsApi.mergePatch(ns.name, 'someone-elses', {
    metadata: { labels: { 'agyn.io/runner-token': 'true' } },
  });
  expect((await enrolledWith('borrower', 'Enrolled')).status).toBe('True');
  expect(gw.requests.enrollRunner).toEqual([{ serviceToken: TOKEN }]);
});

it('a plain-text gateway gets no token without spec.gateway.insecure', async () => {
  gw.clearRequests();
  await secretsApi.create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'plain-token', labels: { 'agyn.io/runner-token': 'true' } },
    data: { token: Buffer.from(TOKEN).toString('base64') },
  } as Secret);
  await runner('plain', 'plain-token', { url: gw.url });
  const c = await enrolledWith('plain', 'GatewayInsecure');
  expect(c.status).toBe('False');
  expect(c.message).toContain('spec.gateway.insecure: true');
  expect(gw.requests.enrollRunner).toEqual([]);
  expect(gw.requests.reportRunnerCatalog).toEqual([]);
});
