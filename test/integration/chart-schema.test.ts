/**
 * values.schema.json: the seed's values file passes unchanged; bad values fail before
 * anything renders, with a message that names the value and what is wrong with it.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { binDir, HELM_KUBE_VERSION } from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');

function helm(args: string[]): { status: number; output: string } {
  if (args[0] === 'template') args = [...args, '--kube-version', HELM_KUBE_VERSION];
  const r = spawnSync(path.join(binDir(), 'helm'), args, {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: '/dev/null' },
  });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

function valuesFile(values: unknown): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'chart-schema-')), 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return file;
}

/** Renders with the seed values plus `values` layered on top. */
function renderWith(values: unknown, ...extra: string[]): { status: number; output: string } {
  return helm(['template', 'r', chart, '-f', seedValues, '-f', valuesFile(values), ...extra]);
}

beforeAll(() => {
  expect(helm(['version']).status).toBe(0);
});

describe('values.schema.json', () => {
  it('accepts the seed values file unchanged', () => {
    const r = helm(['template', 'r', chart, '-f', seedValues]);
    expect(r.output).not.toContain('Error');
    expect(r.status).toBe(0);
  });

  it('names every missing required value when there are none', () => {
    const r = helm(['template', 'r', chart]);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain("at '/resources': missing property 'workloadNamespace'");
    expect(r.output).toContain("at '/gateway': missing property 'url'");
    expect(r.output).toContain("at '/serviceToken': missing property 'existingSecret'");
  });

  it.each<[string, unknown, string[]]>([
    [
      'a gateway URL without scheme',
      { gateway: { url: 'gateway.agyn.example.com' } },
      ["at '/gateway/url'", 'does not match pattern'],
    ],
    [
      'an empty service token Secret name',
      { serviceToken: { existingSecret: '' } },
      ["at '/serviceToken/existingSecret'", 'minLength'],
    ],
    [
      'an invalid Secret name',
      { serviceToken: { existingSecret: 'Token_Secret' } },
      ["at '/serviceToken/existingSecret'", 'does not match pattern'],
    ],
    [
      'an empty capability',
      { capabilities: ['docker', ''] },
      ["at '/capabilities/1'", 'minLength: got 0, want 1'],
    ],
    [
      'capabilities as a string',
      { capabilities: 'docker' },
      ["at '/capabilities'", 'got string, want array'],
    ],
    [
      'an invalid workload namespace',
      { resources: { workloadNamespace: 'Agyn_Workloads' } },
      ["at '/resources/workloadNamespace'", 'does not match pattern'],
    ],
    [
      'pull secrets as objects',
      { resources: { pullSecrets: [{ name: 'regcred' }] } },
      ["at '/resources/pullSecrets/0'", 'want string'],
    ],
    [
      'a storage size that is no quantity',
      { storage: { size: 'ten gigs' } },
      ["at '/storage/size'", 'does not match pattern'],
    ],
    [
      'an unknown docker implementation',
      { runner: { capabilityImplementations: { docker: 'vm' } } },
      [
        "at '/runner/capabilityImplementations/docker'",
        "value must be one of 'rootless', 'privileged', 'kata-qemu', 'kata-fc'",
      ],
    ],
    [
      'a zero start grace',
      { runner: { health: { startGraceSeconds: 0 } } },
      ["at '/runner/health/startGraceSeconds'", 'minimum'],
    ],
    [
      'an unknown gRPC auth mode',
      { grpc: { auth: { mode: 'tls' } } },
      ["at '/grpc/auth/mode'", "value must be one of 'mtls', 'token', 'insecure'"],
    ],
    [
      'replicas as a word',
      { operator: { replicas: 'two' } },
      ["at '/operator/replicas'", 'got string, want integer'],
    ],
    [
      'a misspelt top-level key',
      { gatway: { url: 'https://x.example.com' } },
      ["additional properties 'gatway' not allowed"],
    ],
    [
      'a misspelt Runner key',
      { runner: { organisationId: 'org' } },
      ["at '/runner'", "additional properties 'organisationId' not allowed"],
    ],
    ['an invalid image digest', { image: { digest: 'latest' } }, ["at '/image/digest'"]],
  ])('rejects %s', (_what, values, fragments) => {
    const r = renderWith(values);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain("values don't meet the specifications of the schema");
    for (const fragment of fragments) expect(r.output).toContain(fragment);
  });

  it('rejects mtls without a TLS Secret, saying what to set', () => {
    const r = renderWith({ grpc: { auth: { mode: 'mtls' } } });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('grpc.auth.mode=mtls needs grpc.tls.secretName');
  });

  it('needs no gateway or token when the chart creates no Runner', () => {
    const r = helm([
      'template',
      'r',
      chart,
      '--set',
      'runner.create=false',
      '--set',
      'resources.workloadNamespace=w',
    ]);
    expect(r.output).not.toContain('Error');
    expect(r.status).toBe(0);
  });

  it('accepts grpc:// gateways and CIDR rules as strings or objects', () => {
    const r = renderWith({
      gateway: { url: 'grpcs://gateway.agyn.example.com:443' },
      networkPolicy: {
        workloadEgress: {
          enabled: true,
          cidrs: ['10.0.0.0/8', { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }],
        },
      },
    });
    expect(r.output).not.toContain('Error');
    expect(r.status).toBe(0);
  });
});
