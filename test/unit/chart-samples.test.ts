/**
 * config/samples hold valid CRs: the AgentWorkload is the shim's translation of the
 * platform's representative agent (test/fixtures/agent-workload-example.ts) plus the
 * newer platform's egress CA as an inline file; every Runner passes the CRD's schema. The
 * Argo CD health scripts in docs/install.md are the chart's files.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { agentWorkloadSpecSchema, type AgentWorkloadSpec } from '../../src/api/agentworkload.ts';
import { runnerSpecSchema } from '../../src/api/runner.ts';
import { agentWorkloadExample } from '../fixtures/agent-workload-example.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: unknown;
  type?: string;
  stringData?: Record<string, string>;
}

function load(file: string): Obj[] {
  return parseAllDocuments(readFileSync(path.join(root, file), 'utf8')).map((d) => d.toJS() as Obj);
}

describe('config/samples', () => {
  it('the AgentWorkload is the fixture agent plus an inline egress CA', () => {
    const objects = load('config/samples/agentworkload.yaml');
    const aw = objects.find((o) => o.kind === 'AgentWorkload')!;
    const fixture = agentWorkloadExample();
    expect(aw.metadata).toEqual({
      name: fixture.metadata.name,
      namespace: fixture.metadata.namespace,
    });
    const spec = agentWorkloadSpecSchema.parse(aw.spec);
    const without: AgentWorkloadSpec = structuredClone(spec);
    delete without.inlineFiles;
    delete without.main.inlineFileMounts;
    for (const s of without.sidecars) delete s.inlineFileMounts;
    expect(without).toEqual(fixture.spec);
    expect(spec.inlineFiles).toEqual({
      secretRef: { name: `${fixture.metadata.name}-inline-files` },
      files: [{ path: '/etc/agyn/egress-ca/ca.crt', key: 'egress-ca.crt' }],
    });
    expect(spec.main.inlineFileMounts).toEqual(['/etc/agyn/egress-ca/ca.crt']);
    expect(spec.sidecars.find((s) => s.role === 'mcp')?.inlineFileMounts).toEqual([
      '/etc/agyn/egress-ca/ca.crt',
    ]);
  });

  it('the workload Secrets exist, hold the referenced keys and carry the labels the operator adopts by', () => {
    const objects = load('config/samples/agentworkload.yaml');
    const aw = objects.find((o) => o.kind === 'AgentWorkload')!;
    const spec = agentWorkloadSpecSchema.parse(aw.spec);
    const secret = (name: string) =>
      objects.find((o) => o.kind === 'Secret' && o.metadata.name === name);
    const pull = secret(spec.imagePullSecretRef!.name);
    expect(pull?.type).toBe('kubernetes.io/dockerconfigjson');
    const files = secret(spec.inlineFiles!.secretRef.name);
    for (const f of spec.inlineFiles!.files) expect(files?.stringData).toHaveProperty([f.key]);
    for (const s of [pull, files]) {
      expect(s?.metadata.namespace).toBe(aw.metadata.namespace);
      expect(s?.metadata.labels).toEqual({
        'app.kubernetes.io/managed-by': 'k8s-runner',
        'agyn.io/workload-id': spec.workloadId,
      });
    }
  });

  it.each(['config/samples/runner.yaml', 'config/samples/runner_gpu.yaml'])(
    '%s passes the Runner schema and has its token Secret',
    (file) => {
      const objects = load(file);
      const runner = objects.find((o) => o.kind === 'Runner')!;
      const spec = runnerSpecSchema.parse(runner.spec);
      const token = objects.find(
        (o) => o.kind === 'Secret' && o.metadata.name === spec.serviceToken.secretRef.name,
      );
      expect(token?.metadata.namespace).toBe(runner.metadata.namespace);
      expect(token?.stringData).toHaveProperty([spec.serviceToken.secretRef.key]);
    },
  );

  it('the first Runner is the seed values file as a Runner, granting the Ziti sidecar NET_ADMIN', () => {
    const runner = load('config/samples/runner.yaml').find((o) => o.kind === 'Runner')!;
    expect(runner.spec).toEqual({
      workloadSecurity: { allowRoot: true, capabilities: { ziti: ['NET_ADMIN'] } },
      gateway: { url: 'https://gateway.agyn.example.com' },
      serviceToken: { secretRef: { name: 'k8s-runner-token', key: 'token' } },
      workloadNamespace: 'agyn-workloads',
      pullSecrets: [],
      storage: { defaultClass: 'standard', defaultSize: '10Gi' },
      capabilities: ['docker'],
      capabilityImplementations: { docker: 'rootless' },
    });
  });

  it('the GPU runner has placement labels, the gpu capability and GPU node scheduling', () => {
    const spec = runnerSpecSchema.parse(
      load('config/samples/runner_gpu.yaml').find((o) => o.kind === 'Runner')!.spec,
    );
    expect(spec.labels).toMatchObject({ accelerator: 'nvidia', tier: 'gpu' });
    expect(spec.capabilities).toContain('gpu');
    expect(spec.scheduling.nodeSelector).toEqual({ 'agyn.io/gpu': 'true' });
    expect(spec.scheduling.tolerations).toEqual([
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ]);
  });
});

describe('Argo CD health scripts (argocdHealth)', () => {
  const doc = readFileSync(path.join(root, 'docs/install.md'), 'utf8');
  it.each([
    ['agyn.io_Runner', 'runner-health.lua'],
    ['agyn.io_AgentWorkload', 'agentworkload-health.lua'],
  ])('docs/install.md carries %s = files/argocd/%s verbatim', (key, file) => {
    const lua = readFileSync(path.join(root, 'charts/k8s-runner/files/argocd', file), 'utf8');
    const indented = lua
      .split('\n')
      .map((line) => (line ? `    ${line}` : line))
      .join('\n');
    expect(doc).toContain(`  resource.customizations.health.${key}: |\n${indented}`);
    // kstatus: generation first, then Stalled / Reconciling / Ready.
    for (const word of [
      'observedGeneration',
      '"Stalled"',
      '"Reconciling"',
      '"Ready"',
      'hs.status = "Healthy"',
      'hs.status = "Degraded"',
    ]) {
      expect(lua).toContain(word);
    }
  });
});
