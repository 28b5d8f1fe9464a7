import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import {
  ContainerRole,
  ContainerStatus,
  RunnerServiceClient,
  StartWorkloadRequest,
  VolumeKind,
  WorkloadStatus,
  type DeepPartial,
  type InspectWorkloadResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { PODS, PVCS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { eventually } from '../support/kube.ts';
import { createWorkload, workloadManifest, type Workload } from '../support/workloads.ts';
import {
  call,
  codeOf,
  namedVolumeWorkload,
  startHarness,
  type GrpcHarness,
} from '../fixtures/grpc-harness.ts';

let h: GrpcHarness;
let c: RunnerServiceClient;

beforeAll(async () => {
  h = await startHarness({ prefix: 'grpc-wl', runnerName: 'local' });
  c = h.client;
});

afterAll(async () => {
  await h?.close();
});

const secrets = () => h.kube.resource<ISecret & KubeObject>(SECRETS);
const workloads = () => h.kube.resource<Workload>(AGENT_WORKLOADS);
const pods = () => h.kube.resource<IPod & KubeObject>(PODS);
const pvcs = () => h.kube.resource<IPersistentVolumeClaim & KubeObject>(PVCS);

async function exists(get: () => Promise<unknown>): Promise<boolean> {
  try {
    await get();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function start(partial: DeepPartial<StartWorkloadRequest>) {
  return call(c, 'startWorkload', StartWorkloadRequest.fromPartial(partial));
}

function inspect(workloadId: string): Promise<InspectWorkloadResponse> {
  return call(c, 'inspectWorkload', { workloadId });
}

async function waitRunning(workloadId: string): Promise<InspectWorkloadResponse> {
  return eventually(
    async () => {
      const r = await inspect(workloadId);
      return r.stateRunning ? r : undefined;
    },
    { timeoutMs: 30_000, what: `${workloadId} to run` },
  );
}

function agentRequest(id: string, key: string): DeepPartial<StartWorkloadRequest> {
  return {
    workloadId: id,
    additionalProperties: { 'label.workload_key': key, 'label.team': 'qa' },
    imagePullCredentials: [{ registry: 'ghcr.io', username: 'bot', password: 'pw' }],
    inlineFiles: { '/etc/agyn/ca.crt': Buffer.from('CA') },
    volumes: [
      { name: 'bin', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
      {
        name: 'ws',
        kind: VolumeKind.VOLUME_KIND_NAMED,
        persistentName: `ws-${key}`,
        labels: { volume_key: key },
      },
    ],
    initContainers: [
      { name: 'ziti', image: 'ziti:1', additionalProperties: { restart_policy: 'Always' } },
      { name: 'agent-init', image: 'init:1', mounts: [{ volume: 'bin', mountPath: '/bin-out' }] },
    ],
    main: {
      image: 'workspace:1',
      cmd: ['/bin-out/agynd'],
      mounts: [
        { volume: 'ws', mountPath: '/workspace' },
        { volume: 'bin', mountPath: '/bin-out', readOnly: true },
      ],
      inlineFileMounts: [{ path: '/etc/agyn/ca.crt' }],
    },
    sidecars: [{ name: 'mcp-files', image: 'files-mcp:1' }],
  };
}

describe('workload lifecycle', () => {
  const id = randomUUID();
  const key = `k-${id.slice(0, 8)}`;
  const pod = `workload-${id}`;

  test('Ready answers ok without touching Kubernetes', async () => {
    expect(await call(c, 'ready', {})).toEqual({ status: 'ok' });
  });

  test('StartWorkload creates the Secrets and the AgentWorkload, never a Pod, and answers STARTING', async () => {
    const response = await start(agentRequest(id, key));
    expect(response).toEqual({
      id,
      containers: {
        main: pod,
        sidecars: [{ name: 'mcp-files', id: `${pod}:mcp-files`, status: 'starting' }],
      },
      status: WorkloadStatus.WORKLOAD_STATUS_STARTING,
      failure: undefined,
    });
    const aw = await workloads().get(h.ns.name, pod);
    expect(aw.spec.workloadId).toBe(id);
    expect(aw.spec.runnerRef).toEqual({ name: 'local' });
    expect(aw.spec.imagePullSecretRef).toEqual({ name: `${pod}-pull` });
    expect(aw.spec.inlineFiles?.secretRef).toEqual({ name: `${pod}-inline-files` });
    for (const name of [`${pod}-pull`, `${pod}-inline-files`]) {
      const secret = await secrets().get(h.ns.name, name);
      expect(secret.metadata?.labels).toMatchObject({
        'app.kubernetes.io/managed-by': 'k8s-runner',
        'agyn.io/workload-id': id,
      });
    }
  });

  test('InspectWorkload reports the running workload with per-container roles from the caches', async () => {
    const r = await waitRunning(id);
    expect(r.id).toBe(id);
    expect(r.name).toBe(id);
    expect(r.stateStatus).toBe('running');
    expect(r.configImage).toBe('workspace:1');
    expect(r.configLabels).toMatchObject({
      workload_key: key,
      team: 'qa',
      'agyn.io/workload-id': id,
    });
    expect(r.mounts).toEqual([
      { type: 'pvc', source: `ws-${key}`, destination: '/workspace', readOnly: false },
      { type: 'emptydir', source: 'bin', destination: '/bin-out', readOnly: true },
    ]);
    const roles = Object.fromEntries(r.containers.map((x) => [x.name, [x.role, x.status]]));
    expect(roles).toEqual({
      ziti: [ContainerRole.CONTAINER_ROLE_SIDECAR, ContainerStatus.CONTAINER_STATUS_RUNNING],
      'agent-init': [
        ContainerRole.CONTAINER_ROLE_INIT,
        ContainerStatus.CONTAINER_STATUS_TERMINATED,
      ],
      main: [ContainerRole.CONTAINER_ROLE_MAIN, ContainerStatus.CONTAINER_STATUS_RUNNING],
      'mcp-files': [ContainerRole.CONTAINER_ROLE_SIDECAR, ContainerStatus.CONTAINER_STATUS_RUNNING],
    });
    expect(r.containers.find((x) => x.name === 'agent-init')?.exitCode).toBe(0);
  });

  test('the same id again is ALREADY_EXISTS and leaves the existing Secrets alone', async () => {
    const { code } = await codeOf(start(agentRequest(id, key)));
    expect(code).toBe(status.ALREADY_EXISTS);
    expect(await exists(() => secrets().get(h.ns.name, `${pod}-pull`))).toBe(true);
    expect(await exists(() => secrets().get(h.ns.name, `${pod}-inline-files`))).toBe(true);
  });

  test('GetWorkloadLabels, ListWorkloads and FindWorkloadsByLabels see it', async () => {
    const { labels } = await call(c, 'getWorkloadLabels', { workloadId: id });
    expect(labels).toMatchObject({
      workload_key: key,
      team: 'qa',
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': id,
      'agyn.dev/managed-by': 'agents-orchestrator',
    });
    const { workloads: list } = await call(c, 'listWorkloads', {});
    expect(list).toContainEqual({ instanceId: pod, workloadKey: key });
    expect(
      (await call(c, 'findWorkloadsByLabels', { labels: { workload_key: key }, all: false }))
        .targetIds,
    ).toEqual([id]);
    expect(
      (
        await call(c, 'findWorkloadsByLabels', {
          labels: { workload_key: key, team: 'other' },
          all: true,
        })
      ).targetIds,
    ).toEqual([]);
  });

  test('volumes: listed, found by volume, refused while mounted', async () => {
    const claim = `ws-${key}`;
    await eventually(() => h.caches.pvc(claim), { what: 'the PVC in the cache' });
    expect((await call(c, 'listVolumes', {})).volumes).toContainEqual({
      instanceId: claim,
      volumeKey: key,
    });
    expect((await call(c, 'listWorkloadsByVolume', { volumeName: claim })).targetIds).toEqual([id]);
    expect((await codeOf(call(c, 'listWorkloadsByVolume', { volumeName: ' ' }))).details).toBe(
      'volume_name_required',
    );
    const inUse = await codeOf(call(c, 'removeVolume', { volumeName: claim, force: false }));
    expect(inUse.code).toBe(status.FAILED_PRECONDITION);
    expect(inUse.details).toContain('volume_in_use');
  });

  test('TouchWorkload records the time on the AgentWorkload', async () => {
    await call(c, 'touchWorkload', { workloadId: id });
    const aw = await workloads().get(h.ns.name, pod);
    expect(aw.metadata.annotations?.['agyn.io/touched-at']).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/,
    );
  });

  let firstUid: string | undefined;

  test('StopWorkload deletes the workload as upstream: NOT_FOUND afterwards, Secrets gone, the PVC kept', async () => {
    firstUid = (await workloads().get(h.ns.name, pod)).metadata.uid;
    await call(c, 'stopWorkload', { workloadId: id, timeoutSec: 5 });
    expect(await exists(() => pods().get(h.ns.name, pod))).toBe(false);
    expect(await exists(() => workloads().get(h.ns.name, pod))).toBe(false);
    for (const name of [`${pod}-pull`, `${pod}-inline-files`]) {
      expect(await exists(() => secrets().get(h.ns.name, name))).toBe(false);
    }
    expect((await codeOf(inspect(id))).code).toBe(status.NOT_FOUND);
    expect((await codeOf(call(c, 'getWorkloadLabels', { workloadId: id }))).code).toBe(
      status.NOT_FOUND,
    );
    expect((await call(c, 'listWorkloads', {})).workloads).not.toContainEqual({
      instanceId: pod,
      workloadKey: key,
    });
    expect(
      (await call(c, 'findWorkloadsByLabels', { labels: { workload_key: key }, all: true }))
        .targetIds,
    ).toEqual([]);
    expect((await call(c, 'listWorkloadsByVolume', { volumeName: `ws-${key}` })).targetIds).toEqual(
      [],
    );
    expect((await codeOf(call(c, 'stopWorkload', { workloadId: id, timeoutSec: 0 }))).code).toBe(
      status.NOT_FOUND,
    );
    const remove = call(c, 'removeWorkload', { workloadId: id, force: false, removeVolumes: true });
    expect((await codeOf(remove)).code).toBe(status.NOT_FOUND);
    expect(await exists(() => pvcs().get(h.ns.name, `ws-${key}`))).toBe(true);
  });

  test('StartWorkload with the same id after the stop starts a new workload on the kept volume', async () => {
    const response = await start(agentRequest(id, key));
    expect(response.status).toBe(WorkloadStatus.WORKLOAD_STATUS_STARTING);
    const aw = await workloads().get(h.ns.name, pod);
    expect(aw.metadata.uid).not.toBe(firstUid);
    const r = await waitRunning(id);
    expect(r.mounts).toContainEqual({
      type: 'pvc',
      source: `ws-${key}`,
      destination: '/workspace',
      readOnly: false,
    });
  });

  test('RemoveWorkload with remove_volumes deletes the CR and the volumes the operator created', async () => {
    await call(c, 'removeWorkload', { workloadId: id, force: true, removeVolumes: true });
    await eventually(async () => !(await exists(() => workloads().get(h.ns.name, pod))), {
      what: 'the CR to go',
    });
    await eventually(async () => !(await exists(() => pvcs().get(h.ns.name, `ws-${key}`))), {
      what: 'the PVC to go',
    });
    expect((await codeOf(inspect(id))).code).toBe(status.NOT_FOUND);
    expect(await call(c, 'removeVolume', { volumeName: `ws-${key}`, force: false })).toEqual({});
  });
});

test('a volume is removable right after its workload stopped, and again (idempotent)', async () => {
  const id = randomUUID();
  const claim = `ws-${id.slice(0, 8)}`;
  await start(namedVolumeWorkload(id, claim));
  await waitRunning(id);
  await eventually(() => h.caches.pvc(claim), { what: 'the PVC in the cache' });
  await call(c, 'stopWorkload', { workloadId: id, timeoutSec: 1 });
  expect((await call(c, 'listVolumes', {})).volumes).toContainEqual({
    instanceId: claim,
    volumeKey: claim,
  });
  expect(await call(c, 'removeVolume', { volumeName: claim, force: false })).toEqual({});
  await eventually(
    async () => {
      try {
        return Boolean((await pvcs().get(h.ns.name, claim)).metadata?.deletionTimestamp);
      } catch (err) {
        return isNotFound(err);
      }
    },
    { what: 'the PVC to go' },
  );
  expect(await call(c, 'removeVolume', { volumeName: claim, force: false })).toEqual({});
});

describe('errors', () => {
  test.each([
    ['InspectWorkload', () => call(c, 'inspectWorkload', { workloadId: ' ' })],
    ['GetWorkloadLabels', () => call(c, 'getWorkloadLabels', { workloadId: '' })],
    ['StopWorkload', () => call(c, 'stopWorkload', { workloadId: '', timeoutSec: 0 })],
    [
      'RemoveWorkload',
      () => call(c, 'removeWorkload', { workloadId: '', force: false, removeVolumes: false }),
    ],
    ['TouchWorkload', () => call(c, 'touchWorkload', { workloadId: '' })],
  ])('%s without an id is INVALID_ARGUMENT workload_id_required', async (_name, run) => {
    expect(await codeOf(run())).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'workload_id_required',
    });
  });

  test.each([
    ['InspectWorkload', () => call(c, 'inspectWorkload', { workloadId: 'missing-workload' })],
    ['GetWorkloadLabels', () => call(c, 'getWorkloadLabels', { workloadId: 'missing-workload' })],
    [
      'StopWorkload',
      () => call(c, 'stopWorkload', { workloadId: 'missing-workload', timeoutSec: 0 }),
    ],
    [
      'RemoveWorkload',
      () =>
        call(c, 'removeWorkload', {
          workloadId: 'missing-workload',
          force: true,
          removeVolumes: true,
        }),
    ],
    ['TouchWorkload', () => call(c, 'touchWorkload', { workloadId: 'missing-workload' })],
  ])('%s of an unknown workload is NOT_FOUND', async (_name, run) => {
    const { code, details } = await codeOf(run());
    expect(code).toBe(status.NOT_FOUND);
    expect(details).toBe(
      'resource not found: agentworkloads.agyn.io "workload-missing-workload" not found',
    );
  });

  test('invalid requests are refused before anything is created', async () => {
    const id = randomUUID();
    const { code, details } = await codeOf(
      start({
        workloadId: id,
        imagePullCredentials: [{ registry: 'r', username: 'u', password: 'p' }],
        main: { image: 'a', env: [{ name: '1X' }] },
      }),
    );
    expect(code).toBe(status.INVALID_ARGUMENT);
    expect(details).toMatch(/^invalid_env_name: main\.env\[0\]\.name/);
    expect(await exists(() => secrets().get(h.ns.name, `workload-${id}-pull`))).toBe(false);
    expect((await codeOf(start({}))).details).toBe('main_container_required');
    expect(
      (await codeOf(start({ main: { image: 'a' }, workloadId: 'not-a-uuid' }))).details,
    ).toMatch(/^workload_id_invalid/);
  });

  test('a failed start deletes the Secrets it created, and only those', async () => {
    const id = randomUUID();
    const pod = `workload-${id}`;
    await secrets().create(h.ns.name, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${pod}-inline-files` },
      data: { x: 'eA==' },
    } as ISecret & KubeObject);
    const { code } = await codeOf(
      start({
        workloadId: id,
        main: { image: 'a', inlineFileMounts: [{ path: '/a' }] },
        inlineFiles: { '/a': Buffer.from('a') },
        imagePullCredentials: [{ registry: 'r', username: 'u', password: 'p' }],
      }),
    );
    expect(code).toBe(status.ALREADY_EXISTS);
    expect(await exists(() => secrets().get(h.ns.name, `${pod}-pull`))).toBe(false);
    expect(await exists(() => secrets().get(h.ns.name, `${pod}-inline-files`))).toBe(true);
    expect(await exists(() => workloads().get(h.ns.name, pod))).toBe(false);
  });

  test('too many labels are refused with INVALID_ARGUMENT and nothing is left behind', async () => {
    const id = randomUUID();
    const { code, details } = await codeOf(
      start({
        workloadId: id,
        main: { image: 'a' },
        imagePullCredentials: [{ registry: 'r', username: 'u', password: 'p' }],
        labels: Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`l${i}`, 'v'])),
      }),
    );
    expect(code).toBe(status.INVALID_ARGUMENT);
    // Refused by the shim's own check (the CRD's limit in zod), before anything is created.
    expect(details).toMatch(/^invalid_workload_spec: spec\.labels: at most 64 entries$/);
    expect(await exists(() => secrets().get(h.ns.name, `workload-${id}-pull`))).toBe(false);
  });
});

describe('workloads written as CRs', () => {
  test('image pull failures surface with the runtime reason in InspectWorkload', async () => {
    const id = randomUUID();
    await createWorkload(
      h.kube,
      h.ns.name,
      workloadManifest(
        `workload-${id}`,
        { workloadId: id },
        { 'sim.agyn.io/scenario': 'image-pull-failed' },
      ),
    );
    const r = await eventually(
      async () => {
        const x = await inspect(id);
        const main = x.containers.find((m) => m.role === ContainerRole.CONTAINER_ROLE_MAIN);
        return main?.reason === 'ImagePullBackOff' ? x : undefined;
      },
      { what: 'ImagePullBackOff' },
    );
    expect(r.stateRunning).toBe(false);
    expect(r.stateStatus).toBe('pending');
    expect(r.containers.find((m) => m.role === ContainerRole.CONTAINER_ROLE_MAIN)).toMatchObject({
      status: ContainerStatus.CONTAINER_STATUS_WAITING,
      message: 'Back-off pulling image "example.invalid/agent:1"',
    });
  });

  test('a CR with any name is found by its spec.workloadId', async () => {
    const id = randomUUID();
    await createWorkload(h.kube, h.ns.name, workloadManifest('hand-written', { workloadId: id }));
    await eventually(() => h.caches.workload('hand-written'), { what: 'the CR in the cache' });
    const r = await inspect(id);
    expect(r.id).toBe(id);
    await call(c, 'removeWorkload', { workloadId: id, force: true, removeVolumes: false });
  });

  test('StartWorkload calls racing on one brand-new shared volume all run on it', async () => {
    // Three volumes, each named by two workloads started at the same moment: neither start
    // can see the other's claim (or workload) in a cache yet.
    const pairs = [0, 1, 2].map(() => {
      const ids = [randomUUID(), randomUUID()];
      return { ids, claim: `race-${ids[0]!.slice(0, 8)}` };
    });
    await Promise.all(
      pairs.flatMap(({ ids, claim }) =>
        ids.map((workloadId) =>
          start({
            workloadId,
            main: { image: 'agent', mounts: [{ volume: 'ws', mountPath: '/ws' }] },
            volumes: [{ name: 'ws', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: claim }],
          }),
        ),
      ),
    );
    const outcomes = await Promise.all(
      pairs.flatMap(({ ids }) =>
        ids.map((id) =>
          eventually(
            async () => {
              const w = await workloads().get(h.ns.name, `workload-${id}`);
              const phase = w.status?.phase;
              return phase === 'Running' || phase === 'Failed'
                ? `${id}: ${phase} ${phase === 'Failed' ? (w.status?.message ?? '') : ''}`.trim()
                : undefined;
            },
            { timeoutMs: 60_000, what: `${id} Running or Failed` },
          ),
        ),
      ),
    );
    expect(outcomes).toEqual(pairs.flatMap(({ ids }) => ids.map((id) => `${id}: Running`)));
    for (const { ids, claim } of pairs) {
      const labels = (await pvcs().get(h.ns.name, claim)).metadata?.labels ?? {};
      // Made for one of them, granted to the other (never shared with everyone).
      const owner = labels['agyn.io/workload-id'];
      expect(ids).toContain(owner);
      const other = ids.find((id) => id !== owner)!;
      expect(labels[`agyn.io/grant-${other}`]).toBe('true');
      expect(labels['agyn.io/volume-shared']).toBeUndefined();
    }
  }, 120_000);

  test('remove_volumes keeps a volume another workload uses, and one the operator did not create', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const shared = `shared-${a.slice(0, 8)}`;
    const foreign = `foreign-${a.slice(0, 8)}`;
    await pvcs().create(h.ns.name, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: foreign },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    } as IPersistentVolumeClaim & KubeObject);
    const volumes = [
      { name: 'shared', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: shared },
      { name: 'foreign', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: foreign },
    ];
    const mounts = [
      { volume: 'shared', mountPath: '/s' },
      { volume: 'foreign', mountPath: '/f' },
    ];
    await start({ workloadId: a, main: { image: 'a', mounts }, volumes });
    await start({ workloadId: b, main: { image: 'b', mounts }, volumes });
    await waitRunning(a);
    await waitRunning(b);
    await eventually(() => h.caches.pvc(shared), { what: 'the shared PVC' });
    await call(c, 'removeWorkload', { workloadId: a, force: true, removeVolumes: true });
    expect(await exists(() => pvcs().get(h.ns.name, shared))).toBe(true);
    expect(await exists(() => pvcs().get(h.ns.name, foreign))).toBe(true);
    expect((await call(c, 'listWorkloadsByVolume', { volumeName: shared })).targetIds).toEqual([b]);

    // With force, RemoveVolume deletes even a mounted volume (the PVC then terminates).
    expect(await call(c, 'removeVolume', { volumeName: foreign, force: true })).toEqual({});
    await eventually(
      async () => {
        try {
          const pvc = await pvcs().get(h.ns.name, foreign);
          return Boolean(pvc.metadata?.deletionTimestamp);
        } catch (err) {
          return isNotFound(err);
        }
      },
      { what: 'the foreign PVC to terminate' },
    );
    await eventually(
      () => h.caches.pvc(foreign)?.metadata?.deletionTimestamp ?? !h.caches.pvc(foreign),
      { what: 'cache' },
    );
    expect(await call(c, 'removeVolume', { volumeName: foreign, force: false })).toEqual({});
    expect(await call(c, 'removeVolume', { volumeName: 'never-existed', force: false })).toEqual(
      {},
    );
  });
});
