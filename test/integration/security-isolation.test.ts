/**
 * Tenant isolation (issue 13, attacks 1-5 and 9): what an author allowed only to create,
 * get and delete AgentWorkloads can reach. Each test replays one attack of the review
 * against the real API server (with Pod Security admission) and the workload controller,
 * and checks it is refused or contained.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { KubeObject } from '../../src/kube/client.ts';
import { isInvalid, isNotFound } from '../../src/kube/errors.ts';
import { NAMESPACES, PODS, PVCS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createWorkload,
  fastRunner,
  waitForPhase,
  workloadManifest,
} from '../support/workloads.ts';

type Pod = IPod & KubeObject;

/** A Runner that grants nothing: no added capability for any role, no root. */
const NO_GRANTS = {
  allowRoot: false,
  capabilities: { main: [], init: [], mcp: [], hook: [], ziti: [], other: [] },
};

const client = testKubeClient();
const pods = client.resource<Pod>(PODS);
/** A workload namespace that enforces Pod Security "restricted", as the chart labels it without grants. */
let ns: TestNamespace;
let controller: WorkloadController;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'sec');
  await client.resource(NAMESPACES).mergePatch(undefined, ns.name, {
    metadata: {
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  });
  controller = new WorkloadController({
    client,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner({ security: NO_GRANTS })),
    namespace: ns.name,
  });
  await controller.startInformers();
  controller.start();
});

afterAll(async () => {
  await ns.cleanup();
  await eventually(
    async () => (await client.resource(AGENT_WORKLOADS).list(ns.name)).items.length === 0,
    { timeoutMs: 60_000, what: 'the workloads to be finalized' },
  );
  await controller?.stop();
  await controller?.stopInformers();
  client.close();
});

async function podOf(name: string): Promise<Pod | undefined> {
  try {
    return await pods.get(ns.name, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function refusal(manifest: Record<string, unknown>): Promise<string> {
  try {
    await createWorkload(client, ns.name, manifest);
  } catch (err) {
    if (isInvalid(err)) return (err as Error).message;
    throw err;
  }
  throw new Error('the API server accepted the workload');
}

describe('attack 1: Linux capabilities and Pod security', () => {
  test('a Pod with no grants is admitted under Pod Security restricted and hardened', async () => {
    await createWorkload(client, ns.name, workloadManifest('plain'));
    await waitForPhase(client, ns.name, 'plain', 'Running');
    const pod = await podOf('plain');
    expect(pod?.spec?.containers[0]?.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
      runAsNonRoot: true,
    });
  });

  test('a capability the Runner does not grant fails the workload and creates no Pod', async () => {
    const caps = ['SYS_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'NET_ADMIN', 'DAC_READ_SEARCH'];
    await createWorkload(
      client,
      ns.name,
      workloadManifest('root-on-node', {
        main: { name: 'main', image: 'example.invalid/agent:1', linuxCapabilities: caps },
      } as object),
    );
    const aw = await waitForPhase(client, ns.name, 'root-on-node', 'Failed');
    expect(aw.status?.reason).toBe('config_invalid');
    expect(aw.status?.message).toContain('spec.main.linuxCapabilities[0]');
    expect(await podOf('root-on-node')).toBeUndefined();
  });

  test('an unknown capability (or ALL) is refused at admission, naming the field', async () => {
    const message = await refusal(
      workloadManifest('all-caps', {
        sidecars: [{ name: 's', image: 'example.invalid/s:1', linuxCapabilities: ['ALL'] }],
      } as object),
    );
    expect(message).toContain('spec.sidecars[0].linuxCapabilities[0]');
  });
});

async function createSecret(name: string, labels: Record<string, string>): Promise<void> {
  await client.resource(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, labels },
    data: { token: Buffer.from(`secret-of-${name}`).toString('base64') },
  } as KubeObject);
}

const inlineFrom = (secret: string) => ({
  main: {
    name: 'main',
    image: 'example.invalid/agent:1',
    inlineFileMounts: ['/etc/stolen'],
  },
  inlineFiles: { secretRef: { name: secret }, files: [{ path: '/etc/stolen', key: 'token' }] },
});

describe('attack 2: Secrets not made for the workload', () => {
  test('an unlabelled Secret of the namespace (e.g. a token) is refused, naming the field', async () => {
    await createSecret('grpc-token', {});
    await createWorkload(client, ns.name, workloadManifest('thief', inlineFrom('grpc-token')));
    const aw = await waitForPhase(client, ns.name, 'thief', 'Failed');
    expect(aw.status?.reason).toBe('config_invalid');
    expect(aw.status?.message).toContain('spec.inlineFiles.secretRef.name');
    expect(await podOf('thief')).toBeUndefined();
  });

  test("another workload's Secret (its id label) is refused as pull secret", async () => {
    await createSecret('victim-pull', {
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': '11111111-2222-4333-8444-555555555555',
    });
    await createWorkload(
      client,
      ns.name,
      workloadManifest('pull-thief', { imagePullSecretRef: { name: 'victim-pull' } }),
    );
    const aw = await waitForPhase(client, ns.name, 'pull-thief', 'Failed');
    expect(aw.status?.message).toContain('spec.imagePullSecretRef.name');
    expect(await podOf('pull-thief')).toBeUndefined();
  });

  test('a Secret labelled with the workload name is mounted', async () => {
    await createSecret('own-files', { 'agyn.io/workload-name': 'owner' });
    await createWorkload(client, ns.name, workloadManifest('owner', inlineFrom('own-files')));
    await waitForPhase(client, ns.name, 'owner', 'Running');
    expect((await podOf('owner'))?.spec?.volumes).toContainEqual(
      expect.objectContaining({ name: 'inline-files' }),
    );
  });
});

describe("attack 3: claiming another workload's id", () => {
  const VICTIM_ID = '9a0b1c2d-3333-4e5f-a6b7-cccccccccccc';

  test("a duplicate id gets the CR's uid and neither adopts nor deletes the victim's Secrets", async () => {
    // The victim as the shim writes it: its pull Secret labelled with its id, named after it.
    const victimName = `workload-${VICTIM_ID}`;
    await createSecret(`${victimName}-pull`, {
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': VICTIM_ID,
    });
    await createWorkload(
      client,
      ns.name,
      workloadManifest(victimName, {
        workloadId: VICTIM_ID,
        imagePullSecretRef: { name: `${victimName}-pull` },
      }),
    );
    const victim = await waitForPhase(client, ns.name, victimName, 'Running');
    expect(victim.status?.workloadId).toBe(VICTIM_ID);

    const thief = await createWorkload(
      client,
      ns.name,
      workloadManifest('id-thief', {
        workloadId: VICTIM_ID,
        imagePullSecretRef: { name: `${victimName}-pull` },
      }),
    );
    const failed = await waitForPhase(client, ns.name, 'id-thief', 'Failed');
    expect(failed.status?.workloadId).toBe(thief.metadata.uid);
    const secret = await client.resource(SECRETS).get(ns.name, `${victimName}-pull`);
    expect(secret.metadata?.ownerReferences?.map((r) => r.name)).toEqual([victimName]);

    await client.resource(AGENT_WORKLOADS).delete(ns.name, 'id-thief');
    await eventually(async () => !(await exists(AGENT_WORKLOADS, 'id-thief')), {
      what: 'the thief to be deleted',
    });
    expect(await exists(SECRETS, `${victimName}-pull`)).toBe(true);
    expect((await podOf(victimName))?.metadata?.deletionTimestamp).toBeUndefined();
  });
});

async function exists(resource: typeof SECRETS, name: string): Promise<boolean> {
  try {
    await client.resource(resource).get(ns.name, name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

describe("attack 4: another workload's volume", () => {
  const volume = (claim: string) => ({
    volumes: [{ name: 'ws', kind: 'Persistent' as const, persistentName: claim }],
    main: {
      name: 'main',
      image: 'example.invalid/agent:1',
      mounts: [{ volume: 'ws', mountPath: '/workspace' }],
    },
  });

  test('a claim another workload created is not mounted; the workload fails naming the field', async () => {
    await createWorkload(client, ns.name, workloadManifest('vol-owner', volume('owner-ws')));
    await waitForPhase(client, ns.name, 'vol-owner', 'Running');
    await createWorkload(client, ns.name, workloadManifest('vol-thief', volume('owner-ws')));
    const aw = await waitForPhase(client, ns.name, 'vol-thief', 'Failed');
    expect(aw.status?.reason).toBe('config_invalid');
    expect(aw.status?.message).toContain('spec.volumes[0].persistentName');
    expect(await podOf('vol-thief')).toBeUndefined();
  });

  test('a claim labelled agyn.io/volume-shared is mounted by any workload (explicit opt-in)', async () => {
    await client.resource(PVCS).create(ns.name, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'team-cache', labels: { 'agyn.io/volume-shared': 'true' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    } as KubeObject);
    await createWorkload(client, ns.name, workloadManifest('sharer', volume('team-cache')));
    await waitForPhase(client, ns.name, 'sharer', 'Running');
  });
});

describe('attack 9: labels, test annotations and the Secret cache', () => {
  test('a label in a reserved domain (e.g. posing as another app) fails the workload', async () => {
    await createWorkload(
      client,
      ns.name,
      workloadManifest('poser', { labels: { 'app.kubernetes.io/name': 'agents-orchestrator' } }),
    );
    const aw = await waitForPhase(client, ns.name, 'poser', 'Failed');
    expect(aw.status?.message).toContain('spec.labels');
    expect(await podOf('poser')).toBeUndefined();
  });

  test('sim.agyn.io test annotations do not reach the Pod in production', async () => {
    await createWorkload(
      client,
      ns.name,
      workloadManifest(
        'simulated',
        {},
        { 'sim.agyn.io/scenario': 'crashloop', 'pod.agyn.io/x': 'y' },
      ),
    );
    await waitForPhase(client, ns.name, 'simulated', 'Running');
    const annotations = (await podOf('simulated'))?.metadata?.annotations ?? {};
    expect(annotations['pod.agyn.io/x']).toBe('y');
    expect(Object.keys(annotations).filter((k) => k.startsWith('sim.agyn.io/'))).toEqual([]);
  });

  test('the operator caches only Secrets labelled for a workload', async () => {
    await createSecret('operator-managed', { 'app.kubernetes.io/managed-by': 'k8s-runner' });
    await createSecret('for-a-workload', { 'agyn.io/workload-id': 'some-id' });
    await eventually(() => controller.informers.secrets.get(ns.name, 'for-a-workload'), {
      what: 'the workload Secret in the cache',
    });
    const cached = controller.informers.secrets.list().map((s) => s.metadata?.name);
    expect(cached).not.toContain('operator-managed');
    expect(cached).not.toContain('grpc-token');
  });
});
