import { describe, expect, it } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import {
  ContainerRole,
  ContainerStatus,
  StartWorkloadRequest,
  VolumeKind,
  WorkloadStatus,
  type DeepPartial,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Workload } from '../../src/grpc/caches.ts';
import { RpcError } from '../../src/grpc/errors.ts';
import { labelProblem } from '../../src/api/common.ts';
import {
  inspectResponse,
  toWorkloadContainer,
  workloadStatusOf,
} from '../../src/grpc/translate-inspect.ts';
import { translateStartRequest, type StartPlan } from '../../src/grpc/translate-start.ts';
import { containerStatesFromPod } from '../../src/workload/container-states.ts';
import { agentWorkloadExample, EXAMPLE_WORKLOAD_ID } from '../fixtures/agent-workload-example.ts';

const ID = '9a0b1c2d-3333-4e5f-a6b7-cccccccccccc';
const NS = 'agyn-workloads';

function translate(partial: DeepPartial<StartWorkloadRequest>, runnerName?: string): StartPlan {
  return translateStartRequest(StartWorkloadRequest.fromPartial(partial), {
    namespace: NS,
    runnerName,
    newId: () => '11111111-2222-4333-8444-555555555555',
  });
}

function failure(partial: DeepPartial<StartWorkloadRequest>): { code: status; message: string } {
  try {
    translate(partial);
  } catch (err) {
    if (err instanceof RpcError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected an error');
}

const main = { image: 'alpine:3.20' };

/** The agent of shared/design/agent-pod-example.md as the orchestrator sends it. */
function agentRequest(): DeepPartial<StartWorkloadRequest> {
  return {
    workloadId: ID,
    additionalProperties: {
      'label.managed-by': 'agents-orchestrator',
      'label.agent-id': '7c1e2f90-1111-4a7b-9c3d-aaaaaaaaaaaa',
      'label.thread-id': '3f5d8e21-2222-4b6c-8d9e-bbbbbbbbbbbb',
      'label.workload_key': ID,
    },
    dnsConfig: {
      nameservers: ['127.0.0.1', '10.43.0.10'],
      searches: ['svc.cluster.local', 'cluster.local'],
    },
    imagePullCredentials: [{ registry: 'ghcr.io', username: 'bot', password: 'token' }],
    volumes: [
      { name: 'agyn-bin', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
      {
        name: 'vol-e8f70a1b',
        kind: VolumeKind.VOLUME_KIND_NAMED,
        persistentName: 'pv-3f5d8e21-222-e8f70a1b-444',
        labels: { volume_key: '0d9c8b7a-5555-4f6e-9d8c-dddddddddddd' },
      },
      { name: 'ziti-identity', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
    ],
    initContainers: [
      {
        name: 'ziti-sidecar',
        image: 'openziti/ziti-tunnel:2.0.0-pre8',
        cmd: ['tproxy', '--dnsUpstream', 'udp://10.43.0.10:53'],
        env: [{ name: 'ZITI_IDENTITY_BASENAME', value: 'agent' }],
        mounts: [{ volume: 'ziti-identity', mountPath: '/netfoundry' }],
        requiredCapabilities: ['NET_ADMIN'],
        additionalProperties: { restart_policy: 'Always' },
      },
      { name: 'ziti-gateway-wait', image: 'busybox:1.37.0', cmd: ['/bin/sh', '-c', 'true'] },
      {
        name: 'agent-init',
        image: 'ghcr.io/agynio/agent-init-codex:1.4.2',
        mounts: [{ volume: 'agyn-bin', mountPath: '/agyn-bin' }],
      },
    ],
    main: {
      name: 'agent-7c1e2f90-3f5d8e21',
      image: 'ghcr.io/agynio/workspace:1.4.2',
      cmd: ['/agyn-bin/agynd'],
      env: [{ name: 'AGENT_ID', value: '7c1e2f90-1111-4a7b-9c3d-aaaaaaaaaaaa' }],
      mounts: [
        { volume: 'vol-e8f70a1b', mountPath: '/workspace' },
        { volume: 'agyn-bin', mountPath: '/agyn-bin' },
      ],
    },
    sidecars: [
      {
        name: 'mcp-51aa2b3c',
        image: 'ghcr.io/agynio/files-mcp:latest',
        cmd: ['/bin/sh', '-c', 'files-mcp'],
      },
    ],
  };
}

describe('translateStartRequest', () => {
  it('maps the agent request onto an AgentWorkload named workload-<id> and its Secrets', () => {
    const plan = translate(agentRequest(), 'runner-eu-1');
    expect(plan.workloadId).toBe(ID);
    expect(plan.podName).toBe(`workload-${ID}`);
    const { metadata, spec } = plan.workload;
    expect(metadata).toEqual({
      name: `workload-${ID}`,
      namespace: NS,
      labels: {
        'managed-by': 'agents-orchestrator',
        'agent-id': '7c1e2f90-1111-4a7b-9c3d-aaaaaaaaaaaa',
        'thread-id': '3f5d8e21-2222-4b6c-8d9e-bbbbbbbbbbbb',
        workload_key: ID,
        'app.kubernetes.io/managed-by': 'k8s-runner',
        'agyn.io/workload-id': ID,
      },
      // The controller's finalizer in the create: no PATCH to add it.
      finalizers: ['agyn.io/workload-cleanup'],
      annotations: { 'agyn.io/ttl-seconds-after-stopped': '3600' },
    });
    expect(spec.workloadId).toBe(ID);
    expect(spec.runnerRef).toEqual({ name: 'runner-eu-1' });
    expect(spec.imagePullSecretRef).toEqual({ name: `workload-${ID}-pull` });
    expect(spec.dns).toEqual({
      nameservers: ['127.0.0.1', '10.43.0.10'],
      searches: ['svc.cluster.local', 'cluster.local'],
    });
    expect(spec.main).toEqual({
      name: 'agent-7c1e2f90-3f5d8e21',
      image: 'ghcr.io/agynio/workspace:1.4.2',
      args: ['/agyn-bin/agynd'],
      env: [{ name: 'AGENT_ID', value: '7c1e2f90-1111-4a7b-9c3d-aaaaaaaaaaaa' }],
      mounts: [
        { volume: 'vol-e8f70a1b', mountPath: '/workspace' },
        { volume: 'agyn-bin', mountPath: '/agyn-bin' },
      ],
    });
    // The leading native-sidecar init container becomes the ziti sidecar; order is kept.
    expect(spec.sidecars.map((s) => [s.name, s.role])).toEqual([
      ['mcp-51aa2b3c', 'mcp'],
      ['ziti-sidecar', 'ziti'],
    ]);
    expect(spec.sidecars[1]?.linuxCapabilities).toEqual(['NET_ADMIN']);
    expect(spec.initContainers.map((c) => c.name)).toEqual(['ziti-gateway-wait', 'agent-init']);
    expect(spec.volumes[1]).toEqual({
      name: 'vol-e8f70a1b',
      kind: 'Persistent',
      persistentName: 'pv-3f5d8e21-222-e8f70a1b-444',
      labels: {
        'managed-by': 'agents-orchestrator',
        'agent-id': '7c1e2f90-1111-4a7b-9c3d-aaaaaaaaaaaa',
        'thread-id': '3f5d8e21-2222-4b6c-8d9e-bbbbbbbbbbbb',
        workload_key: ID,
        volume_key: '0d9c8b7a-5555-4f6e-9d8c-dddddddddddd',
      },
    });
    expect(plan.sidecars).toEqual([
      { name: 'mcp-51aa2b3c', id: `workload-${ID}:mcp-51aa2b3c`, status: 'starting' },
    ]);

    expect(plan.secrets).toHaveLength(1);
    const pull = plan.secrets[0]!;
    expect(pull.metadata).toEqual({
      name: `workload-${ID}-pull`,
      namespace: NS,
      labels: { 'app.kubernetes.io/managed-by': 'k8s-runner', 'agyn.io/workload-id': ID },
    });
    expect(pull.type).toBe('kubernetes.io/dockerconfigjson');
    const config = JSON.parse(
      Buffer.from(pull.data?.['.dockerconfigjson'] ?? '', 'base64').toString(),
    );
    expect(config).toEqual({
      auths: {
        'ghcr.io': {
          username: 'bot',
          password: 'token',
          auth: Buffer.from('bot:token').toString('base64'),
        },
      },
    });
  });

  it('matches the fixture the pod builder tests use, field for field where both define it', () => {
    const plan = translate(agentRequest());
    const fixture = agentWorkloadExample();
    expect(plan.workloadId).toBe(EXAMPLE_WORKLOAD_ID);
    expect(plan.workload.spec.main.name).toBe(fixture.spec.main.name);
    expect(plan.workload.spec.sidecars.map((s) => [s.name, s.role]).sort()).toEqual(
      fixture.spec.sidecars.map((s) => [s.name, s.role]).sort(),
    );
    expect(plan.workload.spec.imagePullSecretRef).toEqual(fixture.spec.imagePullSecretRef);
  });

  it('generates an id, names containers by position and maps entrypoint/cmd to command/args', () => {
    const plan = translate({
      main: { image: ' alpine ', entrypoint: '/bin/app', cmd: ['--flag'], workingDir: '/w' },
      sidecars: [{ image: 'a' }, { image: 'b', name: 'hook-x' }],
      initContainers: [{ image: 'i' }],
      capabilities: ['Docker', 'docker'],
    });
    expect(plan.workloadId).toBe('11111111-2222-4333-8444-555555555555');
    const spec = plan.workload.spec;
    expect(spec.main).toEqual({
      name: 'main',
      image: 'alpine',
      command: ['/bin/app'],
      args: ['--flag'],
      workingDir: '/w',
    });
    expect(spec.sidecars.map((s) => [s.name, s.role])).toEqual([
      ['sidecar-1', 'other'],
      ['hook-x', 'hook'],
    ]);
    expect(spec.initContainers.map((c) => c.name)).toEqual(['init-1']);
    expect(spec.capabilities).toEqual(['docker']);
    expect(plan.sidecars.map((s) => s.name)).toEqual(['sidecar-1', 'hook-x', 'docker-daemon']);
    expect(plan.secrets).toEqual([]);
    expect(spec.runnerRef).toBeUndefined();
  });

  it('creates one inline-files Secret with keys by sorted path and mounts per container', () => {
    const plan = translate({
      workloadId: ID,
      main: { image: 'a', inlineFileMounts: [{ path: '/etc/b.conf' }] },
      sidecars: [
        { image: 's', inlineFileMounts: [{ path: '/etc/a.crt' }, { path: '/etc/b.conf' }] },
      ],
      inlineFiles: { '/etc/b.conf': Buffer.from('B'), '/etc/a.crt': Buffer.from('A') },
    });
    const secret = plan.secrets[0]!;
    expect(secret.metadata.name).toBe(`workload-${ID}-inline-files`);
    expect(secret.type).toBe('Opaque');
    expect(secret.data).toEqual({
      'inline-file-0': Buffer.from('A').toString('base64'),
      'inline-file-1': Buffer.from('B').toString('base64'),
    });
    expect(plan.workload.spec.inlineFiles).toEqual({
      secretRef: { name: `workload-${ID}-inline-files` },
      files: [
        { path: '/etc/a.crt', key: 'inline-file-0' },
        { path: '/etc/b.conf', key: 'inline-file-1' },
      ],
    });
    expect(plan.workload.spec.main.inlineFileMounts).toEqual(['/etc/b.conf']);
    expect(plan.workload.spec.sidecars[0]?.inlineFileMounts).toEqual(['/etc/a.crt', '/etc/b.conf']);
  });

  it('reads size and storage class of a named volume from additional_properties', () => {
    const plan = translate({
      main,
      volumes: [
        {
          name: 'data',
          kind: VolumeKind.VOLUME_KIND_NAMED,
          additionalProperties: { size: '5Gi', storage_class: 'fast' },
        },
      ],
    });
    expect(plan.workload.spec.volumes[0]).toEqual({
      name: 'data',
      kind: 'Persistent',
      persistentName: 'data',
      size: '5Gi',
      storageClass: 'fast',
    });
  });

  it('accepts agyn.dev/managed-by only with its fixed value, and drops it (the Pod gets it anyway)', () => {
    const plan = translate({
      main,
      additionalProperties: { 'label.agyn.dev/managed-by': 'agents-orchestrator' },
    });
    expect(plan.workload.spec.labels).toBeUndefined();
    expect(failure({ main, labels: { 'agyn.dev/managed-by': 'x' } }).message).toMatch(
      /^invalid_label: /,
    );
  });

  const cases: Array<[string, DeepPartial<StartWorkloadRequest>, string]> = [
    ['no main', {}, 'main_container_required'],
    ['blank main image', { main: { image: ' ' } }, 'main_container_image_required: main.image'],
    ['uppercase id', { main, workloadId: ID.toUpperCase() }, 'workload_id_invalid'],
    ['non-uuid id', { main, workloadId: 'missing-workload' }, 'workload_id_invalid'],
    [
      'bare label.',
      { main, additionalProperties: { 'label.': 'x' } },
      'invalid_label: empty label key',
    ],
    ['bad label key', { main, labels: { 'a b': 'x' } }, 'invalid_label: invalid label key'],
    ['bad label value', { main, labels: { a: 'x y' } }, 'invalid_label: invalid value'],
    [
      'reserved label',
      { main, labels: { 'agyn.io/workload-id': 'x' } },
      'invalid_label: label "agyn.io/workload-id" is reserved',
    ],
    ['blank capability', { main, capabilities: [' '] }, 'capability_required: capabilities[0]'],
    [
      'blank registry',
      { main, imagePullCredentials: [{ username: 'u', password: 'p' }] },
      'image_pull_registry_required',
    ],
    [
      'blank username',
      { main, imagePullCredentials: [{ registry: 'r', password: 'p' }] },
      'image_pull_username_required',
    ],
    [
      'empty password',
      { main, imagePullCredentials: [{ registry: 'r', username: 'u' }] },
      'image_pull_password_required',
    ],
    [
      'volume without name',
      { main, volumes: [{ kind: VolumeKind.VOLUME_KIND_EPHEMERAL }] },
      'volume_name_required',
    ],
    [
      'volume name not DNS',
      { main, volumes: [{ name: 'Data_1', kind: VolumeKind.VOLUME_KIND_EPHEMERAL }] },
      'invalid_volume_name',
    ],
    [
      'duplicate volume',
      {
        main,
        volumes: [
          { name: 'a', kind: 1 },
          { name: 'a', kind: 1 },
        ],
      },
      'duplicate_volume_name: a',
    ],
    ['volume kind unspecified', { main, volumes: [{ name: 'a' }] }, 'volume_kind_required'],
    [
      'pvc name with underscore',
      { main, volumes: [{ name: 'a', kind: 2, persistentName: 'ha_ws_1' }] },
      'invalid_pvc_name',
    ],
    [
      'bad volume label',
      { main, volumes: [{ name: 'a', kind: 2, labels: { 'app.kubernetes.io/managed-by': 'x' } }] },
      'invalid_volume_label',
    ],
    [
      'bad volume size',
      { main, volumes: [{ name: 'a', kind: 2, additionalProperties: { size: 'lots' } }] },
      'invalid_volume_size',
    ],
    [
      'container name not DNS',
      { main: { image: 'a', name: 'Main' } },
      'invalid_container_name: main.name',
    ],
    [
      'duplicate container',
      { main, sidecars: [{ image: 'b', name: 'main' }] },
      'duplicate_container_name: main',
    ],
    [
      'blank sidecar image',
      { main, sidecars: [{ name: 's' }] },
      'container_image_required: sidecars[0].image',
    ],
    [
      'entrypoint with spaces',
      { main: { image: 'a', entrypoint: '/bin/sh -c' } },
      'entrypoint_must_be_single_path',
    ],
    [
      'blank env name',
      { main: { image: 'a', env: [{ name: ' ' }] } },
      'env_name_required: main.env[0].name',
    ],
    [
      'bad env name',
      { main: { image: 'a', env: [{ name: '1ABC' }] } },
      'invalid_env_name: main.env[0].name',
    ],
    [
      'mount without volume',
      { main: { image: 'a', mounts: [{ mountPath: '/x' }] } },
      'volume_mount_name_required',
    ],
    [
      'mount of unknown volume',
      { main: { image: 'a', mounts: [{ volume: 'v', mountPath: '/x' }] } },
      'volume_not_defined: v',
    ],
    [
      'mount without path',
      { main: { image: 'a', mounts: [{ volume: 'v' }] }, volumes: [{ name: 'v', kind: 1 }] },
      'mount_path_required',
    ],
    [
      'relative mount path',
      {
        main: { image: 'a', mounts: [{ volume: 'v', mountPath: 'x' }] },
        volumes: [{ name: 'v', kind: 1 }],
      },
      'mount_path_invalid',
    ],
    [
      'bad linux capability',
      { main: { image: 'a', requiredCapabilities: ['net-admin'] } },
      'invalid_required_capability',
    ],
    [
      'native sidecar on main',
      { main: { image: 'a', additionalProperties: { restart_policy: 'Always' } } },
      'restart_policy_not_allowed',
    ],
    [
      'bad sidecar role',
      { main, sidecars: [{ image: 'b', additionalProperties: { role: 'boss' } }] },
      'invalid_sidecar_role',
    ],
    [
      'inline mount without files',
      { main: { image: 'a', inlineFileMounts: [{ path: '/a' }] } },
      'inline_file_not_defined: /a',
    ],
    [
      'inline mount of unknown file',
      {
        main: { image: 'a', inlineFileMounts: [{ path: '/b' }] },
        inlineFiles: { '/a': Buffer.from('') },
      },
      'inline_file_not_defined: /b',
    ],
    [
      'unreferenced inline file',
      { main, inlineFiles: { '/a': Buffer.from('') } },
      'inline_file_not_referenced: /a',
    ],
    [
      'relative inline path',
      { main, inlineFiles: { 'a/b': Buffer.from('') } },
      'inline_file_path_invalid: a/b',
    ],
    [
      'unclean inline path',
      { main, inlineFiles: { '/a/../b': Buffer.from('') } },
      'inline_file_path_invalid: /a/../b',
    ],
    [
      'docker container conflict',
      { main, capabilities: ['docker'], sidecars: [{ image: 'b', name: 'docker-daemon' }] },
      'capability_container_name_conflict: docker-daemon',
    ],
    [
      'docker volume conflict',
      { main, capabilities: ['docker'], volumes: [{ name: 'docker-data', kind: 1 }] },
      'capability_volume_name_conflict: docker-data',
    ],
    [
      'four nameservers',
      { main, dnsConfig: { nameservers: ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4'] } },
      'invalid_dns_config',
    ],
    [
      'nameserver not an IP',
      { main, dnsConfig: { nameservers: ['dns.example'] } },
      'invalid_dns_config',
    ],
    [
      'too many env vars',
      { main: { image: 'a', env: Array.from({ length: 300 }, (_, i) => ({ name: `E${i}` })) } },
      'invalid_workload_spec: spec.main.env',
    ],
  ];

  it.each(cases)('refuses %s with INVALID_ARGUMENT', (_name, request, expected) => {
    const { code, message } = failure(request);
    expect(code).toBe(status.INVALID_ARGUMENT);
    expect(message.startsWith(expected)).toBe(true);
  });

  it('checks main before the workload id, and labels before credentials (upstream order)', () => {
    expect(failure({ workloadId: 'bad' }).message).toBe('main_container_required');
    expect(
      failure({ main, labels: { 'a b': 'x' }, imagePullCredentials: [{ registry: '' }] }).message,
    ).toMatch(/^invalid_label/);
  });
});

describe('labelProblem', () => {
  it.each([
    ['team', 'x', undefined],
    ['example.com/team', 'a-b_c.d', undefined],
    ['a/b/c', 'x', 'invalid label key "a/b/c"'],
    ['Example.com/team', 'x', 'invalid label key "Example.com/team"'],
    ['team', 'x'.repeat(64), `invalid value "${'x'.repeat(64)}" for label "team"`],
    ['team', '', undefined],
  ])('%s=%s', (key, value, problem) => {
    expect(labelProblem(key, value)).toBe(problem);
  });
});

function workload(
  status: Workload['status'] = undefined,
  spec: Partial<Workload['spec']> = {},
): Workload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: `workload-${ID}`, namespace: NS, uid: 'u-1' },
    spec: {
      workloadId: ID,
      main: {
        name: 'main',
        image: 'alpine:3.20',
        mounts: [
          { volume: 'ws', mountPath: '/workspace' },
          { volume: 'tmp', mountPath: '/tmp', readOnly: true },
        ],
      },
      sidecars: [{ name: 'ziti', image: 'ziti:1', role: 'ziti' }],
      initContainers: [{ name: 'init', image: 'init:1' }],
      volumes: [
        { name: 'ws', kind: 'Persistent', persistentName: 'pv-ws' },
        { name: 'tmp', kind: 'Ephemeral' },
      ],
      capabilities: [],
      stopped: false,
      restartPolicy: 'Never',
      deleteVolumesWithWorkload: false,
      labels: { workload_key: 'k' },
      ...spec,
    },
    status,
  };
}

const runningPod: IPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: `workload-${ID}`, labels: { a: 'b' } },
  spec: {
    initContainers: [
      { name: 'ziti', image: 'ziti:1', restartPolicy: 'Always' },
      { name: 'init', image: 'init:1' },
    ],
    containers: [
      { name: 'main', image: 'alpine:3.20' },
      { name: 'docker-daemon', image: 'docker:27-dind' },
    ],
  },
  status: {
    phase: 'Running',
    initContainerStatuses: [
      {
        name: 'ziti',
        image: 'ziti:1',
        imageID: '',
        ready: true,
        restartCount: 0,
        containerID: 'c://z',
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
      },
      {
        name: 'init',
        image: 'init:1',
        imageID: '',
        ready: true,
        restartCount: 0,
        state: {
          terminated: {
            exitCode: 0,
            reason: 'Completed',
            startedAt: '2026-01-01T00:00:00Z',
            finishedAt: '2026-01-01T00:00:01Z',
          },
        },
      },
    ],
    containerStatuses: [
      {
        name: 'main',
        image: 'docker.io/library/alpine:3.20',
        imageID: '',
        ready: true,
        restartCount: 2,
        containerID: 'c://m',
        state: { running: { startedAt: '2026-01-01T00:00:02Z' } },
      },
      {
        name: 'docker-daemon',
        image: 'docker:27-dind',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: 'ImagePullBackOff', message: 'back-off' } },
      },
    ],
  },
};

describe('inspectResponse', () => {
  it('names the workload by the one workload-id rule: a forged status.workloadId is not believed', () => {
    const forged = workload({ phase: 'Running', workloadId: 'someone-elses-id' });
    expect(inspectResponse(forged, undefined).id).toBe(ID);
    const recordedUid = workload({ phase: 'Running', workloadId: 'u-1' });
    expect(inspectResponse(recordedUid, undefined).id).toBe('u-1');
  });

  it('reports a running workload from its Pod: roles per contract, images, mounts, state', () => {
    const response = inspectResponse(workload({ phase: 'Running' }), runningPod as never);
    expect(response.id).toBe(ID);
    expect(response.name).toBe(ID);
    expect(response.configImage).toBe('alpine:3.20');
    expect(response.image).toBe('docker.io/library/alpine:3.20');
    expect(response.configLabels).toEqual({ a: 'b' });
    expect(response.stateStatus).toBe('running');
    expect(response.stateRunning).toBe(true);
    expect(response.mounts).toEqual([
      { type: 'pvc', source: 'pv-ws', destination: '/workspace', readOnly: false },
      { type: 'emptydir', source: 'tmp', destination: '/tmp', readOnly: true },
    ]);
    expect(response.containers.map((c) => [c.name, c.role, c.status])).toEqual([
      ['ziti', ContainerRole.CONTAINER_ROLE_SIDECAR, ContainerStatus.CONTAINER_STATUS_RUNNING],
      ['init', ContainerRole.CONTAINER_ROLE_INIT, ContainerStatus.CONTAINER_STATUS_TERMINATED],
      ['main', ContainerRole.CONTAINER_ROLE_MAIN, ContainerStatus.CONTAINER_STATUS_RUNNING],
      [
        'docker-daemon',
        ContainerRole.CONTAINER_ROLE_SIDECAR,
        ContainerStatus.CONTAINER_STATUS_WAITING,
      ],
    ]);
    expect(response.containers[1]).toMatchObject({
      exitCode: 0,
      reason: 'Completed',
      finishedAt: new Date('2026-01-01T00:00:01Z'),
    });
    expect(response.containers[2]).toMatchObject({
      restartCount: 2,
      containerId: 'c://m',
      startedAt: new Date('2026-01-01T00:00:02Z'),
    });
    expect(response.containers[2]?.reason).toBeUndefined();
    expect(response.containers[3]).toMatchObject({
      reason: 'ImagePullBackOff',
      message: 'back-off',
    });
  });

  it('is not running unless the workload phase is Running and it is not stopping', () => {
    expect(inspectResponse(workload({ phase: 'Starting' }), runningPod as never).stateRunning).toBe(
      false,
    );
    expect(
      inspectResponse(workload({ phase: 'Running' }, { stopped: true }), runningPod as never)
        .stateRunning,
    ).toBe(false);
    const terminating = {
      ...runningPod,
      metadata: { ...runningPod.metadata, deletionTimestamp: '2026-01-01T00:00:03Z' },
    };
    expect(inspectResponse(workload({ phase: 'Running' }), terminating as never).stateRunning).toBe(
      false,
    );
  });

  it('reports a stopped workload (no Pod) from its status, with computed labels', () => {
    const response = inspectResponse(
      workload({
        phase: 'Stopped',
        runner: 'r1',
        containers: [
          {
            name: 'main',
            role: 'main',
            image: 'alpine:3.20',
            state: 'terminated',
            exitCode: 0,
            restartCount: 0,
          },
        ],
      }),
      undefined,
    );
    expect(response.stateStatus).toBe('stopped');
    expect(response.stateRunning).toBe(false);
    expect(response.configLabels).toEqual({
      workload_key: 'k',
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': ID,
      'agyn.io/runner': 'r1',
      'agyn.dev/managed-by': 'agents-orchestrator',
    });
    expect(response.containers).toEqual([
      expect.objectContaining({
        name: 'main',
        status: ContainerStatus.CONTAINER_STATUS_TERMINATED,
        exitCode: 0,
      }),
    ]);
  });

  it('reports containers without a status as UNSPECIFIED', () => {
    const pod: IPod = { ...runningPod, status: { phase: 'Pending' } };
    const states = containerStatesFromPod(pod, workload().spec);
    const main = toWorkloadContainer(states.find((s) => s.role === 'main')!);
    expect(main).toEqual({
      containerId: '',
      name: 'main',
      role: ContainerRole.CONTAINER_ROLE_MAIN,
      image: 'alpine:3.20',
      status: ContainerStatus.CONTAINER_STATUS_UNSPECIFIED,
      restartCount: 0,
    });
  });
});

describe('workloadStatusOf', () => {
  it.each([
    [undefined, WorkloadStatus.WORKLOAD_STATUS_STARTING],
    ['Pending', WorkloadStatus.WORKLOAD_STATUS_STARTING],
    ['Starting', WorkloadStatus.WORKLOAD_STATUS_STARTING],
    ['Running', WorkloadStatus.WORKLOAD_STATUS_RUNNING],
    ['Stopping', WorkloadStatus.WORKLOAD_STATUS_STOPPED],
    ['Stopped', WorkloadStatus.WORKLOAD_STATUS_STOPPED],
  ] as const)('phase %s → %s without failure', (phase, expected) => {
    const result = workloadStatusOf(workload(phase ? { phase } : undefined));
    expect(result).toEqual({ status: expected });
  });

  it('gives a failure only when FAILED', () => {
    expect(
      workloadStatusOf(
        workload({
          phase: 'Failed',
          reason: 'image_pull_failed',
          message: 'no such image',
          podName: 'p',
        }),
      ),
    ).toEqual({
      status: WorkloadStatus.WORKLOAD_STATUS_FAILED,
      failure: { code: 'image_pull_failed', message: 'no such image', details: { pod_name: 'p' } },
    });
  });
});
