/**
 * The operator process with exactly the RBAC the Helm chart grants, nothing more.
 *
 * `helm template` renders the chart with seed-like values (fresh operator and workload
 * namespaces, the in-process test gateway, a service token it knows, gRPC token auth);
 * only the namespaced objects a real install needs besides the Deployment (which kwok
 * cannot run) are applied: the workload Namespace, the ServiceAccount, the Roles and
 * RoleBindings, the Runner and the gRPC token Secret. The operator then runs as that
 * ServiceAccount (a TokenRequest token in a kubeconfig of its own) with the Deployment's
 * environment, and goes through a whole lifecycle: readiness, enrollment, an AgentWorkload
 * written by a person, a gRPC Start/Inspect/Exec/Logs/Events/Stop/Remove cycle, and the
 * finalization of a deleted workload. Any `forbidden` in its log fails the test.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { parseAllDocuments, parse as parseYaml, stringify as toYaml } from 'yaml';
import type { Runner } from '../../src/api/runner.ts';
import {
  ExecExitReason,
  ExecRequest,
  RunnerServiceClient,
  StartWorkloadRequest,
  StreamEventsRequest,
  StreamWorkloadLogsRequest,
  VolumeKind,
  WorkloadStatus,
  type DeepPartial,
  type ExecResponse,
  type StreamEventsResponse,
  type StreamWorkloadLogsResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { EVENTS, LEASES, NAMESPACES, PODS, PVCS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import { call, collect } from '../fixtures/grpc-harness.ts';
import {
  binDir,
  HELM_KUBE_VERSION,
  createTestNamespace,
  eventually,
  simulatedLogFile,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { httpGet, startOperator, type OperatorProcess } from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { getWorkload, type Workload } from '../support/workloads.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');
const RELEASE = 'acme-runner';
const FULLNAME = 'acme-runner-k8s-runner';
const SERVICE_TOKEN_SECRET = 'k8s-runner-token';
const SERVICE_TOKEN = `svc-token-${randomBytes(8).toString('hex')}`;
const RUNNER_ID = `rbac-runner-${randomBytes(4).toString('hex')}`;
const POD_NAME = `${FULLNAME}-6d9f7c5b8-rbac`;
/** Kinds of the rendered manifest that are applied; everything else (Deployment, Services, PDB) is not. */
const APPLIED_KINDS = [
  'Namespace',
  'ServiceAccount',
  'Secret',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'Runner',
];
/** The one cluster-scoped grant applied: reading the workload Namespace (not the aggregated roles). */
const NAMESPACE_READER = `${FULLNAME}-workload-namespace`;
const isApplied = (o: Rendered): boolean =>
  APPLIED_KINDS.includes(o.kind) &&
  (!o.kind.startsWith('Cluster') || o.metadata.name === NAMESPACE_READER);

type Pod = IPod & KubeObject;
type Pvc = IPersistentVolumeClaim & KubeObject;
type Secret = ISecret & KubeObject;

interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

const client: KubeClient = testKubeClient();
const started = Date.now();
const timings: Record<string, number> = {};
const mark = (what: string): void => {
  timings[what] = Date.now() - started;
};

let releaseNs: TestNamespace;
let workloadNs: string;
let tmp: string;
let saKubeconfig: string;
let gateway: TestGateway;
let operator: OperatorProcess | undefined;
let grpc: RunnerServiceClient;
let grpcToken: string;
let chartEnv: Record<string, string>;
let applied: Rendered[] = [];

function tool(
  name: 'kubectl' | 'helm',
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(binDir(), name),
      args,
      { maxBuffer: 64 << 20, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}`, stdout });
      },
    );
  });
}

async function mustRun(name: 'kubectl' | 'helm', args: string[]): Promise<string> {
  const r = await tool(name, args);
  if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} failed:\n${r.out}`);
  return r.stdout;
}

/** A kubeconfig for the API server of the admin kubeconfig that authenticates with `token` only. */
function writeTokenKubeconfig(file: string, token: string): void {
  const admin = parseYaml(readFileSync(process.env.KUBECONFIG ?? '', 'utf8')) as {
    clusters: Array<{
      cluster: {
        server: string;
        'certificate-authority'?: string;
        'certificate-authority-data'?: string;
      };
    }>;
  };
  const cluster = admin.clusters[0]?.cluster;
  if (!cluster) throw new Error('the admin kubeconfig has no cluster');
  const caData =
    cluster['certificate-authority-data'] ??
    readFileSync(cluster['certificate-authority'] ?? '').toString('base64');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'sa', cluster: { server: cluster.server, 'certificate-authority-data': caData } },
    ],
    users: [{ name: FULLNAME, user: { token } }],
    contexts: [
      { name: 'sa', context: { cluster: 'sa', user: FULLNAME, namespace: releaseNs.name } },
    ],
    'current-context': 'sa',
  };
  writeFileSync(file, toYaml(kubeconfig), { mode: 0o600 });
}

/** The Deployment's env, with the downward API resolved as the kubelet would. */
function deploymentEnv(deployment: Rendered): Record<string, string> {
  const spec = deployment.spec as {
    template: { spec: { containers: Array<{ name: string; env: EnvVar[] }> } };
  };
  const manager = spec.template.spec.containers.find((c) => c.name === 'manager');
  if (!manager) throw new Error('the rendered Deployment has no manager container');
  const env: Record<string, string> = {};
  for (const v of manager.env) {
    const field = v.valueFrom?.fieldRef?.fieldPath;
    if (field === 'metadata.namespace') env[v.name] = releaseNs.name;
    else if (field === 'metadata.name') env[v.name] = POD_NAME;
    else if (v.value !== undefined) env[v.name] = v.value;
    else throw new Error(`env ${v.name} has a source this test does not resolve`);
  }
  return env;
}

function bearer(): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${grpcToken}`);
  return md;
}

async function exists(get: () => Promise<unknown>): Promise<boolean> {
  try {
    await get();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

const secrets = () => client.resource<Secret>(SECRETS);
const pods = () => client.resource<Pod>(PODS);
const pvcs = () => client.resource<Pvc>(PVCS);
const workloads = () => client.resource<Workload>(AGENT_WORKLOADS);

function ownedBy(obj: KubeObject, uid: string | undefined): boolean {
  return obj.metadata?.ownerReferences?.some((r) => r.uid === uid) ?? false;
}

/** Lines of the operator's log that show the API server refusing it. */
function forbiddenLines(): string[] {
  if (!operator) return [];
  return readFileSync(operator.logFile, 'utf8')
    .split('\n')
    .filter((l) => /forbidden|\b403\b/i.test(l));
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'op-rbac-'));
  releaseNs = await createTestNamespace(client, 'op-rbac');
  workloadNs = `op-rbac-wl-${randomBytes(4).toString('hex')}`;
  gateway = await startTestGateway({
    tokens: {
      [SERVICE_TOKEN]: {
        identityJson: JSON.stringify({ runner_id: RUNNER_ID, key: randomBytes(8).toString('hex') }),
        serviceName: 'rbac.agyn',
        identityId: `identity-${RUNNER_ID}`,
      },
    },
  });

  // The seed's values with this run's namespaces and gateway layered over them.
  const overrides = path.join(tmp, 'values.yaml');
  writeFileSync(
    overrides,
    JSON.stringify({
      gateway: { url: gateway.url, insecure: true },
      serviceToken: { existingSecret: SERVICE_TOKEN_SECRET },
      resources: { workloadNamespace: workloadNs, createWorkloadNamespace: true },
      grpc: { auth: { mode: 'token' } },
      operator: { logLevel: 'debug', leaderElection: { enabled: true } },
    }),
  );
  const manifest = await mustRun('helm', [
    'template',
    RELEASE,
    chart,
    '--namespace',
    releaseNs.name,
    '-f',
    seedValues,
    '-f',
    overrides,
    '--kube-version',
    HELM_KUBE_VERSION,
  ]);
  const rendered = parseAllDocuments(manifest)
    .map((d) => d.toJS() as Rendered | null)
    .filter((o): o is Rendered => o !== null);
  const deployment = rendered.find((o) => o.kind === 'Deployment');
  if (!deployment) throw new Error('the chart rendered no Deployment');
  chartEnv = deploymentEnv(deployment);
  applied = rendered
    .filter(isApplied)
    .sort((a, b) => APPLIED_KINDS.indexOf(a.kind) - APPLIED_KINDS.indexOf(b.kind));
  mark('rendered');

  // The service token Secret is the one thing an installer creates by hand (docs/install.md).
  await secrets().create(releaseNs.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: SERVICE_TOKEN_SECRET,
      namespace: releaseNs.name,
      labels: { 'agyn.io/runner-token': 'true' },
    },
    data: { token: Buffer.from(`${SERVICE_TOKEN}\n`).toString('base64') },
  });
  const file = path.join(tmp, 'applied.yaml');
  writeFileSync(file, applied.map((o) => toYaml(o)).join('---\n'));
  await mustRun('kubectl', ['apply', '-f', file]);
  mark('applied');

  // The ServiceAccount's own credentials: a bound token from the TokenRequest API.
  const token = (
    await mustRun('kubectl', ['create', 'token', FULLNAME, '-n', releaseNs.name, '--duration=1h'])
  ).trim();
  saKubeconfig = path.join(tmp, 'operator.kubeconfig');
  writeTokenKubeconfig(saKubeconfig, token);

  const env = { ...chartEnv };
  // The process binds free loopback ports instead of the container ports.
  delete env.GRPC_PORT;
  delete env.HTTP_PORT;
  operator = await startOperator({
    name: 'rbac',
    env: { ...env, KUBECONFIG: saKubeconfig },
  });
  mark('operator started');
  const grpcSecret = await secrets().get(releaseNs.name, `${FULLNAME}-grpc-token`);
  grpcToken = Buffer.from(grpcSecret.data?.token ?? '', 'base64').toString('utf8');
  grpc = new RunnerServiceClient(`127.0.0.1:${operator.grpcPort}`, credentials.createInsecure());
}, 90_000);

afterAll(async () => {
  grpc?.close();
  // Workloads go first, while the operator still runs, so that their finalizers clear.
  if (workloadNs) {
    try {
      const left = await workloads().list(workloadNs);
      await Promise.all(
        left.items.map((w) =>
          workloads()
            .delete(workloadNs, w.metadata.name)
            .catch(() => undefined),
        ),
      );
      if (operator?.running) {
        await eventually(async () => (await workloads().list(workloadNs)).items.length === 0, {
          timeoutMs: 20_000,
          what: 'the AgentWorkloads to be finalized',
        }).catch(() => undefined);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  await operator?.stop();
  await gateway?.stop();
  if (workloadNs) {
    // After a failed run the operator may not have finalized everything: let the namespace go.
    try {
      for (const w of (await workloads().list(workloadNs)).items) {
        await workloads()
          .mergePatch(workloadNs, w.metadata.name, { metadata: { finalizers: null } })
          .catch(() => undefined);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await client.resource(NAMESPACES).delete(undefined, workloadNs);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  for (const kind of ['clusterrolebinding', 'clusterrole']) {
    await tool('kubectl', ['delete', kind, NAMESPACE_READER, '--ignore-not-found']);
  }
  await releaseNs?.cleanup();
  client.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  timings.total = Date.now() - started;
  process.stdout.write(`operator-rbac timings (ms since start): ${JSON.stringify(timings)}\n`);
}, 60_000);

describe('the operator as the chart ServiceAccount', () => {
  test('applies namespaced RBAC, the reading of the workload Namespace, the ServiceAccount, the Runner and Secrets (plus the workload Namespace)', () => {
    expect(
      applied.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`),
    ).toEqual([
      `Namespace /${workloadNs}`,
      `ServiceAccount ${releaseNs.name}/${FULLNAME}`,
      `Role ${releaseNs.name}/${FULLNAME}-operator`,
      `Role ${workloadNs}/${FULLNAME}-workloads`,
      `ClusterRole /${NAMESPACE_READER}`,
      `RoleBinding ${releaseNs.name}/${FULLNAME}-operator`,
      `RoleBinding ${workloadNs}/${FULLNAME}-workloads`,
      `ClusterRoleBinding /${NAMESPACE_READER}`,
      `Runner ${releaseNs.name}/${RELEASE}`,
    ]);
    expect(chartEnv).toEqual({
      OPERATOR_NAMESPACE: releaseNs.name,
      POD_NAME,
      WORKLOAD_NAMESPACE: workloadNs,
      GRPC_PORT: '50051',
      GRPC_AUTH_MODE: 'token',
      GRPC_TOKEN_SECRET: `${FULLNAME}-grpc-token`,
      GRPC_TOKEN_SECRET_CREATE: 'true',
      HTTP_PORT: '8080',
      LEADER_ELECTION: 'true',
      LEADER_ELECTION_ID: 'k8s-runner',
      LOG_LEVEL: 'debug',
    });
    // Created by the operator, as its ServiceAccount, at start (the chart renders none).
    expect(grpcToken).toMatch(/^[0-9a-f]{64}$/);
  });

  test('its kubeconfig really is the ServiceAccount, with nothing cluster-wide but its workload Namespace', async () => {
    const as = { KUBECONFIG: saKubeconfig };
    const whoami = await tool(
      'kubectl',
      ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'],
      as,
    );
    expect(whoami.stdout).toBe(`system:serviceaccount:${releaseNs.name}:${FULLNAME}`);
    const canI = async (...args: string[]) =>
      (await tool('kubectl', ['auth', 'can-i', ...args], as)).stdout.trim();
    expect(await canI('list', 'pods', '--all-namespaces')).toBe('no');
    expect(await canI('list', 'namespaces')).toBe('no');
    expect(await canI('get', `namespaces/${releaseNs.name}`)).toBe('no');
    expect(await canI('watch', `namespaces/${workloadNs}`)).toBe('yes');
    expect(await canI('create', 'pods', '-n', workloadNs)).toBe('yes');
  });

  test('becomes ready, takes the Lease and enrolls the chart Runner', async () => {
    await eventually(async () => (await httpGet(`${operator!.httpUrl}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      what: '/readyz to answer 200',
    });
    mark('ready');
    const lease = await client
      .resource<KubeObject & { spec: { holderIdentity?: string } }>(LEASES)
      .get(releaseNs.name, 'k8s-runner');
    expect(lease.spec.holderIdentity).toBe(POD_NAME);

    const runner = await eventually(
      async () => {
        const r = await client.resource<Runner>(RUNNERS).get(releaseNs.name, RELEASE);
        const conditions = Object.fromEntries(
          (r.status?.conditions ?? []).map((c) => [c.type, c.status]),
        );
        return conditions.Enrolled === 'True' && conditions.Ready === 'True' ? r : undefined;
      },
      { timeoutMs: 30_000, what: `Runner ${RELEASE} Enrolled and Ready` },
    );
    mark('runner ready');
    expect(runner.status?.observedGeneration).toBe(runner.metadata.generation);
    expect(gateway.requests.enrollRunner.map((r) => r.serviceToken)).toContain(SERVICE_TOKEN);
    // The identity Secret the operator created in its own namespace, owned by the Runner.
    const identity = await secrets().get(releaseNs.name, `${RELEASE}-identity`);
    expect(ownedBy(identity, runner.metadata.uid)).toBe(true);
    await eventually(() => gateway.count('reportRunnerCatalog') > 0, {
      what: 'the catalog report',
    });
  });

  test('an AgentWorkload with a volume, inline files and a pull secret runs and is finalized', async () => {
    const id = randomUUID();
    const name = `rbac-${id.slice(0, 8)}`;
    const labels = { 'app.kubernetes.io/managed-by': 'k8s-runner', 'agyn.io/workload-id': id };
    const secret = (suffix: string, type: string, data: Record<string, string>): Secret => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-${suffix}`, namespace: workloadNs, labels },
      type,
      data: Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
    });
    await secrets().create(
      workloadNs,
      secret('inline-files', 'Opaque', { 'config.json': '{"model":"small"}' }),
    );
    await secrets().create(
      workloadNs,
      secret('pull', 'kubernetes.io/dockerconfigjson', {
        '.dockerconfigjson': JSON.stringify({ auths: { 'ghcr.io': { auth: 'Ym90OnB3' } } }),
      }),
    );
    const claim = `ws-${id.slice(0, 8)}`;
    const created = await workloads().create(workloadNs, {
      apiVersion: 'agyn.io/v1alpha1',
      kind: 'AgentWorkload',
      metadata: { name },
      spec: {
        workloadId: id,
        main: {
          name: 'main',
          image: 'example.invalid/agent:1',
          mounts: [{ volume: 'ws', mountPath: '/workspace' }],
          inlineFileMounts: ['/etc/agyn/config.json'],
        },
        volumes: [{ name: 'ws', kind: 'Persistent', persistentName: claim, size: '1Gi' }],
        inlineFiles: {
          secretRef: { name: `${name}-inline-files` },
          files: [{ path: '/etc/agyn/config.json', key: 'config.json' }],
        },
        imagePullSecretRef: { name: `${name}-pull` },
      },
    } as unknown as Workload);

    const running = await eventually(
      async () => {
        const aw = await getWorkload(client, workloadNs, name);
        return aw.status?.phase === 'Running' ? aw : undefined;
      },
      { timeoutMs: 30_000, what: `${name} Running` },
    );
    mark('AgentWorkload running');
    expect(running.status?.runner).toBe(RELEASE);
    expect(running.metadata.finalizers).toContain('agyn.io/workload-cleanup');
    const pod = await pods().get(workloadNs, name);
    expect(ownedBy(pod, created.metadata.uid)).toBe(true);
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: `${name}-pull` }]);
    const podVolumes = (pod.spec?.volumes ?? []).map(
      (v) => v.persistentVolumeClaim?.claimName ?? v.projected?.sources?.[0]?.secret?.name,
    );
    expect(podVolumes).toEqual(expect.arrayContaining([claim, `${name}-inline-files`]));
    const pvc = await eventually(
      async () => {
        const p = await pvcs().get(workloadNs, claim);
        return p.status?.phase === 'Bound' ? p : undefined;
      },
      { what: `PVC ${claim} Bound` },
    );
    // Volumes outlive their workload (deleteVolumesWithWorkload is false): created, not owned.
    expect(pvc.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'k8s-runner',
      'agyn.io/runner': RELEASE,
    });
    expect(ownedBy(pvc, created.metadata.uid)).toBe(false);
    await eventually(
      async () => {
        const owned = await Promise.all(
          ['inline-files', 'pull'].map(async (s) =>
            ownedBy(await secrets().get(workloadNs, `${name}-${s}`), created.metadata.uid),
          ),
        );
        return owned.every(Boolean);
      },
      { what: 'both Secrets adopted by the workload' },
    );

    await workloads().delete(workloadNs, name);
    await eventually(async () => !(await exists(() => workloads().get(workloadNs, name))), {
      timeoutMs: 30_000,
      what: `${name} finalized and gone`,
    });
    mark('AgentWorkload finalized');
    // The finalizer deleted the Pod and the adopted Secrets and kept the volume.
    expect(await exists(() => secrets().get(workloadNs, `${name}-inline-files`))).toBe(false);
    expect(await exists(() => secrets().get(workloadNs, `${name}-pull`))).toBe(false);
    await eventually(async () => !(await exists(() => pods().get(workloadNs, name))), {
      what: `Pod ${name} gone`,
    });
    expect(await exists(() => pvcs().get(workloadNs, claim))).toBe(true);
  });

  test('a gRPC StartWorkload, Inspect, Exec, Logs, Events, Stop and Remove cycle', async () => {
    const id = randomUUID();
    const pod = `workload-${id}`;
    const key = `k-${id.slice(0, 8)}`;
    const request: DeepPartial<StartWorkloadRequest> = {
      workloadId: id,
      additionalProperties: { 'label.workload_key': key },
      imagePullCredentials: [{ registry: 'ghcr.io', username: 'bot', password: 'pw' }],
      inlineFiles: { '/etc/agyn/ca.crt': Buffer.from('CA') },
      volumes: [
        {
          name: 'ws',
          kind: VolumeKind.VOLUME_KIND_NAMED,
          persistentName: `ws-${key}`,
          labels: { volume_key: key },
        },
      ],
      main: {
        image: 'workspace:1',
        mounts: [{ volume: 'ws', mountPath: '/workspace' }],
        inlineFileMounts: [{ path: '/etc/agyn/ca.crt' }],
      },
      sidecars: [{ name: 'mcp-files', image: 'files-mcp:1' }],
    };

    // Without the chart's token the shim refuses (the operator read it from its own Secret).
    const refused = await call(grpc, 'ready', {}).then(
      () => 0,
      (err: ServiceError) => err.code,
    );
    expect(refused).toBe(status.UNAUTHENTICATED);

    const started = await call(
      grpc,
      'startWorkload',
      StartWorkloadRequest.fromPartial(request),
      bearer(),
    );
    expect(started.id).toBe(id);
    expect(started.containers?.main).toBe(pod);
    expect([
      WorkloadStatus.WORKLOAD_STATUS_STARTING,
      WorkloadStatus.WORKLOAD_STATUS_RUNNING,
    ]).toContain(started.status);

    const events = grpc.streamEvents(
      StreamEventsRequest.fromPartial({
        filters: [{ key: 'involvedObject.name', values: [pod] }],
      }),
      bearer(),
    );
    const eventsDone = collect<StreamEventsResponse>(events);
    const reasons: string[] = [];
    events.on('data', (m: StreamEventsResponse) => {
      if (m.event?.$case === 'data')
        reasons.push((JSON.parse(m.event.data.json) as { reason: string }).reason);
    });

    const inspected = await eventually(
      async () => {
        const r = await call(grpc, 'inspectWorkload', { workloadId: id }, bearer());
        return r.stateRunning ? r : undefined;
      },
      { timeoutMs: 30_000, what: `${pod} running (InspectWorkload)` },
    );
    mark('gRPC workload running');
    expect(inspected.configLabels).toMatchObject({ workload_key: key });
    expect(inspected.mounts).toContainEqual({
      type: 'pvc',
      source: `ws-${key}`,
      destination: '/workspace',
      readOnly: false,
    });
    const aw = await getWorkload(client, workloadNs, pod);
    for (const s of [`${pod}-pull`, `${pod}-inline-files`]) {
      await eventually(async () => ownedBy(await secrets().get(workloadNs, s), aw.metadata.uid), {
        what: `${s} adopted`,
      });
    }

    // StreamEvents: an Event about the workload (kwok's Pods have none, and a Running
    // workload has none of the operator's), watched with the operator's rights.
    await client.resource(EVENTS).create(workloadNs, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${pod}.rbac-probe` },
      involvedObject: {
        apiVersion: aw.apiVersion,
        kind: 'AgentWorkload',
        name: pod,
        namespace: workloadNs,
        uid: aw.metadata.uid,
      },
      reason: 'RbacProbe',
      message: 'an Event the operator streams',
      type: 'Normal',
      firstTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    } as KubeObject);
    await eventually(() => reasons.includes('RbacProbe'), {
      timeoutMs: 10_000,
      what: 'the Event through StreamEvents',
    });
    events.cancel();
    expect((await eventsDone).code).toBe(status.CANCELLED);

    // Exec through pods/exec.
    const exec = grpc.exec(bearer());
    const execDone = collect<ExecResponse>(exec);
    exec.write(
      ExecRequest.fromPartial({
        msg: {
          $case: 'start',
          start: { targetId: pod, commandArgv: ['sh', '-c', 'echo rbac-$((6 * 7))'] },
        },
      }),
    );
    const execOutcome = await execDone;
    expect(execOutcome.code).toBe(status.OK);
    const stdout = Buffer.concat(
      execOutcome.messages.flatMap((e) =>
        e.event?.$case === 'stdout' ? [e.event.stdout.data] : [],
      ),
    ).toString();
    expect(stdout).toBe('rbac-42\n');
    const exit = execOutcome.messages.find((e) => e.event?.$case === 'exit')?.event;
    expect(exit?.$case === 'exit' && [exit.exit.exitCode, exit.exit.reason]).toEqual([
      0,
      ExecExitReason.EXEC_EXIT_REASON_COMPLETED,
    ]);
    mark('exec');

    // Logs through pods/log (kwok serves one simulated log file for every container).
    const marker = `rbac-log-${randomUUID()}`;
    appendFileSync(
      simulatedLogFile(),
      `${new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')} stdout F ${marker}\n`,
    );
    const logs = await collect<StreamWorkloadLogsResponse>(
      grpc.streamWorkloadLogs(
        StreamWorkloadLogsRequest.fromPartial({
          workloadId: id,
          containerName: 'main',
          tailLines: 50,
        }),
        bearer(),
      ),
    );
    expect(logs.code).toBe(status.OK);
    const text = Buffer.concat(
      logs.messages.map((m) => (m.event?.$case === 'chunk' ? m.event.chunk.data : Buffer.alloc(0))),
    ).toString();
    expect(text).toContain(`${marker}\n`);
    mark('logs');

    // Stop deletes the workload as upstream: the AgentWorkload is finalized, its Pod and
    // Secrets go, the PVC stays and RemoveVolume deletes it.
    await call(grpc, 'stopWorkload', { workloadId: id, timeoutSec: 1 }, bearer());
    expect(await exists(() => pods().get(workloadNs, pod))).toBe(false);
    expect(await exists(() => workloads().get(workloadNs, pod))).toBe(false);
    for (const s of [`${pod}-pull`, `${pod}-inline-files`]) {
      expect(await exists(() => secrets().get(workloadNs, s))).toBe(false);
    }
    const gone = await call(grpc, 'inspectWorkload', { workloadId: id }, bearer()).then(
      () => 0,
      (err: ServiceError) => err.code,
    );
    expect(gone).toBe(status.NOT_FOUND);
    mark('gRPC stop');

    await call(grpc, 'removeVolume', { volumeName: `ws-${key}`, force: false }, bearer());
    await eventually(async () => !(await exists(() => pvcs().get(workloadNs, `ws-${key}`))), {
      what: `PVC ws-${key} deleted`,
    });
    mark('gRPC remove');
    // The state reporter told the gateway about the workload.
    await eventually(() => gateway.requests.reportWorkloadState.some((r) => r.workloadId === id), {
      what: 'a workload state report for the gRPC workload',
    });
  });

  test('renews its Lease, shuts down cleanly and was never refused by the API server', async () => {
    // Renewal is a PUT of the Lease (verb update), one retry period after the last one.
    type Lease = KubeObject & { spec: { holderIdentity?: string; renewTime?: string } };
    const leases = client.resource<Lease>(LEASES);
    const before = (await leases.get(releaseNs.name, 'k8s-runner')).spec.renewTime;
    await eventually(
      async () => (await leases.get(releaseNs.name, 'k8s-runner')).spec.renewTime !== before,
      { timeoutMs: 10_000, what: 'a Lease renewal' },
    );
    mark('lease renewed');
    expect((await workloads().list(workloadNs)).items).toEqual([]);

    // SIGTERM: the leader releases its Lease (another update) before it exits.
    expect(operator?.running).toBe(true);
    await operator?.stop('SIGTERM');
    expect(await operator?.exited).toEqual({ code: 0, signal: null });
    expect((await leases.get(releaseNs.name, 'k8s-runner')).spec.holderIdentity).toBe('');
    mark('operator stopped');

    // Event recording and the Lease release are best effort and logged at debug: a
    // refusal of either would show here as well.
    expect(forbiddenLines()).toEqual([]);
    const lines = operator?.logs() ?? [];
    expect(lines.filter((l) => l.msg === 'could not record an Event')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'could not release the lease')).toEqual([]);
    // Nothing went wrong at all, except the notice that the chart runs token auth without TLS.
    const plaintextNotice = 'gRPC bearer tokens travel over plain text: configure certPem/keyPem';
    expect(lines.filter((l) => l.level >= 40 && l.msg !== plaintextNotice)).toEqual([]);
  });
});
