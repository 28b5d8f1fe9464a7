/**
 * The Helm chart rendered with the seed's minimum values file: lint, the objects it
 * produces (kinds, names, RBAC verbs, security context, env), and the Runner it builds,
 * field by field. Also checks that the kustomize config grants the same RBAC.
 */
import { describe, expect, it, beforeAll } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { runnerSpecSchema } from '../../src/api/runner.ts';
import {
  workloadFinalizerBinding,
  workloadFinalizerPolicy,
} from '../../src/api/finalizer-policy.ts';
import { binDir, HELM_KUBE_VERSION } from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  ports: Array<{ name: string; containerPort: number }>;
  env: EnvVar[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: Record<string, unknown>;
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Deployment extends Obj {
  spec: {
    replicas: number;
    template: {
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: Array<{
          name: string;
          emptyDir?: Record<string, unknown>;
          secret?: { secretName: string };
        }>;
      };
    };
  };
}

function run(
  tool: 'helm' | 'kubectl',
  args: string[],
): { status: number; stdout: string; stderr: string } {
  if (tool === 'helm' && args[0] === 'template')
    args = [...args, '--kube-version', HELM_KUBE_VERSION];
  const r = spawnSync(path.join(binDir(), tool), args, {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: '/dev/null' },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function parseObjects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null && typeof o === 'object');
}

function template(args: string[] = []): Obj[] {
  const r = run('helm', [
    'template',
    'acme-runner',
    chart,
    '--namespace',
    'agyn-runners',
    '-f',
    seedValues,
    ...args,
  ]);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseObjects(r.stdout);
}

function find<T extends Obj = Obj>(
  objects: Obj[],
  kind: string,
  name: string,
  namespace?: string,
): T {
  const found = objects.find(
    (o) =>
      o.kind === kind &&
      o.metadata.name === name &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (!found)
    throw new Error(
      `no ${kind} ${namespace ?? ''}/${name} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`,
    );
  return found as T;
}

/** Rules as sorted "group/resource: verbs" lines, so that order does not matter. */
function ruleLines(rules: PolicyRule[]): string[] {
  const lines: string[] = [];
  for (const rule of rules) {
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        lines.push(
          `${group || 'core'}/${resource}: ${[...rule.verbs].sort().join(',')}${rule.resourceNames ? ` [${rule.resourceNames.join(',')}]` : ''}`,
        );
      }
    }
  }
  return lines.sort();
}

const OPERATOR_RULES = [
  'agyn.io/runners: get,list,watch',
  'agyn.io/runners/finalizers: update',
  'agyn.io/runners/status: get,patch,update',
  'coordination.k8s.io/leases: create,get,list,patch,update,watch',
  'core/events: create,patch',
  'core/secrets: create,get,list,patch,watch',
].sort();

const WORKLOAD_RULES = [
  'agyn.io/agentworkloads: create,delete,get,list,patch,watch',
  'agyn.io/agentworkloads/finalizers: update',
  'agyn.io/agentworkloads/status: get,patch,update',
  'core/events: create,list,patch,watch',
  'core/persistentvolumeclaims: create,delete,get,list,patch,watch',
  'core/pods: create,delete,get,list,watch',
  'core/pods/exec: create,get',
  'core/pods/log: get',
  'core/secrets: create,delete,get,list,patch,watch',
].sort();

/** The environment the operator's main.ts reads. */
const OPERATOR_ENV = [
  'OPERATOR_NAMESPACE',
  'POD_NAME',
  'WORKLOAD_NAMESPACE',
  'GRPC_PORT',
  'GRPC_AUTH_MODE',
  'GRPC_TOKEN_SECRET',
  'GRPC_TOKEN_SECRET_CREATE',
  'HTTP_PORT',
  'LEADER_ELECTION',
  'LEADER_ELECTION_ID',
  'LOG_LEVEL',
];

let seed: Obj[];
beforeAll(() => {
  seed = template();
});

describe('the seed values file', () => {
  it('is exactly the five lines of the issue', () => {
    expect(readFileSync(seedValues, 'utf8')).toBe(
      [
        'gateway: { url: https://gateway.agyn.example.com }',
        'serviceToken: { existingSecret: k8s-runner-token }',
        'resources: { workloadNamespace: agyn-workloads, pullSecrets: [] }',
        'storage: { class: standard }',
        'capabilities: [docker]',
        '',
      ].join('\n'),
    );
  });

  it('passes helm lint', () => {
    const r = run('helm', ['lint', chart, '-f', seedValues, '--strict']);
    expect(r.stderr + r.stdout).toContain('0 chart(s) failed');
    expect(r.status).toBe(0);
  });
});

describe('chart conventions (chart-testing)', () => {
  const ciDir = path.join(chart, 'ci');
  const ciFiles = readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml'));

  it('has ci/*-values.yaml, the seed among them', () => {
    expect(ciFiles).toEqual(expect.arrayContaining(['seed-values.yaml', 'mtls-values.yaml']));
    expect(readFileSync(path.join(ciDir, 'seed-values.yaml'), 'utf8')).toBe(
      readFileSync(seedValues, 'utf8'),
    );
  });

  it.each(readdirSync(path.join(chart, 'ci')).filter((f) => f.endsWith('-values.yaml')))(
    'ci/%s passes helm lint --strict without warnings and renders',
    (file) => {
      const values = path.join(ciDir, file);
      const lint = run('helm', ['lint', chart, '--strict', '-f', values]);
      expect(lint.stdout + lint.stderr).not.toMatch(/\[(WARNING|ERROR)\]/);
      expect(lint.status).toBe(0);
      const r = run('helm', ['template', 'acme-runner', chart, '-n', 'agyn-runners', '-f', values]);
      expect(r.stderr).toBe('');
      expect(parseObjects(r.stdout).some((o) => o.kind === 'Deployment')).toBe(true);
    },
  );

  it('declares kubeVersion, and helm refuses an older cluster', () => {
    expect(readFileSync(path.join(chart, 'Chart.yaml'), 'utf8')).toMatch(
      /^kubeVersion: '>=1\.29\.0-0'$/m,
    );
    const old = spawnSync(
      path.join(binDir(), 'helm'),
      ['template', 'r', chart, '-f', seedValues, '--kube-version', 'v1.28.9'],
      { encoding: 'utf8' },
    );
    expect(old.stderr).toContain('chart requires kubeVersion: >=1.29.0-0');
  });

  it('the CRDs chart passes helm lint --strict', () => {
    const r = run('helm', ['lint', path.join(root, 'charts/k8s-runner-crds'), '--strict']);
    expect(r.stdout + r.stderr).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.status).toBe(0);
  });
});

describe('helm template with the seed values', () => {
  it('renders exactly the expected objects', () => {
    const ids = seed
      .map((o) => `${o.kind} ${o.metadata.namespace ?? '-'}/${o.metadata.name}`)
      .sort();
    expect(ids).toEqual(
      [
        'Namespace -/agyn-workloads',
        'NetworkPolicy agyn-runners/acme-runner-k8s-runner-operator-ingress',
        'NetworkPolicy agyn-workloads/acme-runner-k8s-runner-workload-egress',
        'ServiceAccount agyn-runners/acme-runner-k8s-runner',
        'Role agyn-runners/acme-runner-k8s-runner-operator',
        'RoleBinding agyn-runners/acme-runner-k8s-runner-operator',
        'Role agyn-workloads/acme-runner-k8s-runner-workloads',
        'RoleBinding agyn-workloads/acme-runner-k8s-runner-workloads',
        'Service agyn-runners/acme-runner-k8s-runner',
        'Service agyn-runners/acme-runner-k8s-runner-metrics',
        'Deployment agyn-runners/acme-runner-k8s-runner',
        'PodDisruptionBudget agyn-runners/acme-runner-k8s-runner',
        'Runner agyn-runners/acme-runner',
        'ClusterRole -/acme-runner-k8s-runner-view',
        'ClusterRole -/acme-runner-k8s-runner-edit',
        'ClusterRole -/acme-runner-k8s-runner-admin',
        'ClusterRole -/acme-runner-k8s-runner-workload-namespace',
        'ClusterRoleBinding -/acme-runner-k8s-runner-workload-namespace',
      ].sort(),
    );
    // Cluster-wide: the ClusterRoles aggregated to view/edit/admin (bound to no one), and the
    // reading of the workload Namespace alone.
    const nsReader = find<Obj & { rules: PolicyRule[] }>(
      seed,
      'ClusterRole',
      'acme-runner-k8s-runner-workload-namespace',
    );
    expect(ruleLines(nsReader.rules)).toEqual(['core/namespaces: get,list,watch [agyn-workloads]']);
    const nsBinding = find(seed, 'ClusterRoleBinding', 'acme-runner-k8s-runner-workload-namespace');
    expect(nsBinding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'acme-runner-k8s-runner', namespace: 'agyn-runners' },
    ]);
  });

  it('builds the Runner 1:1 from the values, with docker defaulting to rootless', () => {
    const runner = find(seed, 'Runner', 'acme-runner', 'agyn-runners');
    expect(runner.apiVersion).toBe('agyn.io/v1alpha1');
    expect(runner.spec).toEqual({
      gateway: { url: 'https://gateway.agyn.example.com' },
      serviceToken: { secretRef: { name: 'k8s-runner-token', key: 'token' } },
      workloadNamespace: 'agyn-workloads',
      workloadSecurity: { allowRoot: false, capabilities: {} },
      pullSecrets: [],
      storage: { defaultClass: 'standard', defaultSize: '10Gi' },
      capabilities: ['docker'],
      capabilityImplementations: { docker: 'rootless' },
    });
    // The CRD's own schema (the zod source of truth) accepts it.
    expect(runnerSpecSchema.safeParse(runner.spec).success).toBe(true);
  });

  it('grants exactly the verbs the operator needs, per namespace, to its ServiceAccount', () => {
    const operatorRole = find<Obj & { rules: PolicyRule[] }>(
      seed,
      'Role',
      'acme-runner-k8s-runner-operator',
      'agyn-runners',
    );
    expect(ruleLines(operatorRole.rules)).toEqual(OPERATOR_RULES);
    const workloadRole = find<Obj & { rules: PolicyRule[] }>(
      seed,
      'Role',
      'acme-runner-k8s-runner-workloads',
      'agyn-workloads',
    );
    expect(ruleLines(workloadRole.rules)).toEqual(WORKLOAD_RULES);
    for (const [name, namespace] of [
      ['acme-runner-k8s-runner-operator', 'agyn-runners'],
      ['acme-runner-k8s-runner-workloads', 'agyn-workloads'],
    ] as const) {
      const binding = find(seed, 'RoleBinding', name, namespace);
      expect(binding.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name,
      });
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'acme-runner-k8s-runner', namespace: 'agyn-runners' },
      ]);
    }
  });

  it('runs the operator non-root on a read-only root filesystem with a writable /tmp', () => {
    const deployment = find<Deployment>(seed, 'Deployment', 'acme-runner-k8s-runner');
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('acme-runner-k8s-runner');
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    expect(c.image).toBe('ghcr.io/agynio/k8s-runner:0.1.0');
    expect(c.imagePullPolicy).toBe('IfNotPresent');
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
    expect(c.ports).toEqual([
      { name: 'grpc', containerPort: 50051, protocol: 'TCP' },
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.resources).toMatchObject({
      requests: { cpu: '100m', memory: '256Mi' },
      limits: { memory: '1Gi' },
    });
  });

  it('configures the operator through the environment main.ts reads', () => {
    const c = find<Deployment>(seed, 'Deployment', 'acme-runner-k8s-runner').spec.template.spec
      .containers[0]!;
    expect(c.env.map((e) => e.name)).toEqual(OPERATOR_ENV);
    const env = Object.fromEntries(
      c.env.map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef?.fieldPath}`]),
    );
    expect(env).toEqual({
      OPERATOR_NAMESPACE: 'fieldRef:metadata.namespace',
      POD_NAME: 'fieldRef:metadata.name',
      WORKLOAD_NAMESPACE: 'agyn-workloads',
      GRPC_PORT: '50051',
      GRPC_AUTH_MODE: 'token',
      GRPC_TOKEN_SECRET: 'acme-runner-k8s-runner-grpc-token',
      GRPC_TOKEN_SECRET_CREATE: 'true',
      HTTP_PORT: '8080',
      LEADER_ELECTION: 'true',
      LEADER_ELECTION_ID: 'k8s-runner',
      LOG_LEVEL: 'info',
    });
  });

  it('renders the same bytes every time: no generated secret material (Argo CD)', () => {
    const render = (): string => {
      const r = run('helm', [
        'template',
        'acme-runner',
        chart,
        '-n',
        'agyn-runners',
        '-f',
        seedValues,
      ]);
      if (r.status !== 0) throw new Error(r.stderr);
      return r.stdout;
    };
    const first = render();
    expect(render()).toBe(first);
    expect(seed.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  it('exposes gRPC on 50051 and metrics on the http port, selecting the operator Pods', () => {
    const selector = {
      'app.kubernetes.io/name': 'k8s-runner',
      'app.kubernetes.io/instance': 'acme-runner',
    };
    const grpc = find(seed, 'Service', 'acme-runner-k8s-runner');
    expect(grpc.spec).toMatchObject({
      selector,
      ports: [{ name: 'grpc', port: 50051, targetPort: 'grpc', appProtocol: 'grpc' }],
    });
    const metrics = find(seed, 'Service', 'acme-runner-k8s-runner-metrics');
    expect(metrics.spec).toMatchObject({
      selector,
      ports: [{ name: 'http-metrics', port: 8080, targetPort: 'http' }],
    });
  });

  it("labels the operator Pods app=k8s-runner, which the seed's kubectl command selects", () => {
    const deployment = find(seed, 'Deployment', 'acme-runner-k8s-runner') as Obj & {
      spec: { template: { metadata: { labels: Record<string, string> } } };
    };
    expect(deployment.spec.template.metadata.labels).toMatchObject({ app: 'k8s-runner' });
  });

  it('keeps the created workload namespace on uninstall', () => {
    const ns = find(seed, 'Namespace', 'agyn-workloads');
    expect(ns.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
  });

  it('labels the workload namespace with the Pod Security level its grants need', () => {
    const level = (values: object): unknown => {
      const objects = template(['-f', writeValues({ capabilities: [], ...values })]);
      const labels = find(objects, 'Namespace', 'agyn-workloads').metadata.labels ?? {};
      return [
        labels['pod-security.kubernetes.io/enforce'],
        labels['pod-security.kubernetes.io/warn'],
      ];
    };
    // The seed offers docker: its daemon needs privileged.
    expect(find(seed, 'Namespace', 'agyn-workloads').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
    });
    expect(level({})).toEqual(['restricted', 'restricted']);
    expect(level({ runner: { workloadSecurity: { allowRoot: true } } })).toEqual([
      'baseline',
      'baseline',
    ]);
    const grant = (caps: string[]) => ({
      runner: { workloadSecurity: { capabilities: { mcp: caps } } },
    });
    expect(level(grant(['NET_BIND_SERVICE']))).toEqual(['restricted', 'restricted']);
    expect(level(grant(['CHOWN']))).toEqual(['baseline', 'baseline']);
    expect(level(grant(['NET_ADMIN']))).toEqual(['privileged', 'privileged']);
    expect(
      level({
        resources: {
          workloadNamespace: 'agyn-workloads',
          workloadNamespaceLabels: { 'pod-security.kubernetes.io/enforce': 'baseline' },
        },
      }),
    ).toEqual(['baseline', 'restricted']);
  });

  it('puts an org-scoped Runner’s organization on the workload namespace it creates', () => {
    const labelsWith = (values: object): Record<string, string> =>
      find(template(['-f', writeValues(values)]), 'Namespace', 'agyn-workloads').metadata.labels ??
      {};
    expect(labelsWith({ runner: { organizationId: 'acme' } })).toMatchObject({
      'agyn.io/organization-id': 'acme',
    });
    expect(labelsWith({})).not.toHaveProperty('agyn.io/organization-id');
  });

  it('refuses a workload namespace that is the release namespace', () => {
    const r = run('helm', [
      'template',
      'acme-runner',
      chart,
      '-n',
      'agyn-workloads',
      '-f',
      seedValues,
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('resources.workloadNamespace must not be the release namespace');
  });

  it('ships the CRDs', () => {
    const r = run('helm', ['template', 'acme-runner', chart, '-f', seedValues, '--include-crds']);
    const crds = parseObjects(r.stdout).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((o) => o.metadata.name).sort()).toEqual([
      'agentworkloads.agyn.io',
      'runners.agyn.io',
    ]);
  });
});

describe('helm template with optional values', () => {
  it('maps every optional Runner value', () => {
    const values = {
      runner: {
        name: 'eu-gpu',
        organizationId: 'org-1',
        labels: { region: 'eu', tier: 'gpu' },
        catalog: {
          flavors: [{ name: 'small', default: true, resources: { requests: { cpu: '1' } } }],
          storageClasses: [{ name: 'fast', storageClassName: 'premium' }],
        },
        capabilityImplementations: { docker: 'kata-qemu' },
        scheduling: {
          nodeSelector: { 'agyn.io/gpu': 'true' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
        },
        health: { startGraceSeconds: 120, crashloopThreshold: 5 },
      },
      gateway: { caSecretRef: { name: 'gateway-ca' } },
      resources: { pullSecrets: ['registry-a', 'registry-b'] },
      storage: { size: '20Gi' },
      capabilities: ['docker', 'gpu'],
    };
    const objects = template(['-f', writeValues(values)]);
    const runner = find(objects, 'Runner', 'eu-gpu');
    expect(runner.spec).toEqual({
      gateway: {
        url: 'https://gateway.agyn.example.com',
        caSecretRef: { name: 'gateway-ca', key: 'ca.crt' },
      },
      serviceToken: { secretRef: { name: 'k8s-runner-token', key: 'token' } },
      workloadNamespace: 'agyn-workloads',
      workloadSecurity: { allowRoot: false, capabilities: {} },
      pullSecrets: [{ name: 'registry-a' }, { name: 'registry-b' }],
      storage: { defaultClass: 'standard', defaultSize: '20Gi' },
      capabilities: ['docker', 'gpu'],
      organizationId: 'org-1',
      labels: { region: 'eu', tier: 'gpu' },
      catalog: values.runner.catalog,
      capabilityImplementations: { docker: 'kata-qemu' },
      scheduling: values.runner.scheduling,
      health: { startGraceSeconds: 120, crashloopThreshold: 5 },
    });
    expect(runnerSpecSchema.safeParse(runner.spec).success).toBe(true);
  });

  it('leaves capabilityImplementations out without docker', () => {
    const runner = find(template(['--set', 'capabilities={gpu}']), 'Runner', 'acme-runner');
    expect(runner.spec).not.toHaveProperty('capabilityImplementations');
  });

  it('grants the workload Role in exactly one namespace, the one the operator is told to use', () => {
    const objects = template(['--set', 'resources.workloadNamespace=team-a']);
    for (const kind of ['Role', 'RoleBinding']) {
      const workloads = objects.filter(
        (o) => o.kind === kind && o.metadata.name.endsWith('-workloads'),
      );
      expect(workloads.map((o) => o.metadata.namespace)).toEqual(['team-a']);
    }
    const role = find<Obj & { rules: PolicyRule[] }>(
      objects,
      'Role',
      'acme-runner-k8s-runner-workloads',
      'team-a',
    );
    expect(ruleLines(role.rules)).toEqual(WORKLOAD_RULES);
    const env = find<Deployment>(objects, 'Deployment', 'acme-runner-k8s-runner').spec.template.spec
      .containers[0]!.env;
    expect(env.find((e) => e.name === 'WORKLOAD_NAMESPACE')?.value).toBe('team-a');
    expect(find(objects, 'Runner', 'acme-runner').spec).toMatchObject({
      workloadNamespace: 'team-a',
    });
  });

  it('has no value for further workload namespaces', () => {
    const r = run('helm', [
      'template',
      'acme-runner',
      chart,
      '-f',
      seedValues,
      '--set',
      'resources.additionalWorkloadNamespaces={team-a}',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      "at '/resources': additional properties 'additionalWorkloadNamespaces' not allowed",
    );
  });

  it('mounts the TLS Secret for mtls and names no token Secret', () => {
    const objects = template([
      '--set',
      'grpc.auth.mode=mtls',
      '--set',
      'grpc.tls.secretName=runner-grpc-tls',
    ]);
    const pod = find<Deployment>(objects, 'Deployment', 'acme-runner-k8s-runner').spec.template
      .spec;
    const c = pod.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    expect(env.GRPC_AUTH_MODE).toBe('mtls');
    expect(env.GRPC_TLS_DIR).toBe('/etc/k8s-runner/grpc-tls');
    expect(env).not.toHaveProperty('GRPC_TOKEN_SECRET');
    expect(c.volumeMounts).toContainEqual({
      name: 'grpc-tls',
      mountPath: '/etc/k8s-runner/grpc-tls',
      readOnly: true,
    });
    expect(pod.volumes).toContainEqual({
      name: 'grpc-tls',
      secret: { secretName: 'runner-grpc-tls', defaultMode: 0o440 },
    });
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
  });

  it('uses an existing gRPC token Secret instead of creating one', () => {
    const objects = template(['--set', 'grpc.auth.tokenSecret.existingSecret=orchestrator-token']);
    const env = find<Deployment>(objects, 'Deployment', 'acme-runner-k8s-runner').spec.template.spec
      .containers[0]!.env;
    expect(env.find((e) => e.name === 'GRPC_TOKEN_SECRET')?.value).toBe('orchestrator-token');
    expect(env.find((e) => e.name === 'GRPC_TOKEN_SECRET_CREATE')).toBeUndefined();
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
  });

  it('passes the OTLP endpoint, leader election settings and the log level', () => {
    const objects = template([
      '--set',
      'tracing.otlpEndpoint=http://otel-collector.observability:4318',
      '--set',
      'operator.leaderElection.enabled=false',
      '--set',
      'operator.leaderElection.id=acme-lease',
      '--set',
      'operator.logLevel=debug',
      '--set',
      'operator.replicas=1',
    ]);
    const env = Object.fromEntries(
      find<Deployment>(
        objects,
        'Deployment',
        'acme-runner-k8s-runner',
      ).spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
      LEADER_ELECTION: 'false',
      LEADER_ELECTION_ID: 'acme-lease',
      LOG_LEVEL: 'debug',
    });
    expect(objects.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it('renders the workload egress NetworkPolicy from CIDRs plus DNS', () => {
    const values = {
      networkPolicy: {
        workloadEgress: {
          publicInternet: { enabled: false },
          cidrs: [
            '203.0.113.0/24',
            {
              cidr: '0.0.0.0/0',
              except: ['169.254.169.254/32'],
              ports: [{ port: 443, protocol: 'TCP' }],
            },
          ],
        },
        operatorIngress: { enabled: false },
      },
    };
    const objects = template(['-f', writeValues(values)]);
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    expect(policies.map((p) => p.metadata.namespace)).toEqual(['agyn-workloads']);
    expect(policies[0]!.spec).toEqual({
      podSelector: { matchLabels: { 'agyn.dev/managed-by': 'agents-orchestrator' } },
      policyTypes: ['Egress'],
      egress: [
        {
          ports: [
            { port: 53, protocol: 'UDP' },
            { port: 53, protocol: 'TCP' },
          ],
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
        },
        { to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] },
        {
          to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } }],
          ports: [{ port: 443, protocol: 'TCP' }],
        },
      ],
    });
    const off = template([
      '-f',
      writeValues({
        networkPolicy: { workloadEgress: { enabled: false }, operatorIngress: { enabled: false } },
      }),
    ]);
    expect(off.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
  });

  // Issue 13 (network): workloads reach neither the API server nor the operator by default,
  // and the operator's gRPC and metrics ports admit only the orchestrator and monitoring.
  it('by default confines workload egress to DNS and public addresses, the API server excluded', () => {
    const policy = find(
      seed,
      'NetworkPolicy',
      'acme-runner-k8s-runner-workload-egress',
      'agyn-workloads',
    );
    const egress = (policy.spec as { egress: Array<Record<string, unknown>> }).egress;
    expect(egress).toHaveLength(2);
    expect(egress[1]).toEqual({
      to: [
        {
          ipBlock: {
            cidr: '0.0.0.0/0',
            except: [
              '10.0.0.0/8',
              '172.16.0.0/12',
              '192.168.0.0/16',
              '100.64.0.0/10',
              '169.254.0.0/16',
              '127.0.0.0/8',
            ],
          },
        },
      ],
      ports: [
        { port: 443, protocol: 'TCP' },
        { port: 80, protocol: 'TCP' },
      ],
    });
    // A public API server endpoint is cut out of the public range.
    const withApi = find(
      template(['--set', 'networkPolicy.workloadEgress.apiServerCidrs={203.0.113.10/32}']),
      'NetworkPolicy',
      'acme-runner-k8s-runner-workload-egress',
      'agyn-workloads',
    );
    const rule = (
      withApi.spec as { egress: Array<{ to: Array<{ ipBlock: { except: string[] } }> }> }
    ).egress[1]!;
    expect(rule.to[0]!.ipBlock.except).toContain('203.0.113.10/32');
  });

  it('by default admits only the orchestrator to gRPC and only monitoring to metrics', () => {
    const policy = find(
      seed,
      'NetworkPolicy',
      'acme-runner-k8s-runner-operator-ingress',
      'agyn-runners',
    );
    expect(policy.spec).toEqual({
      podSelector: {
        matchLabels: {
          'app.kubernetes.io/name': 'k8s-runner',
          'app.kubernetes.io/instance': 'acme-runner',
        },
      },
      policyTypes: ['Ingress'],
      ingress: [
        {
          ports: [{ port: 50051, protocol: 'TCP' }],
          from: [{ namespaceSelector: { matchLabels: { 'agyn.io/runner-client': 'true' } } }],
        },
        {
          ports: [{ port: 8080, protocol: 'TCP' }],
          from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
          ],
        },
      ],
    });
    const custom = find(
      template([
        '-f',
        writeValues({
          grpc: { port: 9443 },
          networkPolicy: {
            operatorIngress: {
              grpcFrom: [
                {
                  namespaceSelector: {
                    matchLabels: { 'kubernetes.io/metadata.name': 'agyn-platform' },
                  },
                  podSelector: { matchLabels: { app: 'orchestrator' } },
                },
              ],
              metricsFrom: [{ ipBlock: { cidr: '198.51.100.7/32' } }],
            },
          },
        }),
      ]),
      'NetworkPolicy',
      'acme-runner-k8s-runner-operator-ingress',
      'agyn-runners',
    );
    const ingress = (custom.spec as { ingress: Array<{ ports: unknown[]; from: unknown[] }> })
      .ingress;
    expect(ingress[0]).toEqual({
      ports: [{ port: 9443, protocol: 'TCP' }],
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'agyn-platform' } },
          podSelector: { matchLabels: { app: 'orchestrator' } },
        },
      ],
    });
    expect(ingress[1]!.from).toEqual([{ ipBlock: { cidr: '198.51.100.7/32' } }]);
    // An empty peer list would admit everyone: the schema refuses it.
    const empty = run('helm', [
      'template',
      'acme-runner',
      chart,
      '-f',
      seedValues,
      '--set-json',
      'networkPolicy.operatorIngress.grpcFrom=[]',
    ]);
    expect(empty.status).not.toBe(0);
    expect(empty.stderr).toMatch(/grpcFrom.*minimum 1 items required|minItems/);
  });

  it('renders a ServiceMonitor for the metrics Service when asked', () => {
    expect(seed.some((o) => o.kind === 'ServiceMonitor')).toBe(false);
    const monitor = find(
      template(['--set', 'metrics.serviceMonitor.enabled=true']),
      'ServiceMonitor',
      'acme-runner-k8s-runner',
    );
    expect(monitor.spec).toMatchObject({
      selector: { matchLabels: { 'app.kubernetes.io/component': 'metrics' } },
      endpoints: [{ port: 'http-metrics', path: '/metrics' }],
    });
  });

  it('binds the opt-in workload finalizer policy to the workload namespace on clusters that serve it', () => {
    const MAP = 'admissionregistration.k8s.io/v1/MutatingAdmissionPolicy';
    const ON = 'admissionPolicy.workloadFinalizer.enabled=true';
    const objects = template(['--api-versions', MAP, '--set', ON]);
    const name = 'acme-runner-k8s-runner-workload-finalizer';
    const policy = find(objects, 'MutatingAdmissionPolicy', name);
    const binding = find(objects, 'MutatingAdmissionPolicyBinding', name);
    expect(policy).toEqual({
      ...workloadFinalizerPolicy(name),
      metadata: {
        name,
        labels: binding.metadata.labels,
      },
    });
    expect(binding.metadata.labels).toMatchObject({ 'app.kubernetes.io/instance': 'acme-runner' });
    expect(binding.spec).toEqual(workloadFinalizerBinding(name, name, 'agyn-workloads').spec);
    // Off by default, and on older clusters (no v1 API) even when asked: neither object.
    const without = (o: Obj) => !o.kind.startsWith('MutatingAdmissionPolicy');
    expect(template(['--api-versions', MAP]).every(without)).toBe(true);
    expect(template(['--set', ON]).every(without)).toBe(true);
  });

  it('does not create the workload namespace when told not to, nor the Runner', () => {
    const objects = template([
      '--set',
      'resources.createWorkloadNamespace=false',
      '--set',
      'runner.create=false',
    ]);
    expect(objects.some((o) => o.kind === 'Namespace' || o.kind === 'Runner')).toBe(false);
  });
});

describe('the kustomize config', () => {
  const build = (dir: string): Obj[] => {
    const r = run('kubectl', ['kustomize', path.join(root, 'config', dir)]);
    if (r.status !== 0) throw new Error(`kubectl kustomize config/${dir}: ${r.stderr}`);
    return parseObjects(r.stdout);
  };

  it('default grants the same RBAC as the chart, to its ServiceAccount', () => {
    const objects = build('default');
    const role = (name: string, ns: string) =>
      find<Obj & { rules: PolicyRule[] }>(objects, 'Role', name, ns).rules;
    expect(ruleLines(role('k8s-runner-operator', 'k8s-runner-system'))).toEqual(OPERATOR_RULES);
    expect(ruleLines(role('k8s-runner-workloads', 'agyn-workloads'))).toEqual(WORKLOAD_RULES);
    // Cluster-wide only the reading of the workload Namespace, as in the chart.
    expect(
      objects
        .filter((o) => o.kind.startsWith('Cluster'))
        .map((o) => `${o.kind} ${o.metadata.name}`),
    ).toEqual([
      'ClusterRole k8s-runner-workload-namespace',
      'ClusterRoleBinding k8s-runner-workload-namespace',
    ]);
    expect(
      ruleLines(
        find<Obj & { rules: PolicyRule[] }>(objects, 'ClusterRole', 'k8s-runner-workload-namespace')
          .rules,
      ),
    ).toEqual(['core/namespaces: get,list,watch [agyn-workloads]']);
    expect(
      objects
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['agentworkloads.agyn.io', 'runners.agyn.io']);
  });

  it('default runs the same container settings and environment as the chart', () => {
    const manager = find<Deployment>(
      build('default'),
      'Deployment',
      'k8s-runner',
      'k8s-runner-system',
    ).spec.template.spec;
    const fromChart = find<Deployment>(seed, 'Deployment', 'acme-runner-k8s-runner').spec.template
      .spec;
    expect(manager.securityContext).toEqual(fromChart.securityContext);
    const [mc, cc] = [manager.containers[0]!, fromChart.containers[0]!];
    expect(mc.securityContext).toEqual(cc.securityContext);
    expect(mc.ports).toEqual(cc.ports);
    expect(mc.livenessProbe).toEqual(cc.livenessProbe);
    expect(mc.readinessProbe).toEqual(cc.readinessProbe);
    expect(mc.volumeMounts).toEqual(cc.volumeMounts);
    expect(mc.env.map((e) => e.name)).toEqual(OPERATOR_ENV);
    expect(Object.fromEntries(mc.env.map((e) => [e.name, e.value]))).toMatchObject({
      WORKLOAD_NAMESPACE: 'agyn-workloads',
      GRPC_AUTH_MODE: 'token',
      GRPC_TOKEN_SECRET: 'k8s-runner-grpc-token',
    });
  });

  it('admission is the generated policy bound to agyn-workloads', () => {
    const objects = build('admission');
    const name = 'k8s-runner-workload-finalizer';
    expect(objects).toEqual([
      workloadFinalizerPolicy(name),
      workloadFinalizerBinding(name, name, 'agyn-workloads'),
    ]);
  });

  it('samples and networkpolicy build', () => {
    const kinds = build('samples').map((o) => `${o.kind}/${o.metadata.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Runner/acme-runner',
        'Runner/gpu-runner',
        'AgentWorkload/workload-9a0b1c2d-3333-4e5f-a6b7-cccccccccccc',
      ]),
    );
    expect(build('networkpolicy').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'NetworkPolicy/k8s-runner-workload-egress',
      'NetworkPolicy/k8s-runner-operator-ingress',
    ]);
  });
});

function writeValues(values: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chart-values-'));
  const file = path.join(dir, 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return file;
}
