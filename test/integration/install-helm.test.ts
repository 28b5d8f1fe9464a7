/**
 * A real `helm install` of charts/k8s-runner with the seed's values file into the test
 * control plane (kwok simulates the operator's Pods; the operator process itself is
 * tested elsewhere). Checks what was installed, that the Runner matches the values, and
 * the operator's RBAC by impersonating its ServiceAccount.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeClient } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { NAMESPACES } from '../../src/kube/resources.ts';
import {
  binDir,
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');
const RELEASE = 'acme-runner';
const FULLNAME = 'acme-runner-k8s-runner';

function tool(
  name: 'kubectl' | 'helm',
  args: string[],
): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(path.join(binDir(), name), args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}`, stdout });
    });
  });
}

async function getJson<T>(args: string[]): Promise<T> {
  const r = await tool('kubectl', ['get', ...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl get ${args.join(' ')}: ${r.out}`);
  return JSON.parse(r.stdout) as T;
}

interface Meta {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

let client: KubeClient;
let releaseNs: TestNamespace;
let workloadNs: string;
let installed = false;

beforeAll(async () => {
  client = testKubeClient();
  releaseNs = await createTestNamespace(client, 'it-helm');
  // The seed's workload namespace is shared by everyone using this control plane; this
  // test layers a fresh one over the unchanged seed file, and the chart creates it.
  workloadNs = `it-helm-wl-${randomBytes(4).toString('hex')}`;
  const overrides = path.join(mkdtempSync(path.join(os.tmpdir(), 'it-helm-')), 'values.yaml');
  // With the opt-in finalizer policy, so that a real install of it is checked too.
  writeFileSync(
    overrides,
    JSON.stringify({
      resources: { workloadNamespace: workloadNs },
      admissionPolicy: { workloadFinalizer: { enabled: true } },
    }),
  );
  const r = await tool('helm', [
    'install',
    RELEASE,
    chart,
    '--namespace',
    releaseNs.name,
    '-f',
    seedValues,
    '-f',
    overrides,
    '--timeout',
    '120s',
  ]);
  if (r.code !== 0) throw new Error(`helm install failed:\n${r.out}`);
  installed = true;
}, 180_000);

afterAll(async () => {
  if (installed)
    await tool('helm', [
      'uninstall',
      RELEASE,
      '--namespace',
      releaseNs.name,
      '--wait',
      '--timeout',
      '60s',
    ]);
  try {
    await client.resource(NAMESPACES).delete(undefined, workloadNs);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await releaseNs?.cleanup();
  client?.close();
}, 120_000);

describe('helm install with the seed values', () => {
  it('deploys the release', async () => {
    const r = await tool('helm', ['status', RELEASE, '--namespace', releaseNs.name, '-o', 'json']);
    expect((JSON.parse(r.stdout) as { info: { status: string } }).info.status).toBe('deployed');
  });

  it('installs the operator Deployment, its ServiceAccount and Services', async () => {
    const deployment = await getJson<
      Meta & { spec: { replicas: number; template: { spec: { serviceAccountName: string } } } }
    >(['deployment', FULLNAME, '-n', releaseNs.name]);
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.serviceAccountName).toBe(FULLNAME);
    await getJson(['serviceaccount', FULLNAME, '-n', releaseNs.name]);
    const grpc = await getJson<{ spec: { ports: Array<{ name: string; port: number }> } }>([
      'service',
      FULLNAME,
      '-n',
      releaseNs.name,
    ]);
    expect(grpc.spec.ports).toEqual([expect.objectContaining({ name: 'grpc', port: 50051 })]);
    const metrics = await getJson<{ spec: { ports: Array<{ name: string; port: number }> } }>([
      'service',
      `${FULLNAME}-metrics`,
      '-n',
      releaseNs.name,
    ]);
    expect(metrics.spec.ports).toEqual([
      expect.objectContaining({ name: 'http-metrics', port: 8080 }),
    ]);
  });

  it('rolls the Deployment out on the (simulated) nodes', async () => {
    await eventually(
      async () => {
        const d = await getJson<{
          status: { readyReplicas?: number; conditions?: Array<{ type: string; status: string }> };
        }>(['deployment', FULLNAME, '-n', releaseNs.name]);
        return (
          d.status.readyReplicas === 2 &&
          d.status.conditions?.some((c) => c.type === 'Available' && c.status === 'True')
        );
      },
      { timeoutMs: 90_000, intervalMs: 500, what: 'the Deployment to have 2 ready replicas' },
    );
  }, 120_000);

  it('installs the opt-in workload finalizer policy, bound to the workload namespace (the cluster serves v1)', async () => {
    const name = `${FULLNAME}-workload-finalizer`;
    const policy = await getJson<Meta & { spec: { failurePolicy: string } }>([
      'mutatingadmissionpolicy',
      name,
    ]);
    expect(policy.spec.failurePolicy).toBe('Ignore');
    const binding = await getJson<
      Meta & { spec: { policyName: string; matchResources: Record<string, unknown> } }
    >(['mutatingadmissionpolicybinding', name]);
    expect(binding.spec.policyName).toBe(name);
    expect(binding.spec.matchResources).toEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': workloadNs } },
      // Defaults the API server fills in.
      matchPolicy: 'Equivalent',
      objectSelector: {},
    });
  });

  it('creates the workload namespace, kept on uninstall, with the Roles and RoleBindings', async () => {
    const ns = await getJson<Meta>(['namespace', workloadNs]);
    expect(ns.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    expect(ns.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
    await getJson(['role', `${FULLNAME}-operator`, '-n', releaseNs.name]);
    await getJson(['rolebinding', `${FULLNAME}-operator`, '-n', releaseNs.name]);
    await getJson(['role', `${FULLNAME}-workloads`, '-n', workloadNs]);
    await getJson(['rolebinding', `${FULLNAME}-workloads`, '-n', workloadNs]);
  });

  it('creates the Runner exactly as the values say', async () => {
    const runner = await getJson<Meta & { spec: unknown }>([
      'runner',
      RELEASE,
      '-n',
      releaseNs.name,
    ]);
    // Server-side defaults from the CRD fill what the values leave out.
    expect(runner.spec).toEqual({
      gateway: { url: 'https://gateway.agyn.example.com' },
      serviceToken: { secretRef: { name: 'k8s-runner-token', key: 'token' } },
      workloadNamespace: workloadNs,
      pullSecrets: [],
      storage: { defaultClass: 'standard', defaultSize: '10Gi' },
      capabilities: ['docker'],
      capabilityImplementations: { docker: 'rootless' },
      labels: {},
      catalog: { flavors: [], storageClasses: [] },
      scheduling: {},
      health: {
        startGraceSeconds: 60,
        initRetryThreshold: 3,
        crashloopThreshold: 3,
        runtimeLostGraceSeconds: 30,
      },
      workloadSecurity: {
        allowRoot: false,
        capabilities: { main: [], init: [], mcp: [], hook: [], ziti: [], other: [] },
      },
    });
  });

  it('upgrades in place; the release holds no Secret (the operator creates the gRPC token)', async () => {
    const r = await tool('helm', [
      'upgrade',
      RELEASE,
      chart,
      '--namespace',
      releaseNs.name,
      '--reuse-values',
      '--set',
      'operator.logLevel=debug',
    ]);
    expect(r.out).not.toContain('Error');
    const manifest = await tool('helm', ['get', 'manifest', RELEASE, '-n', releaseNs.name]);
    expect(manifest.code).toBe(0);
    expect(manifest.stdout).not.toMatch(/^kind: Secret$/m);
  });
});

describe('the operator ServiceAccount (impersonated)', () => {
  type Check = [
    verb: string,
    resource: string,
    namespace: string | 'ALL' | 'CLUSTER',
    subresource?: string,
  ];
  const sa = () => `system:serviceaccount:${releaseNs.name}:${FULLNAME}`;

  async function canI([verb, resource, namespace, subresource]: Check): Promise<boolean> {
    const args = ['auth', 'can-i', verb, resource, `--as=${sa()}`];
    if (subresource) args.push(`--subresource=${subresource}`);
    if (namespace === 'ALL') args.push('--all-namespaces');
    else if (namespace !== 'CLUSTER') args.push('-n', namespace);
    const r = await tool('kubectl', args);
    if (r.code > 1) throw new Error(`kubectl ${args.join(' ')}: ${r.out}`);
    return r.stdout.trim() === 'yes';
  }

  async function evaluate(checks: Check[]): Promise<string[]> {
    const results: string[] = [];
    for (let i = 0; i < checks.length; i += 8) {
      const batch = checks.slice(i, i + 8);
      const answers = await Promise.all(batch.map(canI));
      batch.forEach((c, j) =>
        results.push(
          `${c[0]} ${c[1]}${c[3] ? `/${c[3]}` : ''} in ${c[2]}: ${answers[j] ? 'yes' : 'no'}`,
        ),
      );
    }
    return results;
  }

  const expectAll = async (checks: Check[], answer: 'yes' | 'no') => {
    const results = await evaluate(checks);
    expect(results).toEqual(results.map((r) => r.replace(/(yes|no)$/, answer)));
  };

  it('may do everything the operator needs in its own namespace', async () => {
    const ns = releaseNs.name;
    await expectAll(
      [
        ...['get', 'list', 'watch'].map((v): Check => [v, 'runners.agyn.io', ns]),
        ...['get', 'patch', 'update'].map((v): Check => [v, 'runners.agyn.io', ns, 'status']),
        ['update', 'runners.agyn.io', ns, 'finalizers'],
        ...['get', 'list', 'watch', 'create', 'patch'].map((v): Check => [v, 'secrets', ns]),
        ...['create', 'patch'].map((v): Check => [v, 'events', ns]),
        ...['get', 'list', 'watch', 'create', 'update', 'patch'].map((v): Check => [
          v,
          'leases.coordination.k8s.io',
          ns,
        ]),
      ],
      'yes',
    );
  });

  it('may do everything the operator needs in the workload namespace', async () => {
    const ns = workloadNs;
    await expectAll(
      [
        ...['get', 'list', 'watch', 'create', 'patch', 'delete'].map((v): Check => [
          v,
          'agentworkloads.agyn.io',
          ns,
        ]),
        ...['get', 'patch', 'update'].map((v): Check => [
          v,
          'agentworkloads.agyn.io',
          ns,
          'status',
        ]),
        ['update', 'agentworkloads.agyn.io', ns, 'finalizers'],
        ...['get', 'list', 'watch', 'create', 'delete'].map((v): Check => [v, 'pods', ns]),
        ['get', 'pods', ns, 'log'],
        ['create', 'pods', ns, 'exec'],
        ['get', 'pods', ns, 'exec'],
        ...['get', 'list', 'watch', 'create', 'delete'].map((v): Check => [
          v,
          'persistentvolumeclaims',
          ns,
        ]),
        ...['get', 'list', 'watch', 'create', 'patch', 'delete'].map((v): Check => [
          v,
          'secrets',
          ns,
        ]),
        ...['list', 'watch', 'create', 'patch'].map((v): Check => [v, 'events', ns]),
      ],
      'yes',
    );
  });

  it('may not touch Secrets outside its namespaces, nor cluster-wide', async () => {
    await expectAll(
      [
        ...['get', 'list', 'watch', 'create', 'delete'].map((v): Check => [
          v,
          'secrets',
          'default',
        ]),
        ...['get', 'list'].map((v): Check => [v, 'secrets', 'kube-system']),
        ...['get', 'list', 'watch'].map((v): Check => [v, 'secrets', 'ALL']),
        ['delete', 'secrets', releaseNs.name],
      ],
      'no',
    );
  });

  it('gets nothing it does not need', async () => {
    await expectAll(
      [
        ['create', 'runners.agyn.io', releaseNs.name],
        ['update', 'runners.agyn.io', releaseNs.name],
        ['delete', 'runners.agyn.io', releaseNs.name],
        ['create', 'agentworkloads.agyn.io', releaseNs.name],
        ['create', 'pods', releaseNs.name],
        ['create', 'pods', 'default'],
        ['list', 'pods', 'ALL'],
        ['list', 'agentworkloads.agyn.io', 'ALL'],
        ['create', 'pods', workloadNs, 'attach'],
        ['create', 'pods', workloadNs, 'portforward'],
        ['update', 'pods', workloadNs],
        ['create', 'roles.rbac.authorization.k8s.io', workloadNs],
        ['create', 'rolebindings.rbac.authorization.k8s.io', releaseNs.name],
        ['create', 'namespaces', 'CLUSTER'],
        ['list', 'nodes', 'CLUSTER'],
        ['get', 'customresourcedefinitions.apiextensions.k8s.io', 'CLUSTER'],
        ['create', 'clusterrolebindings.rbac.authorization.k8s.io', 'CLUSTER'],
      ],
      'no',
    );
  });
});

describe('helm uninstall', () => {
  it('removes the operator and the Runner but keeps the workload namespace', async () => {
    const r = await tool('helm', [
      'uninstall',
      RELEASE,
      '--namespace',
      releaseNs.name,
      '--wait',
      '--timeout',
      '60s',
    ]);
    expect(r.code).toBe(0);
    installed = false;
    expect((await tool('kubectl', ['get', 'runner', RELEASE, '-n', releaseNs.name])).out).toContain(
      'NotFound',
    );
    expect(
      (await tool('kubectl', ['get', 'deployment', FULLNAME, '-n', releaseNs.name])).out,
    ).toContain('NotFound');
    expect(
      (await tool('kubectl', ['get', 'role', `${FULLNAME}-workloads`, '-n', workloadNs])).out,
    ).toContain('NotFound');
    expect(
      (await tool('kubectl', ['get', 'mutatingadmissionpolicy', `${FULLNAME}-workload-finalizer`]))
        .out,
    ).toContain('NotFound');
    await getJson(['namespace', workloadNs]);
  }, 90_000);
});
