/**
 * The seed's install path, word for word, against a private test cluster: the operator
 * image (scripts/build-image.sh) and the packaged chart are pushed to the cluster's OCI
 * registry (TLS with the cluster's CA, trusted by helm and crane through SSL_CERT_FILE and by
 * the node's containerd through its hosts.toml), `helm install … oci://…/charts/k8s-runner
 * --version <v> --namespace agyn-runners --create-namespace --values runner-values.yaml`
 * plus one `--set` for the image installs it, and then, as users and the orchestrator see
 * it: two operator Pods Ready on the real node (`-l app=k8s-runner`), the Runner enrolled
 * with the test gateway, the gRPC Service driving real containers through `kubectl
 * port-forward` with the chart's token, `/metrics` through its Service, a leader takeover,
 * `helm upgrade` to a new image tag and `helm uninstall`, each with no workload lost.
 * runner-values.yaml is the seed's file with its gateway line pointing at the test gateway
 * (reached by the operator Pods at the node IP, forwarded to the test process's loopback).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { parse } from 'yaml';
import { StartWorkloadRequest, VolumeKind } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { call, codeOf } from '../fixtures/grpc-harness.ts';
import { eventually } from '../support/kube.ts';
import {
  NODE_IP,
  clusterTool,
  forwardNodeIpToHost,
  orchestratorClient,
  portForward,
  type Child,
  type Tool,
} from '../support/installed-chart.ts';
import {
  BUSYBOX_NONROOT,
  REAL_NODE,
  REAL_NODE_LABEL,
  exec,
  startPrivateRealNodeCluster,
  type PrivateRealNodeCluster,
} from '../support/real-node.ts';
import { buildOperatorImage, pushImageLayout, registryHost, root } from '../support/registry.ts';
import { ServiceConnection } from '../support/rpc-retry.ts';
import { InstalledRelease, waitRunning } from '../support/installed-release.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';

const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');
const version = (parse(readFileSync(path.join(chart, 'Chart.yaml'), 'utf8')) as { version: string })
  .version;
const NS = 'agyn-runners';
const WORKLOAD_NS = 'agyn-workloads';
const RELEASE = 'acme-runner';
const FULLNAME = `${RELEASE}-k8s-runner`;
const SERVICE_TOKEN = 'seed-service-token';
const NEXT_TAG = `${version}-next`;
const IDLE = 'trap "exit 0" TERM; sleep 3600 & wait';

let cluster: PrivateRealNodeCluster;
let tool: Tool;
let work: string;
let registry: string;
let gateway: TestGateway;
let gatewayForward: Child;
let runnerValues: string;
let grpcService: ServiceConnection;
let grpcToken: string;
let release: InstalledRelease;
/** Set once the release is installed and Ready: later tests fail at once without it. */
let installed = false;
/** A workload that runs from the first gRPC test to the end and must never be lost. */
let keeper: { id: string; podUid: string };

function requireInstalled(needsKeeper = false): void {
  if (!installed) throw new Error('the release did not install (see the first test)');
  if (needsKeeper && !keeper) throw new Error('no workload was started (see the gRPC test)');
}

function startRequest(name: string, withVolume = false): StartWorkloadRequest {
  return StartWorkloadRequest.fromPartial({
    workloadId: randomUUID(),
    ...(withVolume
      ? { volumes: [{ name: 'data', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName: name }] }
      : {}),
    main: {
      name: 'agent',
      image: BUSYBOX_NONROOT,
      cmd: ['sh', '-c', IDLE],
      ...(withVolume ? { mounts: [{ volume: 'data', mountPath: '/data' }] } : {}),
    },
  });
}

/**
 * The host pid of an operator Pod's Node process, found as the kubelet put it: the real node's
 * containers are host processes in cgroups named after their Pod's uid.
 */
function operatorProcess(podUid: string): string {
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  const found = pids.filter((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return (
        cmdline.includes('dist/main.js') &&
        readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`pod${podUid}`)
      );
    } catch {
      return false;
    }
  });
  if (found.length !== 1) throw new Error(`Pod ${podUid}: operator processes ${found.join(',')}`);
  return found[0]!;
}

beforeAll(async () => {
  cluster = await startPrivateRealNodeCluster();
  tool = clusterTool(cluster);
  release = new InstalledRelease(tool, NS, WORKLOAD_NS);
  work = mkdtempSync(path.join(os.tmpdir(), 'install-oci-'));
  registry = registryHost(cluster.dir);
  gateway = await startTestGateway({
    tokens: {
      [SERVICE_TOKEN]: { identityJson: '{}', serviceName: 'acme-runner', identityId: 'acme' },
    },
  });
  gatewayForward = await forwardNodeIpToHost(cluster, gateway.port, gateway.port);
  // The seed's values file, with the one line a user writes for their platform: the gateway.
  const seed = readFileSync(seedValues, 'utf8');
  const gatewayLine = `gateway: { url: grpc://${NODE_IP}:${gateway.port}, insecure: true }`;
  runnerValues = path.join(work, 'runner-values.yaml');
  writeFileSync(runnerValues, seed.replace(/^gateway: .*$/m, gatewayLine));
  const layout = path.join(work, 'image');
  await buildOperatorImage(layout, `${registry}/k8s-runner:${version}`, cluster.dir);
  // The same image under a second tag, for `helm upgrade`.
  await pushImageLayout(layout, `${registry}/k8s-runner:${NEXT_TAG}`, cluster.dir);
  await tool('helm', 'package', chart, '--destination', work);
  const packaged = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!packaged) throw new Error('helm package wrote no chart archive');
  await tool('helm', 'push', path.join(work, packaged), `oci://${registry}/charts`);
  // Only the real node takes Pods in this private cluster, so the chart needs no toleration.
  await tool('kubectl', 'cordon', '-l', 'type=kwok');
  await tool('kubectl', 'taint', 'node', REAL_NODE, `${REAL_NODE_LABEL}-`);
}, 900_000);

afterAll(async () => {
  await grpcService?.close();
  await gatewayForward?.stop();
  await gateway?.stop();
  await cluster?.down();
  if (work) rmSync(work, { recursive: true, force: true });
}, 180_000);

describe('helm install from the OCI registry, as the seed does it', () => {
  it('runs the operator Pods Ready on the real node, found by app=k8s-runner', async () => {
    const seedLines = readFileSync(seedValues, 'utf8').trim().split('\n');
    const ours = readFileSync(runnerValues, 'utf8').trim().split('\n');
    expect(ours.filter((l) => !seedLines.includes(l))).toEqual([
      expect.stringMatching(/^gateway: /),
    ]);
    await tool(
      'helm',
      'install',
      RELEASE,
      `oci://${registry}/charts/k8s-runner`,
      '--version',
      version,
      '--namespace',
      NS,
      '--create-namespace',
      '--values',
      runnerValues,
      '--set',
      `image.repository=${registry}/k8s-runner`,
    );
    await tool(
      'kubectl',
      '-n',
      NS,
      'create',
      'secret',
      'generic',
      'k8s-runner-token',
      `--from-literal=token=${SERVICE_TOKEN}`,
    );
    await tool(
      'kubectl',
      '-n',
      NS,
      'label',
      'secret',
      'k8s-runner-token',
      'agyn.io/runner-token=true',
    );
    const listed = await release.readyOperatorPods(`${registry}/k8s-runner:${version}`);
    // The chart's default: two replicas, one of them the leader.
    expect(listed).toHaveLength(2);
    for (const pod of listed) {
      expect(pod.spec.nodeName).toBe(REAL_NODE);
      expect(pod.spec.containers[0]!.image).toBe(`${registry}/k8s-runner:${version}`);
    }
    installed = true;
  }, 400_000);

  it('runs each operator container as non-root on a read-only root filesystem', async () => {
    requireInstalled();
    const pods = await release.pods();
    for (const pod of pods) {
      const pid = operatorProcess(pod.metadata.uid);
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      expect(uid).toBe('65532');
      const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
        .split('\n')
        .map((line) => line.split(' '))
        .find((fields) => fields[4] === '/');
      expect(root?.[5]?.split(',')).toContain('ro');
    }
  });

  it('enrolls the Runner with the gateway', async () => {
    requireInstalled();
    const enrolled = await eventually(
      async () => {
        const runner = JSON.parse(
          await tool('kubectl', '-n', NS, 'get', 'runner', RELEASE, '-o', 'json'),
        ) as { status?: { conditions?: { type: string; status: string; message?: string }[] } };
        const c = runner.status?.conditions?.find((x) => x.type === 'Enrolled');
        return c?.status === 'True' ? c : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: 'the Runner Enrolled' },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await release.diagnostics()}`);
    });
    expect(enrolled.status).toBe('True');
    expect(gateway.requests.enrollRunner.at(-1)?.serviceToken).toBe(SERVICE_TOKEN);
  }, 180_000);

  it('serves the orchestrator on the gRPC Service with the chart token, on real containers', async () => {
    requireInstalled();
    grpcToken = Buffer.from(
      await tool(
        'kubectl',
        '-n',
        NS,
        'get',
        'secret',
        `${FULLNAME}-grpc-token`,
        '-o',
        'jsonpath={.data.token}',
      ),
      'base64',
    ).toString();
    expect(grpcToken.length).toBeGreaterThan(16);
    grpcService = new ServiceConnection(cluster, NS, FULLNAME, 50051, grpcToken);
    const client = await grpcService.client();
    // Without the chart's token: refused.
    const stranger = orchestratorClient(grpcService.localPort, 'not-the-token');
    expect((await codeOf(call(stranger, 'listWorkloads', {}))).code).toBe(status.UNAUTHENTICATED);
    stranger.close();
    const keep = await call(client, 'startWorkload', startRequest('keeper'));
    const flow = await call(client, 'startWorkload', startRequest('flow'));
    await waitRunning(client, flow.id);
    const inspect = await call(client, 'inspectWorkload', { workloadId: flow.id });
    expect(inspect.stateRunning).toBe(true);
    const out = await exec(client, { targetId: flow.id, commandShell: 'echo "hi $(id -u)"' });
    expect(out.stdout).toBe('hi 65534\n');
    expect(out.exit?.exitCode).toBe(0);
    await call(client, 'stopWorkload', { workloadId: flow.id, timeoutSec: 5 });
    // Stop is deletion (runner-behaviour §3.3): RemoveWorkload then removes what is left, or
    // answers NOT_FOUND once the Pod is gone (§3.4); either way nothing of it remains.
    const removed = await codeOf(
      call(client, 'removeWorkload', { workloadId: flow.id, force: true, removeVolumes: true }),
    );
    expect([status.OK, status.NOT_FOUND]).toContain(removed.code);
    await eventually(() => release.workloadPodGone(flow.id), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: `the Pod of ${flow.id} gone`,
    });
    expect((await codeOf(call(client, 'inspectWorkload', { workloadId: flow.id }))).code).toBe(
      status.NOT_FOUND,
    );
    await waitRunning(client, keep.id);
    keeper = { id: keep.id, podUid: (await release.workloadPod(keep.id)).metadata.uid };
    expect((await release.workloadPod(keep.id)).spec.nodeName).toBe(REAL_NODE);
  }, 300_000);

  it('serves /metrics through the metrics Service', async () => {
    requireInstalled();
    const forward = await portForward(cluster, NS, `svc/${FULLNAME}-metrics`, 8080);
    try {
      const res = await fetch(`http://127.0.0.1:${forward.port}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/^k8s_runner_runner_enrolled\{runner="acme-runner"\} 1$/m);
      expect(text).toMatch(/^k8s_runner_workloads\{phase="Running"[^}]*\} [1-9]/m);
      expect(text).toMatch(/^leader_election_master_status\{name="k8s-runner"\} [01]$/m);
    } finally {
      await forward.stop();
    }
  }, 120_000);
});

describe('the installed release over its life', () => {
  it('a deleted leader is replaced by the other replica; the orchestrator sees only retryable errors', async () => {
    requireInstalled(true);
    const before = await release.pods();
    const leader = await release.leaseHolder();
    expect(before.map((p) => p.metadata.name)).toContain(leader);
    // Two orchestrator connections: one the Service routed to the leader, one wherever it routes.
    const viaLeader = new ServiceConnection(cluster, NS, FULLNAME, 50051, grpcToken);
    await viaLeader.pinTo(`pod/${leader}`);
    grpcService.failures.length = 0;
    grpcService.reconnects = 0;
    const polls = [grpcService.pollInspect(keeper.id), viaLeader.pollInspect(keeper.id)];
    const deletedAt = Date.now();
    await tool('kubectl', '-n', NS, 'delete', 'pod', leader, '--wait=false');
    // Asked for while the leader goes: recorded by whichever replica answers, run by the next.
    const request = startRequest('during-takeover');
    const during = await viaLeader.retrying('startWorkload', async (c) => {
      try {
        return (await call(c, 'startWorkload', request)).id;
      } catch (err) {
        // A retry after UNAVAILABLE may meet the workload the first attempt created (a reused
        // id is ALREADY_EXISTS, runner-behaviour §3.1): the client knows the id it sent.
        const retried = viaLeader.failures.some((f) => f.method === 'startWorkload');
        if (retried && (err as ServiceError).code === status.ALREADY_EXISTS) {
          return request.workloadId;
        }
        throw err;
      }
    });
    const startedDuring = Date.now() - deletedAt;
    const holder = await eventually(
      async () => {
        const now = await release.leaseHolder();
        return now && now !== leader ? now : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200, what: 'a new leader' },
    );
    const takeoverMs = Date.now() - deletedAt;
    // The other replica or the Deployment's replacement, whichever asks first once the
    // deleted leader released the Lease; either way a live Pod of the release, never the old one.
    const live = (await release.pods()).filter((p) => !p.metadata.deletionTimestamp);
    expect(live.map((p) => p.metadata.name)).toContain(holder);
    await waitRunning(grpcService, during);
    const runningMs = Date.now() - deletedAt;
    const [service, leaderSide] = await Promise.all(polls.map((p) => p.stop()));
    await viaLeader.close();
    process.stdout.write(
      `leader takeover after ${takeoverMs} ms (StartWorkload answered after ${startedDuring} ms, ` +
        `its workload running after ${runningMs} ms); through the Service: ` +
        `${service!.running.length} inspections, ${grpcService.failures.length} retried ` +
        `failures, ${grpcService.reconnects} reconnects; from the leader's connection: ` +
        `${leaderSide!.running.length} inspections, ${viaLeader.failures.length} retried ` +
        `failures (${viaLeader.failures.map((f) => f.code).join(',')}), ` +
        `${viaLeader.reconnects} reconnects\n`,
    );
    for (const side of [service!, leaderSide!]) {
      expect(side.error).toBeUndefined();
      expect(side.running.length).toBeGreaterThan(0);
      expect(side.running.every(Boolean)).toBe(true);
    }
    expect(viaLeader.reconnects).toBeGreaterThan(0);
    const failures = [...grpcService.failures, ...viaLeader.failures];
    expect(failures.filter((f) => f.code !== status.UNAVAILABLE)).toEqual([]);
    expect((await release.workloadPod(keeper.id)).metadata.uid).toBe(keeper.podUid);
    await grpcService.retrying('removeWorkload', (c) =>
      call(c, 'removeWorkload', { workloadId: during, force: true, removeVolumes: true }),
    );
    await release.readyOperatorPods(`${registry}/k8s-runner:${version}`);
  }, 400_000);

  it('helm upgrade to a new image tag rolls the Deployment and loses no workload', async () => {
    requireInstalled(true);
    await tool(
      'helm',
      'upgrade',
      RELEASE,
      `oci://${registry}/charts/k8s-runner`,
      '--version',
      version,
      '--namespace',
      NS,
      '--reuse-values',
      '--set',
      `image.tag=${NEXT_TAG}`,
    );
    await tool(
      'kubectl',
      '-n',
      NS,
      'rollout',
      'status',
      `deployment/${FULLNAME}`,
      '--timeout=300s',
    );
    await release.readyOperatorPods(`${registry}/k8s-runner:${NEXT_TAG}`);
    const pod = await release.workloadPod(keeper.id);
    expect(pod.metadata.uid).toBe(keeper.podUid);
    expect(pod.status.phase).toBe('Running');
    await waitRunning(grpcService, keeper.id);
    const out = await grpcService.exec({ targetId: keeper.id, commandShell: 'echo still here' });
    expect(out.stdout).toBe('still here\n');
  }, 400_000);

  it('helm uninstall keeps the workload namespace, its workloads and their PVCs', async () => {
    requireInstalled(true);
    const withVolume = await grpcService.retrying('startWorkload', (c) =>
      call(c, 'startWorkload', startRequest('kept-volume', true)),
    );
    const claims = await eventually(
      async () => {
        const now = await release.claims();
        return now.length > 0 ? now : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `the PVC of ${withVolume.id}` },
    );
    await grpcService.close();
    await tool('helm', 'uninstall', RELEASE, '--namespace', NS);
    await eventually(async () => ((await release.pods()).length === 0 ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: 'the operator Pods gone',
    });
    const phase = await tool(
      'kubectl',
      'get',
      'namespace',
      WORKLOAD_NS,
      '-o',
      'jsonpath={.status.phase}',
    );
    expect(phase).toBe('Active');
    expect(await release.claims()).toEqual(claims);
    const pod = await release.workloadPod(keeper.id);
    expect([pod.metadata.uid, pod.status.phase]).toEqual([keeper.podUid, 'Running']);
    const workloads = await tool(
      'kubectl',
      '-n',
      WORKLOAD_NS,
      'get',
      'agentworkloads',
      '-o',
      'name',
    );
    expect(workloads).toContain(keeper.id);
  }, 300_000);
});
