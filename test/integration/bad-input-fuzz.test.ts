/**
 * Generated bad input for AgentWorkloads:
 * - FUZZ_CASES (default 10,000) mutated specs through the zod schema offline: zod never
 *   throws, and every spec it accepts is turned into a Pod by the pod builder or refused with
 *   a WorkloadConfigError (config_invalid), never a crash;
 * - FUZZ_SERVER_CASES (default 300) of them sent to the real API server with dryRun=All:
 *   the CRD (schema and CEL rules) and zod agree on acceptance; the Pod built for an
 *   accepted spec is accepted too (dryRun), or refused as Invalid (422), which the workload
 *   controller reports as Failed/config_invalid (shown end to end for one such spec), so no
 *   accepted workload leaves the controller failing on every reconcile.
 * FUZZ_SEED replays a run.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { IPod } from 'kubernetes-models/v1/Pod';
import { agentWorkloadSpecSchema, type AgentWorkload } from '../../src/api/agentworkload.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { PODS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { buildPod, WorkloadConfigError } from '../../src/workload/pod-builder.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import { DEFAULT_RUNNER_SETTINGS } from '../../src/workload/runner-settings.ts';
import { pool, seededRandom, sizeFromEnv } from '../support/chaos.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createWorkload,
  fastRunner,
  waitForPhase,
  workloadManifest,
  SIM_ANNOTATION_PREFIXES,
} from '../support/workloads.ts';

const CASES = sizeFromEnv('FUZZ_CASES', 10_000);
const SERVER_CASES = sizeFromEnv('FUZZ_SERVER_CASES', 300);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const rnd = seededRandom(seed);
const int = (n: number): number => Math.floor(rnd() * n);
const chance = (p: number): boolean => rnd() < p;
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const client = testKubeClient();
let ns: TestNamespace;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'bad-fuzz');
});
afterAll(async () => {
  await ns?.cleanup();
  client.close();
});

// ---- valid specs ----------------------------------------------------------------------

const WORDS = ['agent', 'mcp', 'hook', 'data', 'cache', 'x', 'a1', 'tools', 'ziti-edge'];
const dnsLabel = (): string => `${pick(WORDS)}-${int(1000)}`;

function validSpec(): Obj {
  const volumes: Obj[] = Array.from({ length: int(4) }, (_, i) =>
    chance(0.5)
      ? { name: `vol-${i}`, kind: 'Ephemeral' }
      : {
          name: `vol-${i}`,
          kind: 'Persistent',
          persistentName: `pvc-${i}-${int(100)}`,
          ...(chance(0.5) ? { size: `${1 + int(50)}Gi` } : {}),
        },
  );
  const files = chance(0.4)
    ? Array.from({ length: 1 + int(3) }, (_, i) => ({
        path: `/etc/agent/f${i}.json`,
        key: `f${i}`,
      }))
    : [];
  const container = (name: string): Obj => {
    const c: Obj = { name, image: `registry.example.invalid/${name}:${int(9)}` };
    if (chance(0.3)) c.command = ['/bin/agent'];
    if (chance(0.3)) c.args = Array.from({ length: int(4) }, (_, i) => `--flag-${i}`);
    if (chance(0.4))
      c.env = Array.from({ length: int(4) }, (_, i) => ({
        name: `VAR_${i}`,
        value: pick(['', 'x', 'é ü', '1']),
      }));
    if (chance(0.2)) c.workingDir = '/work';
    if (volumes.length && chance(0.5))
      c.mounts = [{ volume: pick(volumes).name as string, mountPath: `/mnt/${int(99)}` }];
    if (chance(0.2)) c.linuxCapabilities = ['NET_ADMIN'];
    if (files.length && chance(0.6)) c.inlineFileMounts = [pick(files).path];
    return c;
  };
  const spec: Obj = {
    main: container('main'),
    sidecars: Array.from({ length: int(3) }, (_, i) => ({
      ...container(`side-${i}`),
      role: pick(['mcp', 'hook', 'ziti', 'other']),
    })),
    initContainers: Array.from({ length: int(2) }, (_, i) => ({
      ...container(`init-${i}`),
      ...(chance(0.3) ? { restartPolicy: 'Always' } : {}),
    })),
    volumes,
  };
  if (files.length) spec.inlineFiles = { secretRef: { name: `files-${int(99)}` }, files };
  if (chance(0.3)) spec.workloadId = randomUUID();
  if (chance(0.3)) spec.organizationId = `org-${int(9)}`;
  if (chance(0.3)) spec.imagePullSecretRef = { name: `pull-${int(9)}` };
  if (chance(0.4))
    spec.labels = Object.fromEntries(
      Array.from({ length: int(5) }, (_, i) => [`team-${i}`, dnsLabel()]),
    );
  if (chance(0.2)) spec.dns = { nameservers: ['10.0.0.10'], searches: ['svc.cluster.local'] };
  if (chance(0.3)) spec.capabilities = [pick(['gpu', 'net'])];
  if (chance(0.2)) spec.flavor = pick(['small', 'large']);
  if (chance(0.3)) spec.runnerRef = { name: 'local' };
  else if (chance(0.3)) spec.runnerSelector = { labels: { region: 'eu' } };
  if (chance(0.2)) spec.stopped = chance(0.5);
  if (chance(0.3)) spec.restartPolicy = pick(['Never', 'OnFailure', 'Always']);
  if (chance(0.2)) spec.deleteVolumesWithWorkload = true;
  return spec;
}

// ---- mutations ------------------------------------------------------------------------

/** Limits of the schema by field name, to probe both sides of each. */
const STRING_LIMITS: Record<string, number> = {
  image: 1024,
  name: 63,
  value: 131072,
  workingDir: 4096,
  mountPath: 4096,
  path: 4096,
  organizationId: 253,
  flavor: 253,
  persistentName: 63,
  volume: 63,
  key: 253,
};
const ARRAY_LIMITS: Record<string, number> = {
  sidecars: 16,
  initContainers: 16,
  volumes: 32,
  mounts: 32,
  env: 256,
  args: 256,
  command: 256,
  inlineFileMounts: 64,
  files: 64,
  capabilities: 16,
  linuxCapabilities: 64,
  nameservers: 3,
  searches: 32,
};
const BAD_STRINGS = [
  '',
  ' ',
  'UPPER',
  '-leading',
  'trailing-',
  'with space',
  'a/b',
  '../../etc/passwd',
  '/etc/../root',
  '/a/./b',
  'relative/path',
  'ünïcödé',
  'tab\there',
  'new\nline',
  'NET admin',
  '0F0F0F0F-1111-4222-8333-444444444444',
  'lots',
  'Sometimes',
  'superuser',
  'Tmpfs',
];
const WRONG_TYPES: Json[] = [42, -1, 3.5, true, false, [], ['x'], {}, { nested: 'x' }, 'string'];

/** Every path to a value in the spec, with the key it sits under. */
function paths(value: Json, at: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

function getAt(root: Json, path: Array<string | number>): Json {
  let v: Json = root;
  for (const p of path) v = (v as Record<string | number, Json>)[p] as Json;
  return v;
}

function setAt(root: Obj, path: Array<string | number>, value: Json | undefined): void {
  if (path.length === 0) return;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, Json>;
  const last = path.at(-1)!;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = value;
}

function mutate(spec: Obj): string {
  const all = paths(spec).filter((p) => p.length > 0);
  const path = pick(all);
  const current = getAt(spec, path);
  const key = [...path].reverse().find((p) => typeof p === 'string') as string | undefined;
  const where = path.join('.');
  switch (int(9)) {
    case 0:
      setAt(spec, path, structuredClone(pick(WRONG_TYPES)));
      return `wrong type at ${where}`;
    case 1:
      setAt(spec, path, undefined);
      return `removed ${where}`;
    case 2:
      if (typeof current === 'string') {
        const limit = STRING_LIMITS[key ?? ''] ?? 253;
        const length = pick([limit, limit + 1, limit * 2 + int(1000)]);
        setAt(spec, path, (current[0] === '/' ? '/' : 'a') + 'a'.repeat(Math.max(0, length - 1)));
        return `string of ${length} at ${where}`;
      }
      setAt(spec, path, pick(BAD_STRINGS));
      return `string at ${where}`;
    case 3:
      setAt(spec, path, pick(BAD_STRINGS));
      return `bad string at ${where}`;
    case 4: {
      const lists = Object.keys(ARRAY_LIMITS);
      const listPaths = all.filter(
        (p) => lists.includes(String(p.at(-1))) && Array.isArray(getAt(spec, p)),
      );
      if (!listPaths.length) return mutate(spec);
      const lp = pick(listPaths);
      const list = getAt(spec, lp) as Json[];
      const limit = ARRAY_LIMITS[String(lp.at(-1))]!;
      const length = pick([limit, limit + 1]);
      const sample = list[0] ?? (String(lp.at(-1)) === 'nameservers' ? '10.0.0.1' : 'x');
      setAt(
        spec,
        lp,
        Array.from({ length }, (_, i) => renamed(sample, i)),
      );
      return `${length} items at ${lp.join('.')}`;
    }
    case 5: {
      const count = pick([64, 65, 200]);
      spec.labels = Object.fromEntries(Array.from({ length: count }, (_, i) => [`l${i}`, 'v']));
      return `${count} labels`;
    }
    case 6: {
      // The CEL rules: duplicate names, undeclared volumes, exclusive fields, volume kinds.
      const which = int(5);
      const list = (k: string): Json[] =>
        Array.isArray(spec[k]) ? (spec[k] as Json[]) : (spec[k] = []);
      if (which === 0) list('sidecars').push({ name: 'main', image: 'x' });
      if (which === 1)
        spec.main = {
          name: 'main',
          image: 'x',
          mounts: [{ volume: 'ghost', mountPath: '/ghost' }],
        };
      if (which === 2)
        Object.assign(spec, { runnerRef: { name: 'a' }, runnerSelector: { labels: {} } });
      if (which === 3) list('volumes').push({ name: 'p-vol', kind: 'Persistent' });
      if (which === 4) list('volumes').push({ name: 'e-vol', kind: 'Ephemeral', size: '1Gi' });
      return `CEL rule ${which}`;
    }
    case 7:
      setAt(spec, [...path.slice(0, -1), `unknownField${int(9)}`], 'x');
      return `unknown field next to ${where}`;
    default:
      if (typeof current === 'string') {
        setAt(spec, path, `${current}${pick(['é', 'ß', '中', ' ', '\u00a0'])}`);
        return `non-ASCII at ${where}`;
      }
      setAt(spec, path, null);
      return `null at ${where}`;
  }
}

/** A copy of a list item with its name made unique. */
function renamed(sample: Json, i: number): Json {
  if (typeof sample === 'string')
    return sample.startsWith('/') ? `${sample}-${i}` : `${sample}${i}`.slice(0, 63);
  if (sample && typeof sample === 'object' && !Array.isArray(sample)) {
    const copy: Obj = structuredClone(sample);
    if (typeof copy.name === 'string') copy.name = `n-${i}`;
    if (typeof copy.path === 'string') copy.path = `/f/${i}`;
    if (typeof copy.key === 'string') copy.key = `k${i}`;
    return copy;
  }
  return sample;
}

interface FuzzCase {
  spec: Obj;
  what: string[];
  zodAccepts: boolean;
  zodMessage?: string;
  /** Whether the case carries a null (pruned by the API server before validation). */
  hasNull: boolean;
}

function generate(): FuzzCase {
  const spec = validSpec();
  const what: string[] = [];
  if (!chance(0.15)) for (let i = 0, n = 1 + int(3); i < n; i++) what.push(mutate(spec));
  // zod must never throw, whatever it is given (a throw fails the test that calls this).
  const result = agentWorkloadSpecSchema.safeParse(spec);
  const issue = result.success ? undefined : result.error.issues[0];
  return {
    spec,
    what,
    zodAccepts: result.success,
    zodMessage: issue && `${issue.path.join('.')}: ${issue.message}`,
    hasNull: JSON.stringify(spec).includes('null'),
  };
}

function workloadOf(spec: Obj, name: string): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name, namespace: ns.name, uid: randomUUID() },
    spec: agentWorkloadSpecSchema.parse(spec),
  };
}

/** The pod builder on an accepted spec: a Pod, or a WorkloadConfigError (config_invalid); anything else is a crash. */
function podFor(spec: Obj, name: string): { pod?: IPod; configError?: string } {
  const workload = workloadOf(spec, name);
  try {
    return {
      pod: buildPod({
        workload,
        workloadId: workload.metadata.uid ?? '',
        podName: name,
        runner: { ...DEFAULT_RUNNER_SETTINGS, name: 'local' },
      }),
    };
  } catch (err) {
    if (err instanceof WorkloadConfigError) return { configError: err.message };
    throw err;
  }
}

test(`${CASES} generated specs through zod and the pod builder: no crash`, () => {
  const started = Date.now();
  let accepted = 0;
  let configErrors = 0;
  const crashes: string[] = [];
  for (let i = 0; i < CASES; i++) {
    let c: FuzzCase;
    try {
      c = generate();
    } catch (err) {
      crashes.push(`zod threw: ${String(err)}`);
      continue;
    }
    if (!c.zodAccepts) continue;
    accepted++;
    try {
      if (podFor(c.spec, `fuzz-${i}`).configError) configErrors++;
    } catch (err) {
      crashes.push(
        `${c.what.join('; ')}: ${err instanceof Error ? (err.stack ?? '').split('\n').slice(0, 3).join(' | ') : String(err)}`,
      );
    }
  }
  console.log(
    `fuzz (seed ${seed}): ${CASES} specs in ${Date.now() - started} ms; zod accepted ${accepted}, ` +
      `of which the pod builder refused ${configErrors} with config_invalid; ${crashes.length} crashes`,
  );
  expect(crashes.slice(0, 5)).toEqual([]);
});

test(`${SERVER_CASES} generated specs at the API server (dryRun=All): CRD and zod agree, and accepted specs make acceptable Pods`, async () => {
  const started = Date.now();
  const cases: FuzzCase[] = [];
  // About half valid, half refused; nulls left out (the API server prunes them before it validates).
  while (cases.length < SERVER_CASES) {
    const c = generate();
    if (c.hasNull) continue;
    if (c.zodAccepts === cases.filter((x) => x.zodAccepts).length < SERVER_CASES / 2) cases.push(c);
  }
  const disagreements: string[] = [];
  /** Built Pods the API server refused as Invalid (the controller reports config_invalid). */
  const podRefusals: string[] = [];
  /** Built Pods refused otherwise: the controller would retry them forever. */
  const podFailures: string[] = [];
  let serverAccepted = 0;
  let podsChecked = 0;
  await pool(cases, 8, async (c, i) => {
    const name = `fuzz-${i}`;
    let serverError: KubeApiError | undefined;
    try {
      await client.resource<KubeObject>(AGENT_WORKLOADS).create(
        ns.name,
        {
          apiVersion: 'agyn.io/v1alpha1',
          kind: 'AgentWorkload',
          metadata: { name },
          spec: c.spec,
        } as KubeObject,
        {
          dryRun: true,
        },
      );
      serverAccepted++;
    } catch (err) {
      if (!(err instanceof KubeApiError) || err.statusCode !== 422) throw err;
      serverError = err;
    }
    if ((serverError === undefined) !== c.zodAccepts) {
      disagreements.push(
        `${c.what.join('; ') || 'unmutated'}: API server ${serverError ? `refused (${serverError.message.slice(0, 200)})` : 'accepted'}, ` +
          `zod ${c.zodAccepts ? 'accepted' : `refused (${c.zodMessage})`}`,
      );
      return;
    }
    if (!c.zodAccepts) return;
    const { pod, configError } = podFor(c.spec, name);
    if (!pod) return expect(configError).toBeDefined();
    podsChecked++;
    try {
      await client.resource<KubeObject>(PODS).create(ns.name, pod as KubeObject, { dryRun: true });
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      const line = `${c.what.join('; ') || 'unmutated'}: ${err.message.slice(0, 300)}`;
      if (err.statusCode === 422) podRefusals.push(line);
      else podFailures.push(`${err.statusCode} ${line}`);
    }
  });
  console.log(
    `fuzz at the API server (seed ${seed}): ${cases.length} specs in ${Date.now() - started} ms; ` +
      `${serverAccepted} accepted, ${cases.length - serverAccepted} refused; ${disagreements.length} disagreements with zod; ` +
      `${podsChecked} built Pods checked, ${podRefusals.length} refused as Invalid (config_invalid)`,
  );
  /** One line per kind of problem (indices and values left out), with a count and an example. */
  const kinds = (lines: string[]): string[] => {
    const byKind = new Map<string, { n: number; example: string }>();
    for (const line of lines) {
      const kind = (
        line
          .split(': ')
          .slice(1)
          .join(': ')
          .match(/spec(\.[A-Za-z]+|\[\d+\])*/g) ?? [line]
      )
        .map((k) => k.replace(/\[\d+\]/g, '[]'))
        .join(' ');
      const entry = byKind.get(kind) ?? { n: 0, example: line };
      entry.n++;
      byKind.set(kind, entry);
    }
    return [...byKind].map(([kind, { n, example }]) => `${n}× ${kind}: ${example}`);
  };
  if (podRefusals.length)
    console.log(`Pods refused as Invalid, by kind:\n${kinds(podRefusals).join('\n')}`);
  expect(kinds(disagreements)).toEqual([]);
  expect(kinds(podFailures)).toEqual([]);
});

test('a workload the CRD accepts but whose Pod the API server refuses is Failed/config_invalid, naming the field', async () => {
  const controller = new WorkloadController({
    client,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: ns.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
  });
  await controller.startInformers();
  controller.start();
  try {
    const spec = {
      main: { name: 'main', image: 'example.invalid/agent:1', env: [{ name: 'A=B', value: 'x' }] },
    };
    await createWorkload(client, ns.name, workloadManifest('env-with-equals', spec as object));
    const aw = await waitForPhase(client, ns.name, 'env-with-equals', 'Failed');
    expect(aw.status?.reason).toBe('config_invalid');
    expect(aw.status?.message).toMatch(
      /spec\.containers\[0\]\.env\[0\]\.name: Invalid value: "A=B"/,
    );
    await client.resource(AGENT_WORKLOADS).delete(ns.name, 'env-with-equals');
    await eventually(
      async () => (await client.resource(AGENT_WORKLOADS).list(ns.name)).items.length === 0,
      {
        what: 'the workload finalized',
      },
    );
  } finally {
    await controller.stop();
    await controller.stopInformers();
  }
});
