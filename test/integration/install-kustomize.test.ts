/**
 * `kubectl apply -k config/default` against the real API server. So that runs never
 * collide on the shared control plane, config/default is applied through the overlay
 * docs/install.md gives for other namespaces (the very text of the doc), with fresh
 * namespace names. Cleanup deletes the two namespaces only: the CRDs are shared.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeClient } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { NAMESPACES } from '../../src/kube/resources.ts';
import { binDir, testKubeClient } from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function kubectl(args: string[]): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(binDir(), 'kubectl'),
      args,
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}`, stdout });
      },
    );
  });
}

async function getJson<T>(args: string[]): Promise<T> {
  const r = await kubectl(['get', ...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl get ${args.join(' ')}: ${r.out}`);
  return JSON.parse(r.stdout) as T;
}

/** The overlay of docs/install.md, pointed at this checkout's config/default and fresh namespaces. */
function overlayFromDocs(dir: string, operatorNs: string, workloadNs: string): string {
  const doc = readFileSync(path.join(root, 'docs/install.md'), 'utf8');
  const block = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((b) => b.includes('../config/default'));
  if (!block) throw new Error('docs/install.md has no overlay of ../config/default');
  return block
    .replace('../config/default', path.relative(dir, path.join(root, 'config/default')))
    .replaceAll('my-operator', operatorNs)
    .replaceAll('my-workloads', workloadNs);
}

const suffix = randomBytes(4).toString('hex');
const operatorNs = `it-kz-op-${suffix}`;
const workloadNs = `it-kz-wl-${suffix}`;
const SA = `system:serviceaccount:${operatorNs}:k8s-runner`;
let client: KubeClient;
let applyOutput = '';

beforeAll(async () => {
  client = testKubeClient();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'it-kustomize-'));
  writeFileSync(path.join(dir, 'kustomization.yaml'), overlayFromDocs(dir, operatorNs, workloadNs));
  const r = await kubectl(['apply', '-k', dir]);
  applyOutput = r.out;
  if (r.code !== 0) throw new Error(`kubectl apply -k failed:\n${r.out}`);
}, 120_000);

afterAll(async () => {
  for (const kind of ['clusterrolebinding', 'clusterrole']) {
    await kubectl(['delete', kind, 'k8s-runner-workload-namespace', '--ignore-not-found']);
  }
  for (const ns of [operatorNs, workloadNs]) {
    try {
      await client.resource(NAMESPACES).delete(undefined, ns);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  client?.close();
});

describe('kubectl apply -k config/default', () => {
  it('applies every object', () => {
    for (const line of [
      'customresourcedefinition.apiextensions.k8s.io/agentworkloads.agyn.io',
      'customresourcedefinition.apiextensions.k8s.io/runners.agyn.io',
      `namespace/${operatorNs}`,
      `namespace/${workloadNs}`,
      'serviceaccount/k8s-runner',
      'role.rbac.authorization.k8s.io/k8s-runner-operator',
      'role.rbac.authorization.k8s.io/k8s-runner-workloads',
      'rolebinding.rbac.authorization.k8s.io/k8s-runner-operator',
      'rolebinding.rbac.authorization.k8s.io/k8s-runner-workloads',
      'clusterrole.rbac.authorization.k8s.io/k8s-runner-workload-namespace',
      'clusterrolebinding.rbac.authorization.k8s.io/k8s-runner-workload-namespace',
      'service/k8s-runner',
      'service/k8s-runner-metrics',
      'deployment.apps/k8s-runner',
    ]) {
      expect(applyOutput).toContain(line);
    }
  });

  it('puts the operator in its namespace, watching the workload namespace', async () => {
    const d = await getJson<{
      spec: {
        template: {
          spec: {
            serviceAccountName: string;
            containers: Array<{ env: Array<{ name: string; value?: string }> }>;
          };
        };
      };
    }>(['deployment', 'k8s-runner', '-n', operatorNs]);
    expect(d.spec.template.spec.serviceAccountName).toBe('k8s-runner');
    const env = Object.fromEntries(
      d.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]),
    );
    expect(env.WORKLOAD_NAMESPACE).toBe(workloadNs);
    expect(env).not.toHaveProperty('WATCH_NAMESPACES');
    await getJson(['role', 'k8s-runner-operator', '-n', operatorNs]);
    await getJson(['role', 'k8s-runner-workloads', '-n', workloadNs]);
    const binding = await getJson<{ subjects: unknown[] }>([
      'rolebinding',
      'k8s-runner-workloads',
      '-n',
      workloadNs,
    ]);
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'k8s-runner', namespace: operatorNs },
    ]);
  });

  it('gives the ServiceAccount its Secrets, Pods and exec in its namespaces and nothing outside', async () => {
    const can = async (...args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args, `--as=${SA}`])).stdout.trim();
    const answers = await Promise.all([
      can('watch', 'runners.agyn.io', '-n', operatorNs),
      can('patch', 'runners.agyn.io', '--subresource=status', '-n', operatorNs),
      can('create', 'secrets', '-n', operatorNs),
      can('update', 'leases.coordination.k8s.io', '-n', operatorNs),
      can('create', 'pods', '-n', workloadNs),
      can('create', 'pods', '--subresource=exec', '-n', workloadNs),
      can('delete', 'secrets', '-n', workloadNs),
      can('update', 'agentworkloads.agyn.io', '--subresource=finalizers', '-n', workloadNs),
      can('get', 'secrets', '-n', 'default'),
      can('list', 'secrets', '--all-namespaces'),
      can('create', 'pods', '-n', operatorNs),
      can('list', 'nodes'),
      can('watch', `namespaces/${workloadNs}`),
      can('get', `namespaces/${operatorNs}`),
      can('list', 'namespaces'),
    ]);
    expect(answers).toEqual([
      'yes',
      'yes',
      'yes',
      'yes',
      'yes',
      'yes',
      'yes',
      'yes',
      'no',
      'no',
      'no',
      'no',
      'yes',
      'no',
      'no',
    ]);
  });

  it('is idempotent: applying again changes nothing', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'it-kustomize-'));
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      overlayFromDocs(dir, operatorNs, workloadNs),
    );
    const r = await kubectl(['apply', '-k', dir]);
    expect(r.code).toBe(0);
    // CRDs are shared with every other test run on this control plane; judge only ours.
    const ours = r.stdout.split('\n').filter((l) => l && !l.startsWith('customresourcedefinition'));
    expect(ours.length).toBeGreaterThanOrEqual(10);
    expect(ours.filter((l) => !l.endsWith(' unchanged'))).toEqual([]);
  });
});
