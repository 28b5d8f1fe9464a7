import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { AgentWorkload, VolumeSpec } from '../../src/api/agentworkload.ts';
import { DEFAULT_WORKLOAD_SECURITY, type DockerImplementation } from '../../src/api/runner.ts';
import {
  DOCKER_DIND_IMAGE,
  DOCKER_DIND_ROOTLESS_IMAGE,
  DOCKER_HOST,
  DOCKER_ROOTLESS_ANNOTATIONS,
  DOCKER_SUBID_SCRIPT,
  WorkloadConfigError,
  buildPersistentVolumeClaim,
  buildPod,
  inlineFilesSecretName,
  pullSecretName,
  type PodBuildInput,
} from '../../src/workload/pod-builder.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import {
  EXAMPLE_AGENT_ID,
  EXAMPLE_NAMESPACE,
  EXAMPLE_POD_NAME,
  EXAMPLE_THREAD_ID,
  EXAMPLE_UID,
  EXAMPLE_VOLUME_KEY,
  EXAMPLE_WORKLOAD_ID,
  agentWorkloadExample,
  minimalWorkloadSpec,
  runnerSettingsExample,
} from '../fixtures/agent-workload-example.ts';

function makeInput(
  edit: (workload: AgentWorkload, runner: RunnerSettings) => void = () => {},
): PodBuildInput {
  const workload = agentWorkloadExample();
  const runner = runnerSettingsExample();
  edit(workload, runner);
  return { workload, workloadId: EXAMPLE_WORKLOAD_ID, podName: EXAMPLE_POD_NAME, runner };
}

function minimalInput(
  edit: (workload: AgentWorkload, runner: RunnerSettings) => void = () => {},
): PodBuildInput {
  return makeInput((workload, runner) => {
    workload.spec = minimalWorkloadSpec();
    runner.pullSecrets = [];
    edit(workload, runner);
  });
}

function podSpec(input: PodBuildInput) {
  const spec = buildPod(input).spec;
  if (!spec) throw new Error('pod without spec');
  return spec;
}

function containerNamed(pod: IPod, name: string): IContainer {
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const found = all.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

function configError(build: () => unknown): WorkloadConfigError {
  try {
    build();
  } catch (err) {
    if (err instanceof WorkloadConfigError) return err;
    throw err;
  }
  throw new Error('expected a WorkloadConfigError');
}

/** The security context every workload container gets (the example Runner allows root). */
function hardened(add: string[] = [], nonRoot = false): Record<string, unknown> {
  return {
    allowPrivilegeEscalation: false,
    capabilities: add.length > 0 ? { drop: ['ALL'], add } : { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
    ...(nonRoot ? { runAsNonRoot: true } : {}),
  };
}
const H = hardened();

const ownerReference = {
  apiVersion: 'agyn.io/v1alpha1',
  kind: 'AgentWorkload',
  name: EXAMPLE_POD_NAME,
  uid: EXAMPLE_UID,
};

describe('buildPod: the agent-pod-example workload', () => {
  it('produces the full layout', () => {
    expect(buildPod(makeInput())).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: EXAMPLE_POD_NAME,
        namespace: EXAMPLE_NAMESPACE,
        labels: {
          'managed-by': 'agents-orchestrator',
          'agent-id': EXAMPLE_AGENT_ID,
          'thread-id': EXAMPLE_THREAD_ID,
          workload_key: EXAMPLE_WORKLOAD_ID,
          'app.kubernetes.io/managed-by': 'k8s-runner',
          'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
          'agyn.io/runner': 'runner-eu-1',
          'agyn.dev/managed-by': 'agents-orchestrator',
        },
        annotations: {
          'agyn.io/pvc-names': 'pv-3f5d8e21-222-e8f70a1b-444',
          'agyn.io/pull-secret-names': `${EXAMPLE_POD_NAME}-pull`,
        },
        ownerReferences: [{ ...ownerReference, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        initContainers: [
          {
            name: 'ziti-sidecar',
            image: 'openziti/ziti-tunnel:2.0.0-pre8',
            args: ['tproxy', '--dnsUpstream', 'udp://10.43.0.10:53'],
            env: [
              { name: 'ZITI_IDENTITY_BASENAME', value: 'agent' },
              { name: 'ZITI_ENROLL_TOKEN', value: 'ziti-enrollment-jwt-placeholder' },
            ],
            volumeMounts: [{ name: 'ziti-identity', mountPath: '/netfoundry' }],
            securityContext: hardened(['NET_ADMIN']),
            restartPolicy: 'Always',
          },
          {
            name: 'ziti-gateway-wait',
            image: 'busybox:1.37.0',
            args: [
              '/bin/sh',
              '-c',
              'for i in $(seq 1 60); do nslookup gateway.ziti 127.0.0.1 && exit 0; sleep 1; done; exit 1',
            ],
            securityContext: H,
          },
          {
            name: 'agent-init',
            image: 'ghcr.io/agynio/agent-init-codex:1.4.2',
            volumeMounts: [{ name: 'agyn-bin', mountPath: '/agyn-bin' }],
            securityContext: H,
          },
        ],
        containers: [
          {
            name: 'agent-7c1e2f90-3f5d8e21',
            image: 'ghcr.io/agynio/workspace:1.4.2',
            args: ['/agyn-bin/agynd'],
            env: [
              { name: 'AGENT_ID', value: EXAMPLE_AGENT_ID },
              { name: 'AGENT_NAME', value: 'reviewer' },
              { name: 'AGENT_ROLE', value: 'assistant' },
              { name: 'AGENT_MODEL', value: '6b7c8d9e-6666-4a1b-8c2d-ffffffffffff' },
              { name: 'AGENT_CONFIG', value: '{"instructions":"review pull requests"}' },
              { name: 'THREAD_ID', value: EXAMPLE_THREAD_ID },
              { name: 'GATEWAY_ADDRESS', value: 'gateway.ziti:443' },
              { name: 'AGYN_GATEWAY_URL', value: 'http://gateway.ziti:443' },
              { name: 'LLM_BASE_URL', value: 'http://llm-proxy.ziti/v1' },
              { name: 'TRACING_ADDRESS', value: 'tracing.ziti:443' },
              { name: 'GITHUB_TOKEN', value: 'github-token-placeholder' },
              { name: 'AGENT_MCP_SERVERS', value: 'files:8100' },
              { name: 'WORKLOAD_ID', value: EXAMPLE_WORKLOAD_ID },
            ],
            volumeMounts: [
              { name: 'vol-e8f70a1b', mountPath: '/workspace' },
              { name: 'agyn-bin', mountPath: '/agyn-bin' },
            ],
            securityContext: H,
          },
          {
            name: 'mcp-51aa2b3c',
            image: 'ghcr.io/agynio/files-mcp:latest',
            args: ['/bin/sh', '-c', 'files-mcp'],
            env: [
              { name: 'MCP_PORT', value: '8100' },
              { name: 'GATEWAY_ADDRESS', value: 'gateway.ziti:443' },
              { name: 'AGYN_GATEWAY_URL', value: 'http://gateway.ziti:443' },
              { name: 'MAX_FILE_SIZE', value: '10485760' },
            ],
            securityContext: H,
          },
        ],
        volumes: [
          { name: 'agyn-bin', emptyDir: {} },
          {
            name: 'vol-e8f70a1b',
            persistentVolumeClaim: { claimName: 'pv-3f5d8e21-222-e8f70a1b-444' },
          },
          { name: 'ziti-identity', emptyDir: {} },
        ],
        imagePullSecrets: [{ name: `${EXAMPLE_POD_NAME}-pull` }, { name: 'registry-mirror' }],
        dnsPolicy: 'None',
        dnsConfig: {
          nameservers: ['127.0.0.1', '10.43.0.10'],
          searches: ['svc.cluster.local', 'cluster.local'],
        },
      },
    });
  });

  it('builds the claim of its persistent workspace', () => {
    const input = makeInput();
    const volume = input.workload.spec.volumes[1] as VolumeSpec;
    expect(buildPersistentVolumeClaim(input, volume)).toEqual({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name: 'pv-3f5d8e21-222-e8f70a1b-444',
        namespace: EXAMPLE_NAMESPACE,
        labels: {
          volume_key: EXAMPLE_VOLUME_KEY,
          'app.kubernetes.io/managed-by': 'k8s-runner',
          'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
          'agyn.io/runner': 'runner-eu-1',
        },
      },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '10Gi' } },
        storageClassName: 'standard',
      },
    });
  });

  it('is deterministic and neither mutates nor aliases its input', () => {
    const input = makeInput((w, r) => {
      w.spec.capabilities = ['docker', 'gpu'];
      w.spec.inlineFiles = {
        secretRef: { name: inlineFilesSecretName(EXAMPLE_POD_NAME) },
        files: [{ path: '/etc/agyn/egress-ca/ca.crt', key: 'inline-file-0' }],
      };
      w.spec.main.inlineFileMounts = ['/etc/agyn/egress-ca/ca.crt'];
      r.docker = 'rootless';
      r.capabilities = ['gpu'];
      r.scheduling = {
        nodeSelector: { pool: 'gpu' },
        tolerations: [{ key: 'gpu', operator: 'Exists' }],
      };
    });
    const before = structuredClone(input);
    const first = buildPod(input);
    const second = buildPod(input);
    expect(second).toEqual(first);
    expect(input).toEqual(before);

    first.spec?.containers[0]?.env?.push({ name: 'X', value: 'y' });
    first.spec?.tolerations?.push({ key: 'other' });
    if (first.spec?.nodeSelector) first.spec.nodeSelector.pool = 'changed';
    if (first.metadata?.labels) first.metadata.labels['agent-id'] = 'changed';
    expect(input).toEqual(before);
    expect(buildPod(input)).toEqual(second);
  });
});

describe('buildPod: containers by role', () => {
  it('maps main to index 0 with command, args, env, workingDir, mounts and Linux capabilities', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        r.security = {
          ...r.security,
          capabilities: { ...r.security.capabilities, main: ['SYS_PTRACE'] },
        };
        w.spec.volumes = [{ name: 'work', kind: 'Ephemeral' }];
        w.spec.main = {
          name: 'main',
          image: 'alpine:3.20',
          command: ['/bin/agent'],
          args: ['--serve'],
          env: [{ name: 'A', value: '1' }],
          workingDir: '/work',
          mounts: [{ volume: 'work', mountPath: '/work', readOnly: true }],
          linuxCapabilities: ['SYS_PTRACE'],
        };
      }),
    );
    expect(spec.containers[0]).toEqual({
      name: 'main',
      image: 'alpine:3.20',
      command: ['/bin/agent'],
      args: ['--serve'],
      env: [{ name: 'A', value: '1' }],
      workingDir: '/work',
      volumeMounts: [{ name: 'work', mountPath: '/work', readOnly: true }],
      securityContext: hardened(['SYS_PTRACE']),
    });
  });

  it('leaves out empty fields and adds no capability without Linux capabilities', () => {
    const spec = podSpec(
      minimalInput((w) => {
        w.spec.main = {
          ...w.spec.main,
          command: [],
          args: [],
          env: [],
          mounts: [],
          linuxCapabilities: [],
        };
      }),
    );
    expect(spec.containers).toEqual([{ name: 'main', image: 'alpine:3.20', securityContext: H }]);
    expect(spec.initContainers).toBeUndefined();
    expect(spec.volumes).toBeUndefined();
    expect(spec.imagePullSecrets).toBeUndefined();
    expect(spec.dnsPolicy).toBeUndefined();
    expect(spec.nodeSelector).toBeUndefined();
    expect(spec.tolerations).toBeUndefined();
    expect(spec.hostUsers).toBeUndefined();
    expect(spec.runtimeClassName).toBeUndefined();
  });

  it('places mcp, hook and other sidecars after main, grouped by role in spec order', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        r.security = {
          ...r.security,
          capabilities: { ...r.security.capabilities, hook: ['NET_RAW'] },
        };
        w.spec.sidecars = [
          { name: 'other-1', role: 'other', image: 'o:1' },
          { name: 'hook-1', role: 'hook', image: 'h:1', linuxCapabilities: ['NET_RAW'] },
          { name: 'mcp-1', role: 'mcp', image: 'm:1', args: ['serve'] },
          { name: 'mcp-2', role: 'mcp', image: 'm:2' },
          { name: 'other-2', role: 'other', image: 'o:2' },
        ];
      }),
    );
    expect(spec.containers.map((c) => c.name)).toEqual([
      'main',
      'mcp-1',
      'mcp-2',
      'hook-1',
      'other-1',
      'other-2',
    ]);
    expect(spec.containers[1]).toEqual({
      name: 'mcp-1',
      image: 'm:1',
      args: ['serve'],
      securityContext: H,
    });
    expect(spec.containers[3]).toEqual({
      name: 'hook-1',
      image: 'h:1',
      securityContext: hardened(['NET_RAW']),
    });
    expect(spec.containers.every((c) => c.restartPolicy === undefined)).toBe(true);
    expect(spec.initContainers).toBeUndefined();
  });

  it('starts ziti sidecars first, as native sidecars, before every init container', () => {
    const spec = podSpec(
      minimalInput((w) => {
        w.spec.initContainers = [
          { name: 'init-a', image: 'i:a' },
          { name: 'native', image: 'n:1', restartPolicy: 'Always' },
        ];
        w.spec.sidecars = [
          { name: 'mcp', role: 'mcp', image: 'm:1' },
          { name: 'ziti-1', role: 'ziti', image: 'z:1', linuxCapabilities: ['NET_ADMIN'] },
          { name: 'ziti-2', role: 'ziti', image: 'z:2' },
        ];
      }),
    );
    expect(spec.initContainers).toEqual([
      {
        name: 'ziti-1',
        image: 'z:1',
        securityContext: hardened(['NET_ADMIN']),
        restartPolicy: 'Always',
      },
      { name: 'ziti-2', image: 'z:2', securityContext: H, restartPolicy: 'Always' },
      { name: 'init-a', image: 'i:a', securityContext: H },
      { name: 'native', image: 'n:1', securityContext: H, restartPolicy: 'Always' },
    ]);
    expect(spec.containers.map((c) => c.name)).toEqual(['main', 'mcp']);
  });

  it('keeps ordinary init containers in spec order without a restart policy', () => {
    const spec = podSpec(
      minimalInput((w) => {
        w.spec.volumes = [{ name: 'bin', kind: 'Ephemeral' }];
        w.spec.initContainers = [
          {
            name: 'copy-a',
            image: 'a:1',
            command: ['cp'],
            args: ['/a', '/bin'],
            mounts: [{ volume: 'bin', mountPath: '/bin' }],
          },
          { name: 'copy-b', image: 'b:1', workingDir: '/tmp' },
        ];
      }),
    );
    expect(spec.initContainers).toEqual([
      {
        name: 'copy-a',
        image: 'a:1',
        command: ['cp'],
        args: ['/a', '/bin'],
        volumeMounts: [{ name: 'bin', mountPath: '/bin' }],
        securityContext: H,
      },
      { name: 'copy-b', image: 'b:1', workingDir: '/tmp', securityContext: H },
    ]);
  });

  it('keeps an init container with restartPolicy Always as a native sidecar in its place', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        r.security = {
          ...r.security,
          capabilities: { ...r.security.capabilities, init: ['NET_ADMIN'] },
        };
        w.spec.initContainers = [
          {
            name: 'tunnel',
            image: 't:1',
            restartPolicy: 'Always',
            linuxCapabilities: ['NET_ADMIN'],
          },
          { name: 'wait', image: 'w:1' },
        ];
      }),
    );
    expect(spec.initContainers).toEqual([
      {
        name: 'tunnel',
        image: 't:1',
        securityContext: hardened(['NET_ADMIN']),
        restartPolicy: 'Always',
      },
      { name: 'wait', image: 'w:1', securityContext: H },
    ]);
  });

  it('takes restartPolicy from the spec', () => {
    expect(podSpec(minimalInput((w) => (w.spec.restartPolicy = 'OnFailure'))).restartPolicy).toBe(
      'OnFailure',
    );
    expect(podSpec(minimalInput((w) => (w.spec.restartPolicy = 'Always'))).restartPolicy).toBe(
      'Always',
    );
  });
});

describe('buildPod: pod security', () => {
  const noGrants = (edit: (w: AgentWorkload) => void = () => {}) =>
    minimalInput((w, r) => {
      r.security = DEFAULT_WORKLOAD_SECURITY;
      edit(w);
    });

  it('hardens every container and sets runAsNonRoot unless the Runner allows root', () => {
    const spec = podSpec(
      noGrants((w) => {
        w.spec.sidecars = [{ name: 'mcp', role: 'mcp', image: 'm:1' }];
        w.spec.initContainers = [{ name: 'init', image: 'i:1' }];
      }),
    );
    const all = [...(spec.initContainers ?? []), ...spec.containers];
    expect(all.map((c) => c.securityContext)).toEqual([
      hardened([], true),
      hardened([], true),
      hardened([], true),
    ]);
    expect(spec.hostUsers).toBeUndefined();
  });

  it('refuses a capability the Runner does not grant to the role, naming the field', () => {
    const err = configError(() =>
      buildPod(
        noGrants((w) => {
          w.spec.sidecars = [
            { name: 'mcp', role: 'mcp', image: 'm:1' },
            { name: 'tunnel', role: 'other', image: 't:1', linuxCapabilities: ['NET_ADMIN'] },
          ];
        }),
      ),
    );
    expect(err.code).toBe('capability_not_granted');
    expect(err.field).toBe('spec.sidecars[1].linuxCapabilities[0]');
  });

  it('grants a capability to one role only', () => {
    const input = makeInput(); // ziti may add NET_ADMIN
    input.workload.spec.main.linuxCapabilities = ['NET_ADMIN'];
    const err = configError(() => buildPod(input));
    expect(err.field).toBe('spec.main.linuxCapabilities[0]');
    expect(err.message).toContain('spec.workloadSecurity.capabilities.main');
  });
});

describe('buildPod: volumes', () => {
  it('maps an Ephemeral volume to an emptyDir', () => {
    const spec = podSpec(
      minimalInput((w) => (w.spec.volumes = [{ name: 'scratch', kind: 'Ephemeral' }])),
    );
    expect(spec.volumes).toEqual([{ name: 'scratch', emptyDir: {} }]);
  });

  it('maps a Persistent volume to its claim and lists the claims in agyn.io/pvc-names', () => {
    const pod = buildPod(
      minimalInput((w) => {
        w.spec.volumes = [
          { name: 'ws', kind: 'Persistent', persistentName: 'pv-ws' },
          { name: 'cache', kind: 'Persistent', persistentName: 'pv-cache' },
          { name: 'ws-again', kind: 'Persistent', persistentName: 'pv-ws' },
          { name: 'tmp', kind: 'Ephemeral' },
        ];
      }),
    );
    expect(pod.spec?.volumes).toEqual([
      { name: 'ws', persistentVolumeClaim: { claimName: 'pv-ws' } },
      { name: 'cache', persistentVolumeClaim: { claimName: 'pv-cache' } },
      { name: 'ws-again', persistentVolumeClaim: { claimName: 'pv-ws' } },
      { name: 'tmp', emptyDir: {} },
    ]);
    expect(pod.metadata?.annotations).toEqual({ 'agyn.io/pvc-names': 'pv-ws,pv-cache' });
  });

  it('sets no annotations when there is nothing to record', () => {
    expect(buildPod(minimalInput()).metadata?.annotations).toBeUndefined();
  });
});

describe('buildPod: inline files', () => {
  const caPath = '/etc/agyn/egress-ca/ca.crt';
  const withInlineFiles = (edit: (w: AgentWorkload) => void = () => {}) =>
    makeInput((w) => {
      w.spec.inlineFiles = {
        secretRef: { name: inlineFilesSecretName(EXAMPLE_POD_NAME) },
        files: [
          { path: caPath, key: 'inline-file-0' },
          { path: '/etc/agyn/token', key: 'inline-file-1' },
          { path: '/opt/ca.crt', key: 'inline-file-0' },
        ],
      };
      w.spec.main.inlineFileMounts = [caPath, '/etc/agyn/token'];
      const mcp = w.spec.sidecars[0];
      if (mcp) mcp.inlineFileMounts = [caPath];
      edit(w);
    });

  it('adds one projected volume and read-only subPath mounts on the containers that ask', () => {
    const pod = buildPod(withInlineFiles());
    expect(pod.spec?.volumes?.at(-1)).toEqual({
      name: 'inline-files',
      projected: {
        sources: [
          {
            secret: {
              name: `${EXAMPLE_POD_NAME}-inline-files`,
              items: [
                { key: 'inline-file-0', path: 'inline-file-0' },
                { key: 'inline-file-1', path: 'inline-file-1' },
              ],
            },
          },
        ],
      },
    });
    expect(containerNamed(pod, 'agent-7c1e2f90-3f5d8e21').volumeMounts).toEqual([
      { name: 'vol-e8f70a1b', mountPath: '/workspace' },
      { name: 'agyn-bin', mountPath: '/agyn-bin' },
      { name: 'inline-files', mountPath: caPath, subPath: 'inline-file-0', readOnly: true },
      {
        name: 'inline-files',
        mountPath: '/etc/agyn/token',
        subPath: 'inline-file-1',
        readOnly: true,
      },
    ]);
    expect(containerNamed(pod, 'mcp-51aa2b3c').volumeMounts).toEqual([
      { name: 'inline-files', mountPath: caPath, subPath: 'inline-file-0', readOnly: true },
    ]);
    expect(containerNamed(pod, 'ziti-sidecar').volumeMounts).toEqual([
      { name: 'ziti-identity', mountPath: '/netfoundry' },
    ]);
  });

  it('records the inline-files Secret in agyn.io/pull-secret-names', () => {
    expect(buildPod(withInlineFiles()).metadata?.annotations?.['agyn.io/pull-secret-names']).toBe(
      `${EXAMPLE_POD_NAME}-pull,${EXAMPLE_POD_NAME}-inline-files`,
    );
  });

  it('mounts inline files into init containers too', () => {
    const pod = buildPod(
      withInlineFiles((w) => {
        const init = w.spec.initContainers[1];
        if (init) init.inlineFileMounts = ['/opt/ca.crt'];
      }),
    );
    expect(containerNamed(pod, 'agent-init').volumeMounts).toEqual([
      { name: 'agyn-bin', mountPath: '/agyn-bin' },
      { name: 'inline-files', mountPath: '/opt/ca.crt', subPath: 'inline-file-0', readOnly: true },
    ]);
  });

  it('adds no inline-files volume without spec.inlineFiles', () => {
    expect(podSpec(makeInput()).volumes?.map((v) => v.name)).not.toContain('inline-files');
  });
});

describe('buildPod: DNS', () => {
  it('sets dnsPolicy None and dnsConfig when nameservers are given', () => {
    const spec = podSpec(
      minimalInput((w) => (w.spec.dns = { nameservers: ['127.0.0.1'], searches: ['a.local'] })),
    );
    expect(spec.dnsPolicy).toBe('None');
    expect(spec.dnsConfig).toEqual({ nameservers: ['127.0.0.1'], searches: ['a.local'] });
  });

  it('leaves searches out when there are none', () => {
    const spec = podSpec(
      minimalInput((w) => (w.spec.dns = { nameservers: ['10.0.0.10'], searches: [] })),
    );
    expect(spec.dnsConfig).toEqual({ nameservers: ['10.0.0.10'] });
  });

  it('ignores searches without nameservers', () => {
    const spec = podSpec(
      minimalInput((w) => (w.spec.dns = { nameservers: [], searches: ['a.local'] })),
    );
    expect(spec.dnsPolicy).toBeUndefined();
    expect(spec.dnsConfig).toBeUndefined();
  });
});

describe('buildPod: flavors', () => {
  it('applies the named flavor to the main container only', () => {
    const spec = podSpec(makeInput((w) => (w.spec.flavor = 'large')));
    expect(spec.containers[0]?.resources).toEqual({
      requests: { cpu: '2', memory: '8Gi' },
      limits: { cpu: '4', memory: '16Gi' },
    });
    expect(spec.containers.slice(1).every((c) => c.resources === undefined)).toBe(true);
    expect(spec.initContainers?.every((c) => c.resources === undefined)).toBe(true);
  });

  it("falls back to the runner's default flavor", () => {
    const spec = podSpec(
      makeInput((_w, r) => {
        const small = r.flavors[0];
        if (small) small.default = true;
      }),
    );
    expect(spec.containers[0]?.resources).toEqual({
      requests: { cpu: '500m', memory: '1Gi' },
      limits: { memory: '2Gi' },
    });
  });

  it('sets no resources without a flavor or a default', () => {
    expect(podSpec(makeInput()).containers[0]?.resources).toBeUndefined();
  });

  it('omits empty resource sections of a flavor', () => {
    const spec = podSpec(
      makeInput((w, r) => {
        r.flavors.push({
          name: 'tiny',
          resources: { limits: { memory: '256Mi' } },
          default: false,
          deprecated: true,
        });
        w.spec.flavor = 'tiny';
      }),
    );
    expect(spec.containers[0]?.resources).toEqual({ limits: { memory: '256Mi' } });
  });
});

describe('buildPod: pull secrets', () => {
  it("puts the workload's secret first, then the runner's, without duplicates", () => {
    const spec = podSpec(
      makeInput((w, r) => {
        r.pullSecrets = ['registry-mirror', `${EXAMPLE_POD_NAME}-pull`, 'other', 'registry-mirror'];
      }),
    );
    expect(spec.imagePullSecrets).toEqual([
      { name: `${EXAMPLE_POD_NAME}-pull` },
      { name: 'registry-mirror' },
      { name: 'other' },
    ]);
  });

  it("uses the runner's secrets alone, and keeps them out of agyn.io/pull-secret-names", () => {
    const pod = buildPod(
      makeInput((w) => {
        delete w.spec.imagePullSecretRef;
      }),
    );
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: 'registry-mirror' }]);
    expect(pod.metadata?.annotations?.['agyn.io/pull-secret-names']).toBeUndefined();
  });

  it('sets no imagePullSecrets when there are none', () => {
    expect(podSpec(minimalInput()).imagePullSecrets).toBeUndefined();
  });

  it('names the deterministic Secrets after the pod', () => {
    expect(pullSecretName('workload-abc')).toBe('workload-abc-pull');
    expect(inlineFilesSecretName('workload-abc')).toBe('workload-abc-inline-files');
  });
});

describe('buildPod: docker capability', () => {
  const withDocker = (
    implementation: DockerImplementation,
    edit: (w: AgentWorkload) => void = () => {},
  ) =>
    makeInput((w, r) => {
      w.spec.capabilities = ['docker'];
      w.spec.main.env = [
        { name: 'DOCKER_HOST', value: 'unix:///var/run/docker.sock' },
        ...(w.spec.main.env ?? []),
      ];
      r.docker = implementation;
      r.capabilities = ['docker'];
      edit(w);
    });

  it('rootless: daemon sidecar, subid init, volumes, hostUsers false and the legacy annotations', () => {
    const pod = buildPod(withDocker('rootless'));
    const spec = pod.spec;
    expect(spec?.containers.map((c) => c.name)).toEqual([
      'agent-7c1e2f90-3f5d8e21',
      'mcp-51aa2b3c',
      'docker-daemon',
    ]);
    expect(spec?.containers.at(-1)).toEqual({
      name: 'docker-daemon',
      image: DOCKER_DIND_ROOTLESS_IMAGE,
      env: [{ name: 'DOCKER_TLS_CERTDIR', value: '' }],
      securityContext: {
        allowPrivilegeEscalation: true,
        seccompProfile: { type: 'Unconfined' },
        appArmorProfile: { type: 'Unconfined' },
        procMount: 'Unmasked',
      },
      volumeMounts: [
        { name: 'docker-data', mountPath: '/home/rootless/.local/share' },
        { name: 'docker-run', mountPath: '/run/user/1000' },
        { name: 'docker-tun', mountPath: '/dev/net/tun' },
        { name: 'docker-subid', mountPath: '/etc/subuid', subPath: 'subuid', readOnly: true },
        { name: 'docker-subid', mountPath: '/etc/subgid', subPath: 'subgid', readOnly: true },
      ],
    });
    expect(spec?.initContainers?.map((c) => c.name)).toEqual([
      'ziti-sidecar',
      'docker-subid-init',
      'ziti-gateway-wait',
      'agent-init',
    ]);
    expect(spec?.initContainers?.[1]).toEqual({
      name: 'docker-subid-init',
      image: 'docker:27-dind-rootless',
      command: ['/bin/sh', '-c', DOCKER_SUBID_SCRIPT],
      securityContext: H,
      volumeMounts: [{ name: 'docker-subid', mountPath: '/subid' }],
    });
    expect(spec?.volumes?.slice(3)).toEqual([
      { name: 'docker-data', emptyDir: {} },
      { name: 'docker-run', emptyDir: {} },
      { name: 'docker-tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } },
      { name: 'docker-subid', emptyDir: {} },
    ]);
    expect(spec?.hostUsers).toBe(false);
    expect(spec?.runtimeClassName).toBeUndefined();
    expect(pod.metadata?.annotations).toEqual({
      'agyn.io/pvc-names': 'pv-3f5d8e21-222-e8f70a1b-444',
      'agyn.io/pull-secret-names': `${EXAMPLE_POD_NAME}-pull`,
      'container.apparmor.security.beta.kubernetes.io/docker-daemon': 'unconfined',
      'seccomp.security.alpha.kubernetes.io/pod': 'unconfined',
      'container.seccomp.security.alpha.kubernetes.io/docker-daemon': 'unconfined',
    });
    expect(DOCKER_ROOTLESS_ANNOTATIONS).toEqual({
      'container.apparmor.security.beta.kubernetes.io/docker-daemon': 'unconfined',
      'seccomp.security.alpha.kubernetes.io/pod': 'unconfined',
      'container.seccomp.security.alpha.kubernetes.io/docker-daemon': 'unconfined',
    });
  });

  it('the subid script skips uid 1000 and reads the user-namespace map sizes', () => {
    expect(DOCKER_SUBID_SCRIPT).toContain('/proc/self/uid_map');
    expect(DOCKER_SUBID_SCRIPT).toContain('/proc/self/gid_map');
    expect(DOCKER_SUBID_SCRIPT).toContain('rootless:1:$first');
    expect(DOCKER_SUBID_SCRIPT).toContain('rootless:1001:$((last - 1000))');
  });

  it('replaces any DOCKER_HOST of main with tcp://localhost:2375, appended last', () => {
    const main = podSpec(withDocker('privileged')).containers[0];
    const env = main?.env ?? [];
    expect(env.filter((e) => e.name === 'DOCKER_HOST')).toEqual([
      { name: 'DOCKER_HOST', value: DOCKER_HOST },
    ]);
    expect(env.at(-1)).toEqual({ name: 'DOCKER_HOST', value: 'tcp://localhost:2375' });
    expect(env[0]).toEqual({ name: 'AGENT_ID', value: EXAMPLE_AGENT_ID });
  });

  it('adds DOCKER_HOST to a main container without env', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        w.spec.capabilities = ['docker'];
        r.docker = 'privileged';
      }),
    );
    expect(spec.containers[0]?.env).toEqual([{ name: 'DOCKER_HOST', value: DOCKER_HOST }]);
  });

  it('privileged: a privileged dind sidecar and one data volume', () => {
    const pod = buildPod(withDocker('privileged'));
    expect(pod.spec?.containers.at(-1)).toEqual({
      name: 'docker-daemon',
      image: DOCKER_DIND_IMAGE,
      env: [{ name: 'DOCKER_TLS_CERTDIR', value: '' }],
      securityContext: { privileged: true, allowPrivilegeEscalation: true },
      volumeMounts: [{ name: 'docker-data', mountPath: '/var/lib/docker' }],
    });
    expect(pod.spec?.volumes?.at(-1)).toEqual({ name: 'docker-data', emptyDir: {} });
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual([
      'ziti-sidecar',
      'ziti-gateway-wait',
      'agent-init',
    ]);
    expect(pod.spec?.hostUsers).toBeUndefined();
    expect(pod.spec?.runtimeClassName).toBeUndefined();
    expect(Object.keys(pod.metadata?.annotations ?? {})).toEqual([
      'agyn.io/pvc-names',
      'agyn.io/pull-secret-names',
    ]);
  });

  it.each(['kata-qemu', 'kata-fc'] as const)(
    '%s: as privileged, plus the runtime class',
    (implementation) => {
      const privileged = buildPod(withDocker('privileged'));
      const kata = buildPod(withDocker(implementation));
      expect(kata.spec?.runtimeClassName).toBe(implementation);
      expect({ ...kata.spec, runtimeClassName: undefined }).toEqual({
        ...privileged.spec,
        runtimeClassName: undefined,
      });
      expect(kata.metadata).toEqual(privileged.metadata);
    },
  );

  it('accepts docker from a runner that configures it without listing it, in any spelling', () => {
    const input = withDocker('privileged');
    input.runner.capabilities = [];
    input.workload.spec.capabilities = [' Docker ', 'docker'];
    expect(podSpec(input).containers.filter((c) => c.name === 'docker-daemon')).toHaveLength(1);
  });
});

describe('buildPod: gpu capability and scheduling', () => {
  it('requests one GPU on main, next to the flavor, and applies the scheduling', () => {
    const spec = podSpec(
      makeInput((w, r) => {
        w.spec.capabilities = ['gpu'];
        w.spec.flavor = 'small';
        r.capabilities = ['gpu'];
        r.scheduling = {
          nodeSelector: { 'node.kubernetes.io/pool': 'gpu' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
        };
      }),
    );
    expect(spec.containers[0]?.resources).toEqual({
      requests: { cpu: '500m', memory: '1Gi' },
      limits: { memory: '2Gi', 'nvidia.com/gpu': '1' },
    });
    expect(spec.containers[1]?.resources).toBeUndefined();
    expect(spec.nodeSelector).toEqual({ 'node.kubernetes.io/pool': 'gpu' });
    expect(spec.tolerations).toEqual([
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ]);
  });

  it('requests a GPU without a flavor', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        w.spec.capabilities = ['gpu'];
        r.capabilities = ['gpu', 'docker'];
      }),
    );
    expect(spec.containers[0]?.resources).toEqual({ limits: { 'nvidia.com/gpu': '1' } });
  });

  it("applies the runner's scheduling to every workload", () => {
    const spec = podSpec(
      minimalInput((_w, r) => {
        r.scheduling = {
          nodeSelector: { tier: 'agents' },
          tolerations: [{ key: 'agents', operator: 'Equal', value: 'yes' }],
        };
      }),
    );
    expect(spec.nodeSelector).toEqual({ tier: 'agents' });
    expect(spec.tolerations).toEqual([{ key: 'agents', operator: 'Equal', value: 'yes' }]);
  });

  it('accepts a capability the runner offers without an implementation of its own', () => {
    const spec = podSpec(
      minimalInput((w, r) => {
        w.spec.capabilities = ['arm64'];
        r.capabilities = ['arm64'];
      }),
    );
    expect(spec.containers).toEqual([{ name: 'main', image: 'alpine:3.20', securityContext: H }]);
  });
});

describe('buildPod: labels and ownership', () => {
  it('lets the fixed labels win over spec labels with the same keys', () => {
    const labels = buildPod(
      makeInput((w) => {
        w.spec.labels = {
          team: 'a',
          'app.kubernetes.io/managed-by': 'helm',
          'agyn.io/workload-id': 'spoofed',
          'agyn.io/runner': 'elsewhere',
          'agyn.dev/managed-by': 'someone',
        };
      }),
    ).metadata?.labels;
    expect(labels).toEqual({
      team: 'a',
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
      'agyn.io/runner': 'runner-eu-1',
      'agyn.dev/managed-by': 'agents-orchestrator',
    });
  });

  it('omits agyn.io/runner when the runner has no name', () => {
    const input = makeInput((w, r) => {
      r.name = '';
      delete w.spec.labels;
    });
    expect(buildPod(input).metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
      'agyn.dev/managed-by': 'agents-orchestrator',
    });
    const volume = input.workload.spec.volumes[1] as VolumeSpec;
    expect(buildPersistentVolumeClaim(input, volume).metadata?.labels).toEqual({
      volume_key: EXAMPLE_VOLUME_KEY,
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
    });
  });

  it('uses the given pod name and workload id, not the CR name', () => {
    const input = { ...makeInput(), podName: 'my-agent', workloadId: EXAMPLE_UID };
    const pod = buildPod(input);
    expect(pod.metadata?.name).toBe('my-agent');
    expect(pod.metadata?.labels?.['agyn.io/workload-id']).toBe(EXAMPLE_UID);
    expect(pod.metadata?.ownerReferences?.[0]?.name).toBe(EXAMPLE_POD_NAME);
  });

  it('refuses a workload without uid or namespace', () => {
    expect(() => buildPod(makeInput((w) => delete w.metadata.uid))).toThrow(/no uid/);
    expect(() => buildPod(makeInput((w) => delete w.metadata.namespace))).toThrow(/no namespace/);
  });
});

describe('buildPersistentVolumeClaim', () => {
  const claimFor = (
    volume: VolumeSpec,
    edit: (w: AgentWorkload, r: RunnerSettings) => void = () => {},
  ) => {
    const input = makeInput((w, r) => {
      w.spec.volumes = [volume];
      edit(w, r);
    });
    return buildPersistentVolumeClaim(input, volume);
  };
  const persistent = (extra: Partial<VolumeSpec> = {}): VolumeSpec => ({
    name: 'ws',
    kind: 'Persistent',
    persistentName: 'pv-ws',
    ...extra,
  });

  it('resolves a catalog entry to its StorageClass and honours the size', () => {
    expect(claimFor(persistent({ storageClass: 'fast', size: '50Gi' })).spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '50Gi' } },
      storageClassName: 'premium-ssd',
    });
  });

  it('omits storageClassName for an entry that means the cluster default', () => {
    expect(
      claimFor(persistent({ storageClass: 'cluster-default' })).spec?.storageClassName,
    ).toBeUndefined();
  });

  it("falls back to the runner's default class, then the catalog default, then the cluster default", () => {
    expect(claimFor(persistent()).spec?.storageClassName).toBe('standard');
    const catalogDefault = claimFor(persistent(), (_w, r) => {
      delete r.storage.defaultClass;
      r.storageClasses.push({ name: 'balanced', storageClassName: 'balanced-pd', default: true });
    });
    expect(catalogDefault.spec?.storageClassName).toBe('balanced-pd');
    const none = claimFor(persistent(), (_w, r) => delete r.storage.defaultClass);
    expect(none.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '10Gi' } },
    });
  });

  it("uses the runner's default size", () => {
    expect(
      claimFor(persistent(), (_w, r) => (r.storage.defaultSize = '20Gi')).spec?.resources,
    ).toEqual({
      requests: { storage: '20Gi' },
    });
  });

  it('is owned by the workload only when deleteVolumesWithWorkload is true', () => {
    expect(claimFor(persistent()).metadata?.ownerReferences).toBeUndefined();
    const owned = claimFor(persistent(), (w) => (w.spec.deleteVolumesWithWorkload = true));
    expect(owned.metadata?.ownerReferences).toEqual([{ ...ownerReference, controller: false }]);
  });

  it('lets the fixed labels win over volume labels', () => {
    const labels = claimFor(
      persistent({
        labels: {
          volume_key: 'k',
          'app.kubernetes.io/managed-by': 'me',
          'agyn.io/runner': 'x',
          'agyn.io/workload-id': 'someone-else',
        },
      }),
    ).metadata?.labels;
    expect(labels).toEqual({
      volume_key: 'k',
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
      'agyn.io/runner': 'runner-eu-1',
    });
  });

  it('uses the volume name when persistentName is absent', () => {
    expect(claimFor({ name: 'ws', kind: 'Persistent' }).metadata?.name).toBe('ws');
  });

  it('refuses an Ephemeral volume', () => {
    expect(() => claimFor({ name: 'tmp', kind: 'Ephemeral' })).toThrow(/not Persistent/);
  });
});

describe('WorkloadConfigError', () => {
  it('carries code, field and a message that starts with the code', () => {
    const err = configError(() => buildPod(makeInput((w) => (w.spec.flavor = 'huge'))));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('WorkloadConfigError');
    expect(err.code).toBe('unknown_flavor');
    expect(err.field).toBe('spec.flavor');
    expect(err.message).toMatch(/^unknown_flavor: huge/);
  });

  it('unknown_flavor also when the runner has no catalog', () => {
    const err = configError(() =>
      buildPod(makeInput((w, r) => ((w.spec.flavor = 'small'), (r.flavors = [])))),
    );
    expect(err.code).toBe('unknown_flavor');
  });

  it('unknown_storage_class', () => {
    const input = makeInput((w) => {
      const volume = w.spec.volumes[1];
      if (volume) volume.storageClass = 'gold';
    });
    const err = configError(() =>
      buildPersistentVolumeClaim(input, input.workload.spec.volumes[1] as VolumeSpec),
    );
    expect([err.code, err.field]).toEqual([
      'unknown_storage_class',
      'spec.volumes[1].storageClass',
    ]);
  });

  it('docker_capability_not_configured', () => {
    const err = configError(() =>
      buildPod(
        makeInput(
          (w, r) => (
            (w.spec.capabilities = ['gpu', 'docker']),
            (r.capabilities = ['gpu', 'docker'])
          ),
        ),
      ),
    );
    expect([err.code, err.field]).toEqual([
      'docker_capability_not_configured',
      'spec.capabilities[1]',
    ]);
  });

  it('unknown_capability for a capability the runner does not offer', () => {
    const err = configError(() => buildPod(makeInput((w) => (w.spec.capabilities = ['gpu']))));
    expect([err.code, err.field]).toEqual(['unknown_capability', 'spec.capabilities[0]']);
    expect(err.message).toContain('gpu');
  });

  it('capability_required for a blank capability', () => {
    const err = configError(() => buildPod(makeInput((w) => (w.spec.capabilities = ['  ']))));
    expect([err.code, err.field]).toEqual(['capability_required', 'spec.capabilities[0]']);
  });

  it('unknown_docker_implementation for a runner setting outside the enum', () => {
    const err = configError(() =>
      buildPod(
        makeInput(
          (w, r) => (
            (w.spec.capabilities = ['docker']),
            (r.docker = 'gvisor' as DockerImplementation)
          ),
        ),
      ),
    );
    expect(err.code).toBe('unknown_docker_implementation');
  });

  it.each([
    ['privileged', 'main', 'docker-daemon', 'spec.main.name'],
    ['privileged', 'sidecar', 'docker-daemon', 'spec.sidecars[0].name'],
    ['rootless', 'init', 'docker-subid-init', 'spec.initContainers[0].name'],
  ] as const)(
    'capability_container_name_conflict (%s, %s named %s)',
    (implementation, where, name, field) => {
      const err = configError(() =>
        buildPod(
          makeInput((w, r) => {
            w.spec.capabilities = ['docker'];
            r.docker = implementation;
            const target =
              where === 'main'
                ? w.spec.main
                : where === 'sidecar'
                  ? w.spec.sidecars[0]
                  : w.spec.initContainers[0];
            if (target) target.name = name;
          }),
        ),
      );
      expect([err.code, err.field]).toEqual(['capability_container_name_conflict', field]);
    },
  );

  it('allows docker-subid-init as a user container name with privileged docker', () => {
    const pod = buildPod(
      makeInput((w, r) => {
        w.spec.capabilities = ['docker'];
        r.docker = 'privileged';
        const init = w.spec.initContainers[0];
        if (init) init.name = 'docker-subid-init';
      }),
    );
    expect(pod.spec?.initContainers?.map((c) => c.name)).toContain('docker-subid-init');
  });

  it.each([
    ['privileged', 'docker-data'],
    ['rootless', 'docker-run'],
    ['rootless', 'docker-tun'],
    ['rootless', 'docker-subid'],
  ] as const)('capability_volume_name_conflict (%s, volume %s)', (implementation, name) => {
    const err = configError(() =>
      buildPod(
        makeInput((w, r) => {
          w.spec.capabilities = ['docker'];
          r.docker = implementation;
          const volume = w.spec.volumes[2];
          if (volume) volume.name = name;
        }),
      ),
    );
    expect([err.code, err.field]).toEqual([
      'capability_volume_name_conflict',
      'spec.volumes[2].name',
    ]);
  });

  it('capability_volume_name_conflict for a user volume named inline-files next to inline files', () => {
    const err = configError(() =>
      buildPod(
        makeInput((w) => {
          w.spec.inlineFiles = { secretRef: { name: 's' }, files: [{ path: '/a', key: 'a' }] };
          const volume = w.spec.volumes[0];
          if (volume) volume.name = 'inline-files';
        }),
      ),
    );
    expect([err.code, err.field]).toEqual([
      'capability_volume_name_conflict',
      'spec.volumes[0].name',
    ]);
  });

  it('inline_file_not_defined for a mount of an undeclared path', () => {
    const err = configError(() =>
      buildPod(
        makeInput((w) => {
          w.spec.inlineFiles = { secretRef: { name: 's' }, files: [{ path: '/a', key: 'a' }] };
          const mcp = w.spec.sidecars[0];
          if (mcp) mcp.inlineFileMounts = ['/a', '/b'];
        }),
      ),
    );
    expect([err.code, err.field]).toEqual([
      'inline_file_not_defined',
      'spec.sidecars[0].inlineFileMounts[1]',
    ]);
    const noFiles = configError(() =>
      buildPod(makeInput((w) => (w.spec.main.inlineFileMounts = ['/a']))),
    );
    expect([noFiles.code, noFiles.field]).toEqual([
      'inline_file_not_defined',
      'spec.main.inlineFileMounts[0]',
    ]);
  });

  it.each([
    ['a key with two slashes', { 'a/b/c': 'x' }],
    ['an empty key', { '': 'x' }],
    ['an empty name after a prefix', { 'agyn.io/': 'x' }],
    ['an uppercase prefix', { 'Agyn.io/team': 'x' }],
    ['a name starting with a dash', { '-team': 'x' }],
    ['a name longer than 63', { ['n'.repeat(64)]: 'x' }],
    ['a value with a space', { team: 'a b' }],
    ['a value ending with a dot', { team: 'a.' }],
    ['a value longer than 63', { team: 'v'.repeat(64) }],
  ])('invalid_label for %s', (_what, labels) => {
    const err = configError(() => buildPod(makeInput((w) => (w.spec.labels = labels))));
    expect([err.code, err.field]).toEqual(['invalid_label', 'spec.labels']);
  });

  it('accepts valid labels, including empty values and prefixed keys', () => {
    const labels = { 'example.com/team': '', a: 'A_b-c.1', workload_key: 'x' };
    expect(buildPod(makeInput((w) => (w.spec.labels = labels))).metadata?.labels).toMatchObject(
      labels,
    );
  });

  it('invalid_label for a volume label', () => {
    const input = makeInput((w) => {
      const volume = w.spec.volumes[1];
      if (volume) volume.labels = { 'bad key': 'x' };
    });
    const err = configError(() =>
      buildPersistentVolumeClaim(input, input.workload.spec.volumes[1] as VolumeSpec),
    );
    expect([err.code, err.field]).toEqual(['invalid_label', 'spec.volumes[1].labels']);
  });

  it('invalid_label for a runner name that cannot be a label value', () => {
    const err = configError(() => buildPod(makeInput((_w, r) => (r.name = 'r'.repeat(64)))));
    expect([err.code, err.field]).toEqual(['invalid_label', 'metadata.labels']);
  });
});

describe('buildPod: label policy', () => {
  it.each([
    'app.kubernetes.io/name',
    'node-role.kubernetes.io/control-plane',
    'k8s.io/x',
    'agyn.io/grant-x',
    'agyn.dev/role',
  ])('refuses the reserved label %s, naming spec.labels', (key) => {
    const err = configError(() => buildPod(minimalInput((w) => (w.spec.labels = { [key]: 'v' }))));
    expect(err.code).toBe('invalid_label');
    expect(err.field).toBe('spec.labels');
    expect(err.message).toContain('is reserved');
  });

  it('passes unprefixed and foreign-prefixed labels, and overwrites the fixed ones', () => {
    const labels = buildPod(
      minimalInput(
        (w) =>
          (w.spec.labels = {
            'agent-id': 'a',
            workload_key: 'k',
            'example.com/team': 't',
            'chaos.agyn.io/seed': 's',
            'agyn.io/workload-id': 'spoofed',
          }),
      ),
    ).metadata?.labels;
    expect(labels).toMatchObject({
      'agent-id': 'a',
      workload_key: 'k',
      'example.com/team': 't',
      'agyn.io/workload-id': EXAMPLE_WORKLOAD_ID,
    });
  });
});
