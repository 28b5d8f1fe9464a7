/**
 * The CRDs' Helm lifecycle (charts/k8s-runner-crds): `helm upgrade` applies a changed CRD,
 * so a field the new CRD adds is stored instead of pruned, and `helm uninstall` keeps the
 * CRDs and every object of them (helm.sh/resource-policy: keep). The chart is installed
 * from a copy whose API group is unique to this run, so the CRDs every other test uses are
 * never touched.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import {
  binDir,
  createTestNamespace,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { workloadManifest } from '../support/workloads.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GROUP = `crdtest-${randomBytes(4).toString('hex')}.agyn.io`;
const RELEASE = 'crds';
const ADDED = 'testAddedField';
const client = testKubeClient();
let ns: TestNamespace;
let tmp: string;

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

/** A copy of the CRDs chart under this run's API group; `addField` adds spec.testAddedField. */
function chartCopy(dir: string, addField: boolean): string {
  const chart = path.join(tmp, dir);
  cpSync(path.join(root, 'charts/k8s-runner-crds'), chart, { recursive: true });
  const crds = path.join(chart, 'files/crds');
  for (const file of readdirSync(crds)) {
    const doc = parseDocument(readFileSync(path.join(crds, file), 'utf8'));
    const plural = doc.getIn(['spec', 'names', 'plural']) as string;
    doc.setIn(['metadata', 'name'], `${plural}.${GROUP}`);
    doc.setIn(['spec', 'group'], GROUP);
    if (addField && plural === 'agentworkloads') {
      doc.setIn(
        [
          'spec',
          'versions',
          0,
          'schema',
          'openAPIV3Schema',
          'properties',
          'spec',
          'properties',
          ADDED,
        ],
        { type: 'string', description: 'A field added by a newer chart.' },
      );
    }
    writeFileSync(path.join(crds, file), doc.toString());
  }
  return chart;
}

async function storedSpec(name: string): Promise<Record<string, unknown>> {
  const out = await must('kubectl', [
    'get',
    `agentworkloads.${GROUP}`,
    name,
    '-n',
    ns.name,
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { spec: Record<string, unknown> }).spec;
}

async function createWithAddedField(name: string): Promise<void> {
  const manifest = workloadManifest(name);
  const obj = { ...manifest, apiVersion: `${GROUP}/v1alpha1` } as Record<string, unknown>;
  (obj.spec as Record<string, unknown>)[ADDED] = 'kept';
  const file = path.join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(obj));
  await must('kubectl', ['create', '-n', ns.name, '-f', file, '--validate=false']);
}

async function crdExists(plural: string): Promise<boolean> {
  return (await tool('kubectl', ['get', 'crd', `${plural}.${GROUP}`])).code === 0;
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'it-crds');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'crds-chart-'));
});

afterAll(async () => {
  await tool('helm', ['uninstall', RELEASE, '-n', ns.name]);
  await tool('kubectl', [
    'delete',
    'crd',
    `agentworkloads.${GROUP}`,
    `runners.${GROUP}`,
    '--ignore-not-found',
  ]);
  await ns?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('helm upgrade applies a CRD that adds a field; helm uninstall keeps the CRDs and objects', async () => {
  await must('helm', ['install', RELEASE, chartCopy('v1', false), '-n', ns.name, '--wait']);
  await must('kubectl', [
    'wait',
    '--for=condition=Established',
    `crd/agentworkloads.${GROUP}`,
    '--timeout=60s',
  ]);
  await createWithAddedField('before');
  // The field is unknown to the installed CRD: the API server prunes it.
  expect(await storedSpec('before')).not.toHaveProperty(ADDED);

  await must('helm', ['upgrade', RELEASE, chartCopy('v2', true), '-n', ns.name, '--wait']);
  const crd = JSON.parse(
    await must('kubectl', ['get', 'crd', `agentworkloads.${GROUP}`, '-o', 'json']),
  ) as {
    metadata: { annotations?: Record<string, string> };
  };
  expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
  await createWithAddedField('after');
  expect(await storedSpec('after')).toMatchObject({ [ADDED]: 'kept' });

  await must('helm', ['uninstall', RELEASE, '-n', ns.name]);
  expect(await crdExists('agentworkloads')).toBe(true);
  expect(await crdExists('runners')).toBe(true);
  expect(await storedSpec('after')).toMatchObject({ [ADDED]: 'kept' });
});
