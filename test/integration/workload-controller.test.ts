import type { IPod } from 'kubernetes-models/v1/Pod';
import { DEFAULT_WORKLOAD_SECURITY } from '../../src/api/runner.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { EVENTS, PODS, PVCS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { WORKLOAD_FINALIZER, WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  createTestNamespace,
  eventually,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createWorkload,
  fastRunner,
  getWorkload,
  waitForPhase,
  workloadManifest,
  type Workload,
  SIM_ANNOTATION_PREFIXES,
} from '../support/workloads.ts';

const client = KubeClient.fromEnvironment(process.env.KUBECONFIG);
const pods = client.resource<IPod & KubeObject>(PODS);
let ns: TestNamespace;
let controller: WorkloadController;
/** The platform's agents: the Ziti tunnel sidecar adds NET_ADMIN. */
const zitiRunner = fastRunner({
  security: {
    ...DEFAULT_WORKLOAD_SECURITY,
    capabilities: { ...DEFAULT_WORKLOAD_SECURITY.capabilities, ziti: ['NET_ADMIN'] },
  },
});

function startController(): WorkloadController {
  const c = new WorkloadController({
    client,
    logger: testLogger,
    runners: new StaticRunnerDirectory(zitiRunner),
    namespace: ns.name,
    // Below the 3 s start grace, so that a Pod held in Pending for 1.5 s shows Starting.
    statusCoalesceMs: 1_000,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
  });
  return c;
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'aw');
  controller = startController();
  await controller.startInformers();
  controller.start();
});

afterAll(async () => {
  // The namespace goes first so the running controller can clear its finalizers.
  await ns.cleanup();
  await eventually(
    async () => (await client.resource(AGENT_WORKLOADS).list(ns.name)).items.length === 0,
    {
      timeoutMs: 60_000,
      what: 'the workloads to be finalized',
    },
  );
  await controller?.stop();
  await controller?.stopInformers();
  client.close();
});

async function podOf(name: string): Promise<IPod | undefined> {
  try {
    return await pods.get(ns.name, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

test('an AgentWorkload with the agent layout becomes a Running Pod with full status', async () => {
  await client.resource(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'files', labels: { 'agyn.io/workload-name': 'agent' } },
    data: { 'inline-file-0': Buffer.from('CA').toString('base64') },
  } as KubeObject);
  await createWorkload(
    client,
    ns.name,
    workloadManifest('agent', {
      volumes: [
        { name: 'agyn-bin', kind: 'Ephemeral' },
        { name: 'workspace', kind: 'Persistent', persistentName: 'ws-agent' },
      ],
      initContainers: [
        {
          name: 'agent-init',
          image: 'example.invalid/init:1',
          mounts: [{ volume: 'agyn-bin', mountPath: '/agyn-bin' }],
        },
      ],
      main: {
        name: 'main',
        image: 'example.invalid/workspace:1',
        args: ['/agyn-bin/agynd'],
        mounts: [
          { volume: 'workspace', mountPath: '/workspace' },
          { volume: 'agyn-bin', mountPath: '/agyn-bin' },
        ],
        inlineFileMounts: ['/etc/agyn/ca.crt'],
      },
      sidecars: [
        {
          name: 'ziti',
          image: 'example.invalid/ziti:1',
          role: 'ziti',
          linuxCapabilities: ['NET_ADMIN'],
        },
        { name: 'files-mcp', image: 'example.invalid/files-mcp:1', role: 'mcp' },
        { name: 'hook', image: 'example.invalid/hook:1', role: 'hook' },
      ],
      inlineFiles: {
        secretRef: { name: 'files' },
        files: [{ path: '/etc/agyn/ca.crt', key: 'inline-file-0' }],
      },
      labels: { team: 'a' },
    }),
  );
  const aw = await waitForPhase(client, ns.name, 'agent', 'Running');
  expect(aw.status).toMatchObject({ podName: 'agent', runner: 'local', observedGeneration: 1 });
  expect(aw.status?.workloadId).toBe(aw.metadata.uid);
  expect(aw.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'True',
    observedGeneration: 1,
  });
  const roles = aw.status?.containers?.map((c) => [c.name, c.role, c.state]);
  expect(roles).toEqual([
    ['ziti', 'sidecar', 'running'],
    ['agent-init', 'init', 'terminated'],
    ['main', 'main', 'running'],
    ['files-mcp', 'sidecar', 'running'],
    ['hook', 'sidecar', 'running'],
  ]);
  const pod = await podOf('agent');
  expect(pod?.spec?.automountServiceAccountToken).toBe(false);
  expect(pod?.metadata?.labels).toMatchObject({
    'app.kubernetes.io/managed-by': 'k8s-runner',
    'agyn.io/workload-id': aw.metadata.uid,
    'agyn.dev/managed-by': 'agents-orchestrator',
    team: 'a',
  });
  expect(pod?.metadata?.ownerReferences?.[0]).toMatchObject({
    kind: 'AgentWorkload',
    name: 'agent',
    controller: true,
  });
  expect(pod?.spec?.initContainers?.[0]).toMatchObject({ name: 'ziti', restartPolicy: 'Always' });
  const pvc = await client.resource(PVCS).get(ns.name, 'ws-agent');
  expect(pvc.metadata?.name).toBe('ws-agent');
  const events = await client.resource<KubeObject & { reason?: string }>(EVENTS).list(ns.name, {
    fieldSelector: 'involvedObject.name=agent,involvedObject.kind=AgentWorkload',
  });
  // A start that ends Running is recorded by no Event (status and the Ready condition say it).
  expect(events.items.map((e) => e.reason)).toEqual([]);
});

test.each([
  ['image-pull-failed', 'image_pull_failed', {}],
  ['config-error', 'config_invalid', {}],
  [
    'init-crash',
    'start_failed',
    { initContainers: [{ name: 'setup', image: 'example.invalid/init:1' }] },
  ],
  [
    'init-crash',
    'start_failed',
    { restartPolicy: 'OnFailure', initContainers: [{ name: 'setup', image: 'x.invalid/i:1' }] },
  ],
  ['crashloop', 'crashloop', { restartPolicy: 'Always' }],
  ['crashloop', 'crashloop', {}],
  ['exit-1', 'crashloop', {}],
  ['node-lost', 'runtime_lost', {}],
] as const)(
  'a Pod simulating %s makes the workload Failed with %s',
  async (scenario, reason, spec) => {
    const name = `f-${scenario}-${Object.keys(spec).length}-${'restartPolicy' in spec ? 'r' : 'n'}`;
    await createWorkload(
      client,
      ns.name,
      workloadManifest(name, spec as object, { 'sim.agyn.io/scenario': scenario }),
    );
    const aw = await waitForPhase(client, ns.name, name, 'Failed');
    expect(aw.status?.reason).toBe(reason);
    expect(aw.status?.message).toBeTruthy();
    expect(aw.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({
      status: 'True',
      reason,
    });
    expect(aw.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason,
    });
  },
);

test('a workload held in Pending shows Starting first, and a main that exits 0 is Stopped', async () => {
  await createWorkload(
    client,
    ns.name,
    workloadManifest(
      'slow',
      {},
      { 'sim.agyn.io/start-delay': '1500ms', 'sim.agyn.io/scenario': 'exit-0' },
    ),
  );
  await waitForPhase(client, ns.name, 'slow', 'Starting');
  await waitForPhase(client, ns.name, 'slow', 'Running');
  const aw = await waitForPhase(client, ns.name, 'slow', 'Stopped');
  expect(aw.status?.reason).toBeUndefined();
});

test('stop deletes the Pod and keeps the PVC; start again reuses it', async () => {
  await createWorkload(
    client,
    ns.name,
    workloadManifest('toggle', {
      volumes: [{ name: 'data', kind: 'Persistent', persistentName: 'toggle-data' }],
      main: {
        name: 'main',
        image: 'example.invalid/a:1',
        mounts: [{ volume: 'data', mountPath: '/data' }],
      },
    }),
  );
  await waitForPhase(client, ns.name, 'toggle', 'Running');
  const pvcUid = (await client.resource(PVCS).get(ns.name, 'toggle-data')).metadata?.uid;
  await client.resource(AGENT_WORKLOADS).mergePatch(ns.name, 'toggle', { spec: { stopped: true } });
  await waitForPhase(client, ns.name, 'toggle', 'Stopped');
  expect(await podOf('toggle')).toBeUndefined();
  expect((await client.resource(PVCS).get(ns.name, 'toggle-data')).metadata?.uid).toBe(pvcUid);
  await client
    .resource(AGENT_WORKLOADS)
    .mergePatch(ns.name, 'toggle', { spec: { stopped: false } });
  await waitForPhase(client, ns.name, 'toggle', 'Running');
  const pod = await podOf('toggle');
  expect(pod?.spec?.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName).toBe(
    'toggle-data',
  );
  expect((await client.resource(PVCS).get(ns.name, 'toggle-data')).metadata?.uid).toBe(pvcUid);
});

test('a stopped workload with a TTL is deleted after it, and touches show as lastActivityTime', async () => {
  await createWorkload(
    client,
    ns.name,
    workloadManifest('ephemeral', {}, { 'agyn.io/ttl-seconds-after-stopped': '4' }),
  );
  await waitForPhase(client, ns.name, 'ephemeral', 'Running');
  const touchedAt = '2026-11-25T10:00:00.123456789Z';
  await client.resource(AGENT_WORKLOADS).mergePatch(ns.name, 'ephemeral', {
    metadata: { annotations: { 'agyn.io/touched-at': touchedAt } },
  });
  await eventually(
    async () =>
      (await getWorkload(client, ns.name, 'ephemeral')).status?.lastActivityTime === touchedAt,
  );
  await client
    .resource(AGENT_WORKLOADS)
    .mergePatch(ns.name, 'ephemeral', { spec: { stopped: true } });
  await waitForPhase(client, ns.name, 'ephemeral', 'Stopped');
  await eventually(
    async () => {
      try {
        await getWorkload(client, ns.name, 'ephemeral');
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    },
    { what: 'the stopped workload to be deleted after its TTL' },
  );
});

test('deleting the workload removes its Pod and adopted Secrets, and keeps the PVC', async () => {
  const aw = await createWorkload(
    client,
    ns.name,
    workloadManifest('doomed', {
      imagePullSecretRef: { name: 'doomed-pull' },
      volumes: [{ name: 'data', kind: 'Persistent', persistentName: 'doomed-data' }],
    }),
  );
  await client.resource(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'doomed-pull',
      labels: {
        'app.kubernetes.io/managed-by': 'k8s-runner',
        'agyn.io/workload-id': aw.metadata.uid ?? '',
      },
    },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
  } as KubeObject);
  await waitForPhase(client, ns.name, 'doomed', 'Running');
  await eventually(
    async () => {
      const s = await client.resource(SECRETS).get(ns.name, 'doomed-pull');
      return s.metadata?.ownerReferences?.some((r) => r.uid === aw.metadata.uid);
    },
    { what: 'the pull Secret to be adopted' },
  );
  await client.resource(AGENT_WORKLOADS).delete(ns.name, 'doomed');
  await eventually(async () => (await podOf('doomed')) === undefined, { what: 'the Pod to go' });
  await eventually(
    async () => {
      try {
        await client.resource(SECRETS).get(ns.name, 'doomed-pull');
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    },
    { what: 'the Secret to go' },
  );
  await eventually(async () => {
    try {
      await getWorkload(client, ns.name, 'doomed');
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  });
  expect((await client.resource(PVCS).get(ns.name, 'doomed-data')).metadata?.name).toBe(
    'doomed-data',
  );
});

test('an invalid spec is refused by the API server with a message naming the problem', async () => {
  const bad = workloadManifest('bad', {
    main: { name: 'main', image: 'x', mounts: [{ volume: 'nope', mountPath: '/x' }] },
    sidecars: [{ name: 'main', image: 'y' }],
    volumes: [{ name: 'data', kind: 'Persistent' }],
    runnerRef: { name: 'a' },
    runnerSelector: { labels: { a: 'b' } },
  });
  await expect(createWorkload(client, ns.name, bad)).rejects.toThrow(
    /spec\.sidecars\[0\]\.name: duplicate container name "main"[\s\S]*spec\.main\.mounts\[0\]\.volume: volume "nope" is not declared[\s\S]*spec\.runnerSelector: Forbidden: runnerRef and runnerSelector are mutually exclusive[\s\S]*persistentName/,
  );
  await expect(
    createWorkload(
      client,
      ns.name,
      workloadManifest('bad2', { main: { name: 'Main_', image: '' } } as object),
    ),
  ).rejects.toThrow(/spec.main.name/);
});

test('a controller restarted mid-reconcile converges without duplicate or orphaned Pods', async () => {
  await controller.stop();
  await controller.stopInformers();
  const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
  await Promise.all(names.map((n) => createWorkload(client, ns.name, workloadManifest(n))));
  const first = startController();
  await first.startInformers();
  first.start();
  await eventually(async () =>
    (
      await pods.list(ns.name, { labelSelector: 'app.kubernetes.io/managed-by=k8s-runner' })
    ).items.some((p) => p.metadata?.name?.startsWith('burst-')),
  );
  await first.stop();
  await first.stopInformers();
  controller = startController();
  await controller.startInformers();
  controller.start();
  for (const n of names) await waitForPhase(client, ns.name, n, 'Running');
  const list = await pods.list(ns.name);
  const burstPods = list.items.filter((p) => p.metadata?.name?.startsWith('burst-'));
  expect(burstPods.map((p) => p.metadata?.name).sort()).toEqual([...names].sort());
  for (const p of list.items) expect(p.metadata?.ownerReferences?.length).toBe(1);
});

test('no API writes when nothing changes', async () => {
  await eventually(
    async () => {
      const list = await client.resource<Workload>(AGENT_WORKLOADS).list(ns.name);
      return (
        list.items.every((w) => ['Running', 'Failed', 'Stopped'].includes(w.status?.phase ?? '')) ||
        undefined
      );
    },
    { timeoutMs: 60_000, what: 'all workloads to settle' },
  );
  await new Promise((r) => setTimeout(r, 4000));
  const writes = (): number =>
    [...client.requestCounts.entries()]
      .filter(([k]) => /^(POST|PUT|PATCH|DELETE)/.test(k))
      .reduce((a, [, v]) => a + v, 0);
  const before = writes();
  await new Promise((r) => setTimeout(r, 5000));
  expect(writes() - before).toBe(0);
});

test('a starting workload costs one finalizer patch, two status writes (Starting, Running) and no Event', async () => {
  // A controller of its own with a client that records every write, in a namespace of its
  // own; 20 workloads at once, so reconciles read caches that lag behind their own writes.
  const own = await createTestNamespace(client, 'aw-writes');
  const recording = KubeClient.fromEnvironment(process.env.KUBECONFIG);
  const writes: Array<{ method: string; path: string; body: string }> = [];
  const send = recording.request.bind(recording);
  recording.request = ((method, path, opts) => {
    if (method !== 'GET') writes.push({ method, path, body: JSON.stringify(opts?.body ?? null) });
    return send(method, path, opts);
  }) as typeof recording.request;
  const c = new WorkloadController({
    client: recording,
    logger: testLogger,
    // The Pods are held in Pending below: a start grace well beyond that.
    runners: new StaticRunnerDirectory(
      fastRunner({ health: { ...fastRunner().health, startGraceSeconds: 120 } }),
    ),
    namespace: own.name,
    // Shorter than the Pods are held, so that Starting is written.
    statusCoalesceMs: 1_000,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
  });
  await c.startInformers();
  c.start();
  try {
    const names = Array.from({ length: 20 }, (_, i) => `writes-${i}`);
    // Held in Pending for longer than the 1 s that statuses may wait here.
    const held = { 'sim.agyn.io/start-delay': '2500ms' };
    await Promise.all(
      names.map((n) => createWorkload(client, own.name, workloadManifest(n, {}, held))),
    );
    for (const n of names) await waitForPhase(client, own.name, n, 'Running');
    await new Promise((r) => setTimeout(r, 2000));
    for (const n of names) {
      const finalizerPatches = writes.filter(
        (w) => w.method === 'PATCH' && w.path.endsWith(`/agentworkloads/${n}`),
      );
      expect(finalizerPatches).toHaveLength(1);
      const statuses = writes
        .filter((w) => w.path.endsWith(`/agentworkloads/${n}/status`))
        .map((w) => (JSON.parse(w.body) as { status: { phase?: string } }).status);
      // Never the same phase twice in a row unless the containers moved on in between.
      for (let i = 1; i < statuses.length; i++) expect(statuses[i]).not.toEqual(statuses[i - 1]);
      // kwok takes a Pod from Pending to all containers running in one step: the Starting
      // status written with the Pod already matches the Pod as it arrives in the cache.
      expect(statuses.map((status) => status.phase)).toEqual(['Starting', 'Running']);
      // No Event: Starting is a phase the controller only passes through, Running the state asked for.
      const events = writes.filter(
        (w) => w.path.includes('/events') && w.body.includes(`"name":"${n}"`),
      );
      expect(events).toEqual([]);
    }
  } finally {
    await own.cleanup();
    await eventually(
      async () =>
        (await client.resource(AGENT_WORKLOADS).list(own.name)).items.length === 0 || undefined,
      { timeoutMs: 60_000, what: 'the workloads to be finalized' },
    );
    await c.stop();
    await c.stopInformers();
    recording.close();
  }
});

test('a workload created with its finalizer whose Pod runs within the coalescing window costs one status write and no Event', async () => {
  // As the gRPC shim creates them: the finalizer in the create. A window longer than any
  // start here, so that Running always follows the first Starting within it.
  const own = await createTestNamespace(client, 'aw-quick');
  const recording = KubeClient.fromEnvironment(process.env.KUBECONFIG);
  const writes: Array<{ method: string; path: string; body: string }> = [];
  const send = recording.request.bind(recording);
  recording.request = ((method, path, opts) => {
    if (method !== 'GET') writes.push({ method, path, body: JSON.stringify(opts?.body ?? null) });
    return send(method, path, opts);
  }) as typeof recording.request;
  const c = new WorkloadController({
    client: recording,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: own.name,
    statusCoalesceMs: 120_000,
  });
  await c.startInformers();
  c.start();
  try {
    const names = Array.from({ length: 10 }, (_, i) => `quick-${i}`);
    await Promise.all(
      names.map((n) => {
        const manifest = workloadManifest(n) as { metadata: Record<string, unknown> };
        manifest.metadata.finalizers = [WORKLOAD_FINALIZER];
        return createWorkload(client, own.name, manifest);
      }),
    );
    for (const n of names) await waitForPhase(client, own.name, n, 'Running');
    await new Promise((r) => setTimeout(r, 2000));
    for (const n of names) {
      expect(
        writes.filter((w) => w.method === 'PATCH' && w.path.endsWith(`/agentworkloads/${n}`)),
      ).toHaveLength(0);
      const statuses = writes
        .filter((w) => w.path.endsWith(`/agentworkloads/${n}/status`))
        .map((w) => (JSON.parse(w.body) as { status: { phase?: string } }).status.phase);
      expect(statuses).toEqual(['Running']);
      const events = writes.filter(
        (w) => w.path.includes('/events') && w.body.includes(`"name":"${n}"`),
      );
      expect(events).toHaveLength(0);
    }
  } finally {
    await own.cleanup();
    await eventually(
      async () =>
        (await client.resource(AGENT_WORKLOADS).list(own.name)).items.length === 0 || undefined,
      { timeoutMs: 60_000, what: 'the workloads to be finalized' },
    );
    await c.stop();
    await c.stopInformers();
    recording.close();
  }
});
