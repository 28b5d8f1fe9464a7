/**
 * The agent Pod of shared/design/agent-pod-example.md, started through the gRPC shim and
 * run by the real kubelet/containerd/runc node: an init container copies a binary into the
 * shared volume and the runtime executes it; the Ziti native sidecar starts before the
 * runtime with NET_ADMIN; MCP and hook sidecars run; inline files, env and workdir are as
 * requested.
 */
import { randomUUID } from 'node:crypto';
import type { IPod } from 'kubernetes-models/v1/Pod';
import {
  ContainerRole,
  ContainerStatus,
  StartWorkloadRequest,
  VolumeKind,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  BUSYBOX,
  REAL_NODE,
  exec,
  kubectl,
  realNodeRunner,
  waitForWorkloadPhase,
} from '../support/real-node.ts';

type Pod = IPod & KubeObject;

/** Idles until SIGTERM, then exits 0 at once (sleep as PID 1 would ignore the TERM). */
const IDLE = 'trap "exit 0" TERM; sleep 3600 & wait';
const NET_ADMIN_BIT = 1n << 12n;

let h: GrpcHarness;
const id = randomUUID();
const pod = `workload-${id}`;

function capEff(status: string): bigint {
  const hex = /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1];
  if (!hex) throw new Error(`no CapEff in ${status}`);
  return BigInt(`0x${hex}`);
}

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-pod', runner: realNodeRunner() });
  const mount = (volume: string, mountPath: string) => ({ volume, mountPath });
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      labels: { 'agent-id': 'a-1' },
      volumes: [
        { name: 'agyn-bin', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
        { name: 'ziti-identity', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
        { name: 'shared', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
        {
          name: 'workspace',
          kind: VolumeKind.VOLUME_KIND_NAMED,
          persistentName: `ws-${id.slice(0, 8)}`,
        },
      ],
      initContainers: [
        {
          name: 'ziti-sidecar',
          image: BUSYBOX,
          cmd: ['sh', '-c', `grep CapEff /proc/self/status > /netfoundry/caps; ${IDLE}`],
          mounts: [mount('ziti-identity', '/netfoundry')],
          requiredCapabilities: ['NET_ADMIN'],
          additionalProperties: { restart_policy: 'Always' },
        },
        {
          name: 'agent-init',
          image: BUSYBOX,
          cmd: ['sh', '-c', 'mkdir -p /agyn-bin/bin && cp /bin/busybox /agyn-bin/bin/busybox'],
          mounts: [mount('agyn-bin', '/agyn-bin')],
        },
      ],
      main: {
        name: 'agent',
        image: BUSYBOX,
        cmd: [
          '/agyn-bin/bin/busybox',
          'sh',
          '-c',
          `test -s /netfoundry/caps && echo ziti-before-runtime > /tmp/order; echo "runtime $AGENT_ID in $(pwd)"; ${IDLE}`,
        ],
        env: [
          { name: 'AGENT_ID', value: 'a-1' },
          { name: 'AGENT_CONFIG', value: '{"instructions":"review"}' },
        ],
        workingDir: '/workspace',
        mounts: [
          mount('workspace', '/workspace'),
          mount('agyn-bin', '/agyn-bin'),
          mount('shared', '/shared'),
          { volume: 'ziti-identity', mountPath: '/netfoundry', readOnly: true },
        ],
        inlineFileMounts: [{ path: '/etc/agyn/egress-ca/ca.crt' }],
      },
      sidecars: [
        {
          name: 'mcp-files',
          image: BUSYBOX,
          cmd: ['sh', '-c', `echo "mcp on $MCP_PORT" > /shared/mcp; ${IDLE}`],
          env: [{ name: 'MCP_PORT', value: '8100' }],
          mounts: [mount('shared', '/shared')],
          inlineFileMounts: [{ path: '/etc/agyn/egress-ca/ca.crt' }],
        },
        {
          name: 'hook-audit',
          image: BUSYBOX,
          cmd: ['sh', '-c', `echo hook > /shared/hook; ${IDLE}`],
          mounts: [mount('shared', '/shared')],
          additionalProperties: { role: 'hook' },
        },
      ],
      inlineFiles: { '/etc/agyn/egress-ca/ca.crt': Buffer.from('-----BEGIN CERTIFICATE-----\n') },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
});

afterAll(async () => {
  await h?.close();
});

test('the Pod runs on the real node with every container started', async () => {
  const p = await h.kube.resource<Pod>(PODS).get(h.ns.name, pod);
  expect(p.spec?.nodeName).toBe(REAL_NODE);
  const running = (p.status?.containerStatuses ?? []).map((s) => [s.name, !!s.state?.running]);
  expect(Object.fromEntries(running)).toEqual({
    agent: true,
    'mcp-files': true,
    'hook-audit': true,
  });
  const inits = Object.fromEntries(
    (p.status?.initContainerStatuses ?? []).map((s) => [
      s.name,
      s.state?.running ? 'running' : `exit ${s.state?.terminated?.exitCode}`,
    ]),
  );
  expect(inits).toEqual({ 'ziti-sidecar': 'running', 'agent-init': 'exit 0' });
  const inspect = await call(h.client, 'inspectWorkload', { workloadId: id });
  const sidecars = inspect.containers.filter(
    (c) => c.role === ContainerRole.CONTAINER_ROLE_SIDECAR,
  );
  expect(sidecars.map((c) => [c.name, c.status]).sort()).toEqual(
    [
      ['hook-audit', ContainerStatus.CONTAINER_STATUS_RUNNING],
      ['mcp-files', ContainerStatus.CONTAINER_STATUS_RUNNING],
      ['ziti-sidecar', ContainerStatus.CONTAINER_STATUS_RUNNING],
    ].sort(),
  );
});

test('the runtime executes the binary the init container copied into the shared volume', async () => {
  const out = await exec(h.client, {
    targetId: pod,
    commandShell: 'tr "\\0" " " < /proc/1/cmdline; echo; ls -l /agyn-bin/bin/busybox',
  });
  expect(out.exit?.exitCode).toBe(0);
  expect(out.stdout).toMatch(/^\/agyn-bin\/bin\/busybox sh -c /);
  expect(out.stdout).toMatch(/-rwx.* \/agyn-bin\/bin\/busybox\n/);
});

test('the Ziti sidecar started before the runtime, with NET_ADMIN the runtime lacks', async () => {
  const out = await exec(h.client, {
    targetId: pod,
    commandShell: 'cat /tmp/order; cat /netfoundry/caps; grep CapEff /proc/self/status',
  });
  expect(out.exit?.exitCode).toBe(0);
  const [order, ziti, main] = out.stdout.trim().split('\n');
  expect(order).toBe('ziti-before-runtime');
  expect(capEff(ziti ?? '') & NET_ADMIN_BIT).toBe(NET_ADMIN_BIT);
  expect(capEff(main ?? '') & NET_ADMIN_BIT).toBe(0n);
});

test('the MCP and hook sidecars ran their commands with their env', async () => {
  const out = await exec(h.client, { targetId: pod, commandShell: 'cat /shared/mcp /shared/hook' });
  expect(out.stdout).toBe('mcp on 8100\nhook\n');
});

test('inline files are readable at their paths, read-only, with mode 0644', async () => {
  const out = await exec(h.client, {
    targetId: pod,
    commandShell:
      'stat -c "%a %s" /etc/agyn/egress-ca/ca.crt; cat /etc/agyn/egress-ca/ca.crt; echo x > /etc/agyn/egress-ca/ca.crt || echo read-only',
  });
  expect(out.stdout).toBe('644 28\n-----BEGIN CERTIFICATE-----\nread-only\n');
});

test('env and workdir are as requested, in the container and in exec', async () => {
  const out = await exec(h.client, {
    targetId: pod,
    commandShell: 'echo "$AGENT_ID|$AGENT_CONFIG|$(pwd)"',
  });
  expect(out.stdout).toBe('a-1|{"instructions":"review"}|/workspace\n');
  const log = await kubectl('logs', '-n', h.ns.name, pod, '-c', 'agent');
  expect(log).toBe('runtime a-1 in /workspace\n');
});
