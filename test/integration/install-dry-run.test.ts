/**
 * Server-side dry runs against the real API server: every sample in config/samples and
 * config/networkpolicy, and the Helm chart's full output (seed values; and with every
 * optional feature the test cluster has the APIs for). A dry run passes admission, the
 * CRDs' structural schemas and their CEL rules, without persisting anything.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  binDir,
  HELM_KUBE_VERSION,
  createTestNamespace,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

function tool(
  name: 'kubectl' | 'helm',
  args: string[],
  input?: string,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      path.join(binDir(), name),
      args,
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
]);

/** Moves sample objects from the fixed namespaces of config/ into this test's namespaces. */
function relocate(objects: Obj[], operatorNs: string, workloadNs: string): Obj[] {
  const map: Record<string, string> = {
    'k8s-runner-system': operatorNs,
    'agyn-workloads': workloadNs,
  };
  return objects.map((o) => {
    const copy = structuredClone(o);
    if (!CLUSTER_SCOPED.has(copy.kind)) {
      copy.metadata.namespace =
        map[copy.metadata.namespace ?? 'agyn-workloads'] ?? copy.metadata.namespace;
    }
    if (copy.kind === 'Runner' && copy.spec) copy.spec.workloadNamespace = workloadNs;
    return copy;
  });
}

function loadYaml(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

function toYaml(objects: Obj[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}

async function dryRun(manifest: string): Promise<string> {
  const r = await tool('kubectl', ['apply', '--dry-run=server', '-f', '-'], manifest);
  if (r.code !== 0) throw new Error(`server-side dry run failed:\n${r.out}`);
  return r.out;
}

let client: KubeClient;
let operatorNs: TestNamespace;
let workloadNs: TestNamespace;

beforeAll(async () => {
  client = testKubeClient();
  operatorNs = await createTestNamespace(client, 'it-dry-op');
  workloadNs = await createTestNamespace(client, 'it-dry-wl');
});
afterAll(async () => {
  await operatorNs?.cleanup();
  await workloadNs?.cleanup();
  client?.close();
});

describe('server-side dry run of config/samples', () => {
  const samples = readdirSync(path.join(root, 'config/samples'))
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort();

  it('finds the samples', () => {
    expect(samples).toEqual(
      expect.arrayContaining(['agentworkload.yaml', 'runner.yaml', 'runner_gpu.yaml']),
    );
  });

  it.each(samples)('%s passes', async (file) => {
    const objects = relocate(
      loadYaml(path.join(root, 'config/samples', file)),
      operatorNs.name,
      workloadNs.name,
    );
    const out = await dryRun(toYaml(objects));
    for (const o of objects) expect(out).toContain(`${o.metadata.name} created (server dry run)`);
  });

  it('config/networkpolicy passes', async () => {
    const objects = relocate(
      loadYaml(path.join(root, 'config/networkpolicy/workload_egress.yaml')),
      operatorNs.name,
      workloadNs.name,
    );
    expect(await dryRun(toYaml(objects))).toContain(
      'networkpolicy.networking.k8s.io/k8s-runner-workload-egress created (server dry run)',
    );
  });

  it('is a real check: the API server rejects a docker Runner without capabilityImplementations', async () => {
    const objects = relocate(
      loadYaml(path.join(root, 'config/samples/runner.yaml')),
      operatorNs.name,
      workloadNs.name,
    );
    const runner = objects.find((o) => o.kind === 'Runner')!;
    delete runner.spec!.capabilityImplementations;
    const r = await tool('kubectl', ['apply', '--dry-run=server', '-f', '-'], toYaml([runner]));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('the docker capability needs capabilityImplementations.docker');
  });
});

describe('server-side dry run of the Helm chart output', () => {
  async function renderChart(values: unknown, ...args: string[]): Promise<string> {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'it-dry-values-')), 'values.yaml');
    writeFileSync(file, JSON.stringify(values));
    const r = await tool('helm', [
      'template',
      'acme-runner',
      chart,
      '--namespace',
      operatorNs.name,
      '-f',
      seedValues,
      '-f',
      file,
      '--kube-version',
      HELM_KUBE_VERSION,
      ...args,
    ]);
    if (r.code !== 0) throw new Error(`helm template failed:\n${r.out}`);
    return r.out;
  }

  it('with the seed values passes, object by object', async () => {
    const manifest = await renderChart({ resources: { workloadNamespace: workloadNs.name } });
    const out = await dryRun(manifest);
    for (const expected of [
      `namespace/${workloadNs.name} configured (server dry run)`,
      'serviceaccount/acme-runner-k8s-runner created (server dry run)',
      'role.rbac.authorization.k8s.io/acme-runner-k8s-runner-operator created (server dry run)',
      'role.rbac.authorization.k8s.io/acme-runner-k8s-runner-workloads created (server dry run)',
      'rolebinding.rbac.authorization.k8s.io/acme-runner-k8s-runner-operator created (server dry run)',
      'rolebinding.rbac.authorization.k8s.io/acme-runner-k8s-runner-workloads created (server dry run)',
      'service/acme-runner-k8s-runner created (server dry run)',
      'service/acme-runner-k8s-runner-metrics created (server dry run)',
      'deployment.apps/acme-runner-k8s-runner created (server dry run)',
      'poddisruptionbudget.policy/acme-runner-k8s-runner created (server dry run)',
      'runner.agyn.io/acme-runner created (server dry run)',
    ]) {
      expect(out).toContain(expected);
    }
  });

  it('with every optional feature (but the ServiceMonitor, whose CRD is not installed) passes', async () => {
    const manifest = await renderChart(
      {
        resources: {
          workloadNamespace: workloadNs.name,
          pullSecrets: ['registry-a'],
        },
        gateway: { caSecretRef: { name: 'gateway-ca' } },
        runner: {
          name: 'gpu-eu',
          organizationId: 'org-1',
          labels: { region: 'eu', tier: 'gpu' },
          catalog: {
            flavors: [
              {
                name: 'small',
                default: true,
                resources: { requests: { cpu: '1', memory: '2Gi' } },
              },
            ],
            storageClasses: [{ name: 'fast', storageClassName: 'fast', default: true }],
          },
          capabilityImplementations: { docker: 'privileged' },
          scheduling: {
            nodeSelector: { 'agyn.io/gpu': 'true' },
            tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          },
          health: {
            startGraceSeconds: 120,
            initRetryThreshold: 2,
            crashloopThreshold: 4,
            runtimeLostGraceSeconds: 10,
          },
        },
        capabilities: ['docker', 'gpu'],
        grpc: {
          auth: { mode: 'mtls' },
          tls: { secretName: 'runner-grpc-tls' },
          service: { type: 'NodePort' },
        },
        tracing: { otlpEndpoint: 'http://otel-collector.observability:4318' },
        operator: {
          extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=768' }],
          podAnnotations: { a: 'b' },
        },
        networkPolicy: {
          workloadEgress: {
            enabled: true,
            cidrs: [
              '203.0.113.0/24',
              { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'], ports: [{ port: 443 }] },
            ],
          },
        },
      },
      '--set',
      'resources.createWorkloadNamespace=false',
    );
    const out = await dryRun(manifest);
    expect(out).toContain('runner.agyn.io/gpu-eu created (server dry run)');
    expect(out).toContain(
      'networkpolicy.networking.k8s.io/acme-runner-k8s-runner-workload-egress created (server dry run)',
    );
    expect(
      out.match(/role.rbac.authorization.k8s.io\/acme-runner-k8s-runner-workloads created/g),
    ).toHaveLength(1);
  });
});
