import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Condition } from '../../src/api/common.ts';
import type { Runner, RunnerSpecInput } from '../../src/api/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { EVENTS, SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { GatewayClient } from '../../src/runner/gateway-client.ts';
import { IDENTITY_ANNOTATIONS, identitySecretName } from '../../src/runner/identity.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  startTestGateway,
  testGateway,
  type EnrollFailure,
  type TestGateway,
} from '../support/test-gateway.ts';
import { RUNNER_TOKEN_LABEL } from '../../src/runner/token-rule.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';

type Secret = ISecret & KubeObject;

const client = testKubeClient();
const runnersApi = client.resource<Runner>(RUNNERS);
const secretsApi = client.resource<Secret>(SECRETS);
const BACKOFF = { initialMs: 100, maxMs: 800 };

let ns: TestNamespace;
let controller: RunnerController;
/** The controller's own client, so that its API requests can be counted. */
const controllerClient = testKubeClient();
const gateways: TestGateway[] = [];

beforeAll(async () => {
  ns = await createTestNamespace(client, 'rnr-enroll');
  controller = new RunnerController({
    client: controllerClient,
    namespace: ns.name,
    logger: testLogger,
    backoff: BACKOFF,
    // A short deadline so that a slow gateway shows up as DEADLINE_EXCEEDED quickly.
    gatewayFactory: (url, caPem) => new GatewayClient({ url, caPem, timeoutMs: 1_500 }),
  });
  await controller.start();
});

afterAll(async () => {
  await controller.stop();
  await Promise.all(gateways.map((g) => g.stop()));
  await ns.cleanup();
});

let counter = 0;
function uniqueName(prefix: string): string {
  return `${prefix}-${++counter}`;
}

async function gateway(options: Parameters<typeof startTestGateway>[0] = {}): Promise<TestGateway> {
  const g = await startTestGateway(options);
  gateways.push(g);
  return g;
}

function identity(n: string) {
  return {
    identityJson: JSON.stringify({
      runner_id: `runner-id-${n}`,
      ztAPI: 'https://ziti.example:443',
      key: `secret-key-${n}`,
    }),
    serviceName: `svc-${n}`,
    identityId: `ident-${n}`,
  };
}

async function putTokenSecret(name: string, token: string, key = 'token'): Promise<void> {
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns.name, labels: { [RUNNER_TOKEN_LABEL]: 'true' } },
    type: 'Opaque',
    data: { [key]: Buffer.from(token).toString('base64') },
  };
  await secretsApi.apply(ns.name, name, body, { fieldManager: 'test', force: true });
}

async function createRunner(
  name: string,
  spec: Partial<RunnerSpecInput> & { gateway: { url: string } },
  tokenSecret = `${name}-token`,
) {
  const manifest = {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name, namespace: ns.name },
    spec: {
      serviceToken: { secretRef: { name: tokenSecret, key: 'token' } },
      workloadNamespace: 'agents',
      ...spec,
      gateway: testGateway(spec.gateway),
    },
  };
  return runnersApi.create(ns.name, manifest as unknown as Runner);
}

const condition = (r: Runner | undefined, type: string): Condition | undefined =>
  r?.status?.conditions?.find((c) => c.type === type);

async function waitForCondition(
  name: string,
  type: string,
  status: string,
  reason?: string,
  timeoutMs = 20_000,
): Promise<Runner> {
  return eventually(
    async () => {
      const r = await runnersApi.get(ns.name, name);
      const c = condition(r, type);
      return c && c.status === status && (reason === undefined || c.reason === reason)
        ? r
        : undefined;
    },
    { timeoutMs, what: `${name} ${type}=${status}${reason ? `/${reason}` : ''}` },
  );
}

async function identitySecret(name: string): Promise<Secret | undefined> {
  try {
    return await secretsApi.get(ns.name, identitySecretName(name));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  // Runners of finished tests must not keep calling their (stopped) gateways.
  const list = await runnersApi.list(ns.name);
  await Promise.all(
    list.items.map((r) => runnersApi.delete(ns.name, r.metadata.name).catch(() => undefined)),
  );
});

describe('enrollment', () => {
  it('enrolls the Runner made from the seed minimum values, stores the identity and reports the catalog', async () => {
    const token = 'seed-token-6b1f0e2d9c';
    const gw = await gateway({ tokens: { [token]: identity('seed') } });
    // runner-values.yaml minimum: gateway.url, serviceToken.existingSecret (key token),
    // resources.workloadNamespace, resources.pullSecrets, storage.class, capabilities.
    await putTokenSecret('runner-token', token);
    const created = await createRunner(
      'seed',
      {
        gateway: { url: gw.url },
        workloadNamespace: 'agyn-workloads',
        pullSecrets: [],
        storage: { defaultClass: 'standard' },
        capabilities: ['docker'],
        capabilityImplementations: { docker: 'rootless' },
      },
      'runner-token',
    );
    const r = await waitForCondition('seed', 'Ready', 'True');
    expect(condition(r, 'Enrolled')).toMatchObject({
      status: 'True',
      reason: 'Enrolled',
      observedGeneration: created.metadata.generation,
    });
    expect(condition(r, 'CatalogReported')).toMatchObject({
      status: 'True',
      reason: 'CatalogReported',
    });
    expect(r.status).toMatchObject({
      observedGeneration: created.metadata.generation,
      runnerId: 'runner-id-seed',
      identityId: 'ident-seed',
      serviceName: 'svc-seed',
      identitySecretRef: { name: 'seed-identity' },
      scope: 'cluster',
    });
    expect(Date.parse(r.status?.enrolledAt ?? '')).not.toBeNaN();
    expect(Date.parse(r.status?.catalogReportedAt ?? '')).not.toBeNaN();

    const secret = await identitySecret('seed');
    expect(secret?.metadata?.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'Runner',
        name: 'seed',
        uid: created.metadata.uid,
        controller: true,
      }),
    ]);
    expect(Buffer.from(secret?.data?.identity_json ?? '', 'base64').toString()).toBe(
      identity('seed').identityJson,
    );
    expect(Buffer.from(secret?.data?.service_name ?? '', 'base64').toString()).toBe('svc-seed');
    expect(Buffer.from(secret?.data?.identity_id ?? '', 'base64').toString()).toBe('ident-seed');
    expect(secret?.metadata?.annotations?.[IDENTITY_ANNOTATIONS.tokenHash]).toMatch(
      /^[0-9a-f]{64}$/,
    );

    expect(gw.requests.enrollRunner).toEqual([{ serviceToken: token }]);
    expect(gw.requests.reportRunnerCatalog).toHaveLength(1);
    expect(gw.requests.reportRunnerCatalog[0]).toMatchObject({
      runnerId: 'runner-id-seed',
      serviceToken: token,
      flavors: [],
      storageClasses: [],
      capabilities: ['docker'],
    });

    // Neither the token nor the identity bytes appear in the Runner, the identity Secret's
    // metadata or any Event.
    const events = await client.resource<KubeObject>(EVENTS).list(ns.name);
    const visible = JSON.stringify([
      await runnersApi.get(ns.name, 'seed'),
      secret?.metadata,
      events.items,
    ]);
    expect(visible).not.toContain(token);
    expect(visible).not.toContain('secret-key-seed');
    expect(visible).not.toContain(Buffer.from(token).toString('base64'));
    expect(events.items.map((e) => (e as { reason?: string }).reason)).toEqual(
      expect.arrayContaining(['Enrolled', 'CatalogReported']),
    );
  });

  it('converges without further gateway calls or writes, also across a controller restart', async () => {
    const token = 'steady-token-91c2';
    const gw = await gateway({ tokens: { [token]: identity('steady') } });
    await putTokenSecret('steady-token', token);
    await createRunner('steady', { gateway: { url: gw.url }, labels: { tier: 'a' } });
    const ready = await waitForCondition('steady', 'Ready', 'True');
    await sleep(500);
    const patchesBefore = controllerClient.requestCounts.get('PATCH request') ?? 0;
    // A metadata-only change (no new generation) and a label change of the token Secret
    // neither call the gateway nor write anything.
    await runnersApi.mergePatch(ns.name, 'steady', { metadata: { annotations: { note: 'x' } } });
    await secretsApi.mergePatch(ns.name, 'steady-token', {
      metadata: { labels: { touched: 'yes' } },
    });
    await sleep(1_000);
    expect(controllerClient.requestCounts.get('PATCH request') ?? 0).toBe(patchesBefore);

    const second = new RunnerController({
      client: controllerClient,
      namespace: ns.name,
      logger: testLogger,
      backoff: BACKOFF,
    });
    await controller.stop();
    await second.start();
    await sleep(1_500);
    await second.stop();
    await controller.start();
    await sleep(500);
    expect(gw.count('enrollRunner')).toBe(1);
    expect(gw.count('reportRunnerCatalog')).toBe(1);
    expect(controllerClient.requestCounts.get('PATCH request') ?? 0).toBe(patchesBefore);
    const after = await runnersApi.get(ns.name, 'steady');
    expect(after.status?.conditions).toEqual(ready.status?.conditions);
  });

  it('enrolls ten Runners with two writes each (identity Secret, status) plus Events', async () => {
    const tokens: Record<string, ReturnType<typeof identity>> = {};
    for (let i = 0; i < 10; i++) tokens[`bulk-token-${i}`] = identity(`bulk-${i}`);
    const gw = await gateway({ tokens });
    await Promise.all(Object.keys(tokens).map((t, i) => putTokenSecret(`bulk-${i}-token`, t)));
    await sleep(300);
    const before = new Map(controllerClient.requestCounts);
    const delta = (k: string) =>
      (controllerClient.requestCounts.get(k) ?? 0) - (before.get(k) ?? 0);
    const t0 = performance.now();
    await Promise.all(
      Object.keys(tokens).map((_t, i) => createRunner(`bulk-${i}`, { gateway: { url: gw.url } })),
    );
    await Promise.all(
      Object.keys(tokens).map((_t, i) => waitForCondition(`bulk-${i}`, 'Ready', 'True')),
    );
    const elapsed = performance.now() - t0;
    await sleep(500);
    const measured = {
      elapsedMs: Math.round(elapsed),
      patches: delta('PATCH request'),
      gets: delta('GET request'),
      posts: delta('POST request'),
    };
    console.log(`10 Runners enrolled: ${JSON.stringify(measured)}`);
    expect(gw.count('enrollRunner')).toBe(10);
    expect(gw.count('reportRunnerCatalog')).toBe(10);
    expect(measured.patches).toBe(20);
    // Live reads before enrolling: the identity Secret and the token Secret of each Runner.
    expect(measured.gets).toBe(20);
    // Events (Enrolled, CatalogReported).
    expect(measured.posts).toBe(20);
  });

  const failures: Array<[EnrollFailure, string, RegExp]> = [
    ['INVALID_ARGUMENT', 'TokenEmpty', /INVALID_ARGUMENT/],
    ['NOT_FOUND', 'TokenRejected', /rejected the service token .*NOT_FOUND/],
    ['UNAUTHENTICATED', 'TokenRejected', /UNAUTHENTICATED/],
    ['PERMISSION_DENIED', 'TokenRejected', /PERMISSION_DENIED/],
    ['INTERNAL', 'PlatformError', /platform failed .*INTERNAL/],
    ['UNAVAILABLE', 'GatewayUnreachable', /unreachable .*UNAVAILABLE/],
    ['MALFORMED', 'MalformedResponse', /MALFORMED_RESPONSE: empty identity_json/],
  ];

  it.each(failures)(
    'gateway answering %s: condition reason %s, capped backoff, recovery',
    async (failure, reason, message) => {
      const name = uniqueName(`fail-${failure.toLowerCase().replace('_', '-')}`);
      const token = `token-${name}`;
      const gw = await gateway({ tokens: { [token]: identity(name) }, enrollFailure: failure });
      await putTokenSecret(`${name}-token`, token);
      await createRunner(name, { gateway: { url: gw.url } });
      const r = await waitForCondition(name, 'Enrolled', 'False', reason);
      expect(condition(r, 'Enrolled')?.message).toMatch(message);
      expect(condition(r, 'Enrolled')?.message).toMatch(/retrying in \d+(ms|s)/);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason });
      expect(r.status?.runnerId).toBeUndefined();
      expect(await identitySecret(name)).toBeUndefined();

      // Backoff 100 ms doubling to 800 ms: about 1 + 1 + 1 + 1 + 2 calls in 2.5 s, not dozens.
      const before = gw.count('enrollRunner');
      await sleep(2_500);
      const calls = gw.count('enrollRunner') - before;
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(calls).toBeLessThanOrEqual(6);

      gw.behaviour.enrollFailure = undefined;
      const healed = await waitForCondition(name, 'Ready', 'True');
      expect(condition(healed, 'Enrolled')).toMatchObject({ status: 'True', reason: 'Enrolled' });
      expect(healed.status?.runnerId).toBe(`runner-id-${name}`);
    },
  );

  it('reports TokenSecretMissing until the token Secret appears, and TokenEmpty for an empty token', async () => {
    const token = 'late-token-77';
    const gw = await gateway({ tokens: { [token]: identity('late') } });
    await createRunner('late', { gateway: { url: gw.url } });
    let r = await waitForCondition('late', 'Enrolled', 'False', 'TokenSecretMissing');
    expect(condition(r, 'Enrolled')?.message).toMatch(/token Secret "late-token" not found/);

    await putTokenSecret('late-token', 'x', 'other-key');
    r = await waitForCondition('late', 'Enrolled', 'False', 'TokenSecretMissing');
    await eventually(async () =>
      /has no key "token"/.test(
        condition(await runnersApi.get(ns.name, 'late'), 'Enrolled')?.message ?? '',
      ),
    );

    await secretsApi.delete(ns.name, 'late-token');
    await putTokenSecret('late-token', '\n');
    r = await waitForCondition('late', 'Enrolled', 'False', 'TokenEmpty');
    expect(condition(r, 'Enrolled')?.message).toMatch(/is empty/);
    expect(gw.count('enrollRunner')).toBe(0);

    await putTokenSecret('late-token', `${token}\n`);
    await waitForCondition('late', 'Ready', 'True');
    expect(gw.requests.enrollRunner).toEqual([{ serviceToken: token }]);
  });

  it('reports an unknown token as TokenRejected until the platform knows it', async () => {
    const gw = await gateway({ tokens: {} });
    await putTokenSecret('unknown-token', 'not-yet-known');
    await createRunner('unknown', { gateway: { url: gw.url } });
    await waitForCondition('unknown', 'Enrolled', 'False', 'TokenRejected');
    gw.tokens.set('not-yet-known', identity('unknown'));
    await waitForCondition('unknown', 'Ready', 'True');
  });

  it('reports an unreachable gateway and a gateway slower than the deadline as GatewayUnreachable', async () => {
    const closed = await gateway();
    const url = closed.url;
    await closed.stop();
    await putTokenSecret('nowhere-token', 't-nowhere');
    await createRunner('nowhere', { gateway: { url } });
    const r = await waitForCondition('nowhere', 'Enrolled', 'False', 'GatewayUnreachable');
    expect(condition(r, 'Enrolled')?.message).toMatch(/UNAVAILABLE/);

    const slow = await gateway({ tokens: { 't-slow': identity('slow') }, delayMs: 3_000 });
    await putTokenSecret('slow-token', 't-slow');
    await createRunner('slow', { gateway: { url: slow.url } });
    const s = await waitForCondition('slow', 'Enrolled', 'False', 'GatewayUnreachable');
    expect(condition(s, 'Enrolled')?.message).toMatch(/DEADLINE_EXCEEDED/);
    slow.behaviour.delayMs = 0;
    await waitForCondition('slow', 'Ready', 'True');
  });

  it('enrolls again when the identity Secret is deleted', async () => {
    const token = 'lost-token-3';
    const gw = await gateway({ tokens: { [token]: identity('lost') } });
    await putTokenSecret('lost-token', token);
    await createRunner('lost', { gateway: { url: gw.url } });
    const first = await waitForCondition('lost', 'Ready', 'True');
    const before = await identitySecret('lost');
    await secretsApi.delete(ns.name, identitySecretName('lost'));
    await eventually(
      async () => {
        const s = await identitySecret('lost');
        return s && s.metadata?.uid !== before?.metadata?.uid ? s : undefined;
      },
      { what: 'a new identity Secret' },
    );
    await eventually(() => gw.count('reportRunnerCatalog') === 2);
    expect(gw.count('enrollRunner')).toBe(2);
    const r = await waitForCondition('lost', 'Ready', 'True');
    expect(condition(r, 'Ready')?.lastTransitionTime).toBe(
      condition(first, 'Ready')?.lastTransitionTime,
    );
  });

  it('enrolls again when the data of the identity Secret is emptied', async () => {
    const token = 'wiped-token';
    const gw = await gateway({ tokens: { [token]: identity('wiped') } });
    await putTokenSecret('wiped-token', token);
    await createRunner('wiped', { gateway: { url: gw.url } });
    await waitForCondition('wiped', 'Ready', 'True');
    await secretsApi.jsonPatch(ns.name, identitySecretName('wiped'), [
      { op: 'remove', path: '/data' },
    ]);
    await eventually(() => gw.count('enrollRunner') === 2, { what: 'a second enrollment' });
    await eventually(
      async () => (await identitySecret('wiped'))?.data?.identity_json !== undefined,
    );
  });

  it('enrolls again with the new token when the token Secret is rotated', async () => {
    const gw = await gateway({
      tokens: { 'rotate-old': identity('old'), 'rotate-new': identity('new') },
    });
    await putTokenSecret('rotate-token', 'rotate-old');
    await createRunner('rotate', { gateway: { url: gw.url } });
    const first = await waitForCondition('rotate', 'Ready', 'True');
    expect(first.status?.identityId).toBe('ident-old');
    const hashBefore = (await identitySecret('rotate'))?.metadata?.annotations?.[
      IDENTITY_ANNOTATIONS.tokenHash
    ];

    await putTokenSecret('rotate-token', 'rotate-new');
    const r = await eventually(
      async () => {
        const got = await runnersApi.get(ns.name, 'rotate');
        return got.status?.identityId === 'ident-new' ? got : undefined;
      },
      { what: 'the identity of the new token' },
    );
    expect(r.status?.runnerId).toBe('runner-id-new');
    expect(gw.requests.enrollRunner.map((e) => e.serviceToken)).toEqual([
      'rotate-old',
      'rotate-new',
    ]);
    await eventually(() => gw.count('reportRunnerCatalog') === 2);
    expect(gw.requests.reportRunnerCatalog[1]).toMatchObject({
      runnerId: 'runner-id-new',
      serviceToken: 'rotate-new',
    });
    const hashAfter = (await identitySecret('rotate'))?.metadata?.annotations?.[
      IDENTITY_ANNOTATIONS.tokenHash
    ];
    expect(hashAfter).not.toBe(hashBefore);
    expect(JSON.stringify(await identitySecret('rotate'))).not.toContain('rotate-new');
  });

  it('enrolls again when a report is refused for the identity', async () => {
    const gw = await gateway({ tokens: { 'refused-token': identity('refused') } });
    await putTokenSecret('refused-token', 'refused-token');
    await createRunner('refused', { gateway: { url: gw.url } });
    await waitForCondition('refused', 'Ready', 'True');
    const lookup = controller.reportTarget('refused');
    expect(lookup).toMatchObject({
      ok: true,
      target: { runnerId: 'runner-id-refused', serviceToken: 'refused-token' },
    });
    controller.identityRejected('refused', 'runner-id-refused');
    expect(controller.reportTarget('refused')).toMatchObject({ ok: false, permanent: false });
    await eventually(() => gw.count('enrollRunner') === 2, { what: 're-enrollment' });
    await eventually(() => controller.reportTarget('refused').ok);
    await sleep(500);
    expect(gw.count('enrollRunner')).toBe(2);
  });

  it('reports the catalog again when it changes, and only then', async () => {
    const gw = await gateway({ tokens: { 'cat-token': identity('cat') } });
    await putTokenSecret('cat-token', 'cat-token');
    await createRunner('cat', {
      gateway: { url: gw.url },
      catalog: {
        flavors: [
          { name: 'small', resources: { requests: { cpu: '500m', memory: '1Gi' } }, default: true },
        ],
      },
    });
    await waitForCondition('cat', 'Ready', 'True');
    expect(gw.count('reportRunnerCatalog')).toBe(1);

    // A new generation that leaves the catalog as it was.
    await runnersApi.mergePatch(ns.name, 'cat', { spec: { labels: { region: 'eu' } } });
    await eventually(async () => {
      const r = await runnersApi.get(ns.name, 'cat');
      return r.status?.observedGeneration === r.metadata.generation;
    });
    expect(gw.count('reportRunnerCatalog')).toBe(1);

    await runnersApi.mergePatch(ns.name, 'cat', {
      spec: {
        catalog: {
          flavors: [
            {
              name: 'small',
              resources: { requests: { cpu: '500m', memory: '1Gi' } },
              default: true,
            },
            { name: 'large', resources: { limits: { cpu: '4', memory: '16Gi' } } },
          ],
          storageClasses: [{ name: 'fast', storageClassName: 'ssd', default: true }],
        },
        capabilities: ['gpu'],
      },
    });
    await eventually(() => gw.count('reportRunnerCatalog') === 2, {
      what: 'a second catalog report',
    });
    expect(gw.requests.reportRunnerCatalog[1]).toMatchObject({
      flavors: [
        {
          name: 'small',
          resources: {
            requestsCpu: '500m',
            requestsMemory: '1Gi',
            limitsCpu: '',
            limitsMemory: '',
          },
          default: true,
        },
        { name: 'large', resources: { limitsCpu: '4', limitsMemory: '16Gi' }, default: false },
      ],
      storageClasses: [{ name: 'fast', default: true, deprecated: false }],
      capabilities: ['gpu'],
    });
    expect(gw.count('enrollRunner')).toBe(1);
    await sleep(500);
    expect(gw.count('reportRunnerCatalog')).toBe(2);
  });

  it('keeps the runner not Ready while its first catalog report fails, Ready when the gateway lacks the RPC', async () => {
    const gw = await gateway({
      tokens: { 'cf-token': identity('cf') },
      catalogFailure: 'UNAVAILABLE',
    });
    await putTokenSecret('cf-token', 'cf-token');
    await createRunner('cf', { gateway: { url: gw.url } });
    let r = await waitForCondition('cf', 'CatalogReported', 'False', 'GatewayUnreachable');
    expect(condition(r, 'Enrolled')?.status).toBe('True');
    expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'GatewayUnreachable' });
    // The identity is kept while the catalog waits: no second enrollment.
    await sleep(1_000);
    expect(gw.count('enrollRunner')).toBe(1);
    expect(gw.count('reportRunnerCatalog')).toBeGreaterThanOrEqual(2);

    gw.behaviour.catalogFailure = undefined;
    r = await waitForCondition('cf', 'Ready', 'True');
    const readySince = condition(r, 'Ready')?.lastTransitionTime;

    // A later catalog change the gateway cannot take leaves the runner Ready.
    gw.behaviour.catalogFailure = 'UNAVAILABLE';
    await runnersApi.mergePatch(ns.name, 'cf', { spec: { capabilities: ['gpu'] } });
    r = await waitForCondition('cf', 'CatalogReported', 'False', 'GatewayUnreachable');
    expect(condition(r, 'Ready')).toMatchObject({ status: 'True', lastTransitionTime: readySince });
    expect(condition(r, 'Ready')?.message).toMatch(/not reported yet/);

    gw.behaviour.catalogFailure = 'UNIMPLEMENTED';
    r = await waitForCondition('cf', 'CatalogReported', 'False', 'CatalogUnsupported');
    expect(condition(r, 'Ready')).toMatchObject({ status: 'True' });
    const calls = gw.count('reportRunnerCatalog');
    await sleep(1_000);
    expect(gw.count('reportRunnerCatalog')).toBe(calls);
  });

  it('dials a grpcs gateway with the CA from spec.gateway.caSecretRef', async () => {
    let pki: TestPki | undefined;
    try {
      pki = await generateTestPki();
      const gw = await gateway({
        tokens: { 'tls-token': identity('tls') },
        tls: { cert: pki.server.cert, key: pki.server.key },
      });
      expect(gw.url.startsWith('grpcs://')).toBe(true);
      await putTokenSecret('tls-token', 'tls-token');
      await createRunner('tls', { gateway: { url: gw.url, caSecretRef: { name: 'gateway-ca' } } });
      const r = await waitForCondition('tls', 'Enrolled', 'False', 'CASecretMissing');
      expect(condition(r, 'Enrolled')?.message).toMatch(
        /gateway CA Secret "gateway-ca" not found among the Secrets labelled agyn.io\/gateway-ca: "true"/,
      );

      // The operator takes (and caches) only CA Secrets labelled agyn.io/gateway-ca: "true".
      await secretsApi.create(ns.name, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'gateway-ca' },
        data: { 'ca.crt': pki.ca.cert.toString('base64') },
      });
      await secretsApi.mergePatch(ns.name, 'gateway-ca', {
        metadata: { labels: { 'agyn.io/gateway-ca': 'true' } },
      });
      await waitForCondition('tls', 'Ready', 'True');
      expect(gw.count('enrollRunner')).toBe(1);

      // Without the CA the system roots do not trust the test CA.
      await putTokenSecret('tls2-token', 'tls-token');
      await createRunner('tls2', { gateway: { url: gw.url } }, 'tls2-token');
      await waitForCondition('tls2', 'Enrolled', 'False', 'GatewayUnreachable');
    } finally {
      await pki?.cleanup();
    }
  });

  it('refuses to overwrite a Secret of the identity name that it did not create', async () => {
    const gw = await gateway({ tokens: { 'clash-token': identity('clash') } });
    await secretsApi.create(ns.name, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: identitySecretName('clash') },
      data: { mine: Buffer.from('keep me').toString('base64') },
    });
    await putTokenSecret('clash-token', 'clash-token');
    await createRunner('clash', { gateway: { url: gw.url } });
    await waitForCondition('clash', 'Enrolled', 'False', 'IdentitySecretConflict');
    expect(gw.count('enrollRunner')).toBe(0);
    expect((await identitySecret('clash'))?.data).toEqual({
      mine: Buffer.from('keep me').toString('base64'),
    });
  });

  it('leaves the identity Secret to garbage collection when the Runner is deleted', async () => {
    const gw = await gateway({ tokens: { 'gc-token': identity('gc') } });
    await putTokenSecret('gc-token', 'gc-token');
    await createRunner('gc', { gateway: { url: gw.url } });
    await waitForCondition('gc', 'Ready', 'True');
    expect(await identitySecret('gc')).toBeDefined();
    await runnersApi.delete(ns.name, 'gc');
    await eventually(async () => (await identitySecret('gc')) === undefined, {
      what: 'garbage collection',
      timeoutMs: 60_000,
    });
    expect(controller.reportTarget('gc')).toMatchObject({ ok: false, permanent: true });
  });
});
