/**
 * The chart's ClusterRoles aggregated to the built-in view, edit and admin roles: a kubectl
 * user bound to one of them (here in one namespace) can use Runners and AgentWorkloads as
 * that role promises, checked by the real API server's authorizer (`kubectl auth can-i --as`).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  binDir,
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RELEASE = `agg-${randomBytes(4).toString('hex')}`;
const client = testKubeClient();
let ns: TestNamespace;
let tmp: string;
let manifest: string;

function tool(name: 'helm' | 'kubectl', args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(path.join(binDir(), name), args, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function must(name: 'helm' | 'kubectl', args: string[]): Promise<string> {
  const r = await tool(name, args);
  if (r.code !== 0) throw new Error(`${name} ${args.join(' ')}:\n${r.out}`);
  return r.out;
}

/** `resource` may name a subresource: `agentworkloads.agyn.io/status`. */
async function canI(user: string, verb: string, resource: string): Promise<string> {
  const [kind = resource, sub] = resource.split('/');
  const args = ['auth', 'can-i', verb, kind, '-n', ns.name, '--as', user];
  if (sub) args.push(`--subresource=${sub}`);
  return (await tool('kubectl', args)).out.trim();
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'it-agg');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'agg-roles-'));
  manifest = path.join(tmp, 'roles.yaml');
  const rendered = await must('helm', [
    'template',
    RELEASE,
    path.join(root, 'charts/k8s-runner'),
    '-n',
    ns.name,
    '-f',
    path.join(root, 'test/fixtures/seed-values.yaml'),
    '--kube-version',
    'v1.36.4',
    '--show-only',
    'templates/aggregated-clusterroles.yaml',
  ]);
  writeFileSync(manifest, rendered);
  await must('kubectl', ['apply', '-f', manifest]);
  for (const [user, role] of [
    ['alice', 'view'],
    ['bob', 'edit'],
    ['carol', 'admin'],
  ]) {
    await must('kubectl', [
      'create',
      'rolebinding',
      `${user}-${role}`,
      `--clusterrole=${role}`,
      `--user=${user}`,
      '-n',
      ns.name,
    ]);
  }
  // The aggregation controller (kube-controller-manager) copies the rules asynchronously.
  await eventually(async () => (await canI('alice', 'list', 'agentworkloads.agyn.io')) === 'yes', {
    timeoutMs: 30_000,
    what: 'the view role to aggregate the chart rules',
  });
  await eventually(async () => (await canI('carol', 'create', 'runners.agyn.io')) === 'yes', {
    timeoutMs: 30_000,
    what: 'the admin role to aggregate the chart rules',
  });
});

afterAll(async () => {
  if (manifest) await tool('kubectl', ['delete', '-f', manifest, '--ignore-not-found']);
  await ns?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('kubectl users bound to the built-in roles', () => {
  test.each([
    ['alice', 'view', 'list', 'agentworkloads.agyn.io', 'yes'],
    ['alice', 'view', 'get', 'runners.agyn.io', 'yes'],
    ['alice', 'view', 'watch', 'agentworkloads.agyn.io', 'yes'],
    ['alice', 'view', 'create', 'agentworkloads.agyn.io', 'no'],
    ['alice', 'view', 'delete', 'runners.agyn.io', 'no'],
    ['bob', 'edit', 'list', 'agentworkloads.agyn.io', 'yes'],
    ['bob', 'edit', 'create', 'agentworkloads.agyn.io', 'yes'],
    ['bob', 'edit', 'patch', 'agentworkloads.agyn.io', 'yes'],
    ['bob', 'edit', 'delete', 'agentworkloads.agyn.io', 'yes'],
    ['bob', 'edit', 'list', 'runners.agyn.io', 'yes'],
    ['bob', 'edit', 'create', 'runners.agyn.io', 'no'],
    ['bob', 'edit', 'patch', 'agentworkloads.agyn.io/status', 'no'],
    ['carol', 'admin', 'create', 'runners.agyn.io', 'yes'],
    ['carol', 'admin', 'delete', 'agentworkloads.agyn.io', 'yes'],
  ])('%s (%s) can %s %s: %s', async (user, _role, verb, resource, answer) => {
    expect(await canI(user, verb, resource)).toBe(answer);
  });
});
