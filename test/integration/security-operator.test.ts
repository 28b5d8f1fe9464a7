/**
 * Security of the operator as a process (token auth over TLS, LOG_LEVEL=debug), end to end
 * through the workload controller and the gRPC shim:
 * - a workload's organization is its namespace's (label agyn.io/organization-id): a CR that
 *   claims another organization (spec.organizationId, runnerRef) fails config_invalid, and
 *   one naming a Runner that does not accept its namespace stays unplaced; no workload lands
 *   on another organization's Runner or on a Runner that does not accept its namespace, even
 *   when labels match: no Pod, no state report under its identity (runner-placement.test.ts
 *   checks the registry's decisions; this checks what happens);
 * - no Secret value reaches the logs at debug level: tokens, an identity, a pull password,
 *   inline file content and exec environment are planted and a full lifecycle is driven
 *   through the shim, then the captured log (and Events and status) are searched;
 * - workload Pods cannot read the API: no service-account token is mounted in any Pod the
 *   operator created (as admitted by the API server).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Runner, RunnerSpecInput } from '../../src/api/runner.ts';
import {
  ExecRequest,
  PutArchiveRequest,
  RunnerServiceClient,
  StartWorkloadRequest,
  StreamWorkloadLogsRequest,
  VolumeKind,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { WorkloadStatus } from '../../src/gen/agynio/api/runners/v1/runners.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { EVENTS, NAMESPACES, PODS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import { tarArchive } from '../fixtures/bad-input/corpus.ts';
import { call, codeOf, collect } from '../fixtures/grpc-harness.ts';
import {
  createTestNamespace,
  eventually,
  simulatedExecRoot,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { startOperator, type OperatorProcess } from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';
import {
  createWorkload,
  getWorkload,
  workloadManifest,
  type Workload,
} from '../support/workloads.ts';

type Pod = IPod & KubeObject;
type Secret = ISecret & KubeObject;

const client = testKubeClient();
const mark = randomBytes(6).toString('hex');
/** Distinctive secret values planted where the operator handles them. */
const PLANTED = {
  grpcToken: `grpc-token-PLANTED-${mark}`,
  wrongToken: `wrong-token-PLANTED-${mark}`,
  tokenA: `svc-token-a-PLANTED-${mark}`,
  tokenB: `svc-token-b-PLANTED-${mark}`,
  tokenCluster: `svc-token-c-PLANTED-${mark}`,
  tokenForeign: `svc-token-f-PLANTED-${mark}`,
  unknownToken: `svc-token-unknown-PLANTED-${mark}`,
  identityKey: `identity-key-PLANTED-${mark}`,
  pullPassword: `pull-password-PLANTED-${mark}`,
  inlineFile: `inline-file-PLANTED-${mark}`,
  execEnv: `exec-env-PLANTED-${mark}`,
  archive: `archive-content-PLANTED-${mark}`,
};

let ns: TestNamespace;
/** The workload namespace: never the operator's. */
let wns: TestNamespace;
let pki: TestPki;
let gateway: TestGateway;
let operator: OperatorProcess;
let grpc: RunnerServiceClient;

const auth = (token = PLANTED.grpcToken): Metadata => {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
};

async function putSecret(
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = {},
): Promise<void> {
  await client.resource<Secret>(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, labels },
    data: Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
  } as Secret);
}

async function createRunner(
  name: string,
  token: string,
  spec: Partial<RunnerSpecInput>,
): Promise<void> {
  await putSecret(`${name}-token`, { token }, { 'agyn.io/runner-token': 'true' });
  await client.resource<Runner>(RUNNERS).create(ns.name, {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name },
    spec: {
      gateway: { url: gateway.url, insecure: true },
      serviceToken: { secretRef: { name: `${name}-token` } },
      workloadNamespace: wns.name,
      capabilities: ['docker'],
      capabilityImplementations: { docker: 'rootless' },
      ...spec,
    },
  } as unknown as Runner);
}

const runnerReady = (name: string) =>
  eventually(
    async () => {
      const r = await client.resource<Runner>(RUNNERS).get(ns.name, name);
      return r.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    },
    { timeoutMs: 30_000, what: `Runner ${name} Ready` },
  );

beforeAll(async () => {
  ns = await createTestNamespace(client, 'sec-op');
  wns = await createTestNamespace(client, 'sec-op-wl');
  pki = await generateTestPki();
  const tlsDir = path.join(pki.dir, 'grpc-tls');
  await mkdir(tlsDir);
  await copyFile(pki.server.certPath, path.join(tlsDir, 'tls.crt'));
  await copyFile(pki.server.keyPath, path.join(tlsDir, 'tls.key'));
  await copyFile(path.join(pki.dir, 'ca.crt'), path.join(tlsDir, 'ca.crt'));
  const identity = (runner: string) => ({
    identityJson: JSON.stringify({
      runner_id: `rid-${runner}`,
      private_key: `${PLANTED.identityKey}-${runner}`,
    }),
    serviceName: `${runner}.agyn`,
    identityId: `ident-${runner}`,
  });
  gateway = await startTestGateway({
    tokens: {
      [PLANTED.tokenA]: identity('org-a'),
      [PLANTED.tokenB]: identity('org-b'),
      [PLANTED.tokenCluster]: identity('cluster'),
      [PLANTED.tokenForeign]: identity('foreign'),
    },
  });
  await putSecret('grpc-token', { token: PLANTED.grpcToken });
  // The workload namespace belongs to org-a: a label only cluster admins can set.
  await client.resource(NAMESPACES).mergePatch(undefined, wns.name, {
    metadata: { labels: { 'agyn.io/organization-id': 'org-a' } },
  });
  // Both organizations' runners carry the same labels and accept the workload namespace (org-b's
  // by mistake); "foreign" is cluster-scoped with the same labels but serves another namespace.
  await createRunner('org-a', PLANTED.tokenA, {
    organizationId: 'org-a',
    labels: { region: 'eu' },
  });
  await createRunner('org-b', PLANTED.tokenB, {
    organizationId: 'org-b',
    labels: { region: 'eu' },
  });
  await createRunner('foreign', PLANTED.tokenForeign, {
    labels: { region: 'eu' },
    workloadNamespace: `${wns.name}-other`,
  });
  await createRunner('cluster', PLANTED.tokenCluster, { labels: { region: 'us' } });
  // A Runner whose token the platform does not know: enrollment fails with the token at hand.
  await createRunner('unknown', PLANTED.unknownToken, { labels: { region: 'nowhere' } });
  operator = await startOperator({
    name: 'sec-operator',
    env: {
      OPERATOR_NAMESPACE: ns.name,
      WORKLOAD_NAMESPACE: wns.name,
      LEADER_ELECTION: 'true',
      LEADER_ELECTION_ID: `sec-${mark}`,
      GRPC_AUTH_MODE: 'token',
      GRPC_TOKEN_SECRET: 'grpc-token',
      GRPC_TLS_DIR: tlsDir,
      LOG_LEVEL: 'debug',
    },
  });
  grpc = new RunnerServiceClient(
    `127.0.0.1:${operator.grpcPort}`,
    credentials.createSsl(pki.ca.cert),
  );
  await Promise.all(['org-a', 'org-b', 'foreign', 'cluster'].map(runnerReady));
  await eventually(async () => (await codeOf(call(grpc, 'ready', {}, auth()))).code === 0, {
    what: 'the shim accepting the token',
  });
}, 120_000);

afterAll(async () => {
  grpc?.close();
  await operator?.stop();
  await gateway?.stop();
  await wns?.cleanup();
  await ns?.cleanup();
  await pki?.cleanup();
  client.close();
});

describe('organization scope', () => {
  const RUNNER_IDS: Record<string, string> = {
    'org-a': 'rid-org-a',
    'org-b': 'rid-org-b',
    foreign: 'rid-foreign',
    cluster: 'rid-cluster',
  };

  test('a workload lands only on Runners of its namespace’s organization that accept its namespace, whatever its spec claims', async () => {
    const placed: Array<{ name: string; allowed: string[] }> = [];
    const refused: Array<{ name: string; phase: string; message: RegExp }> = [];
    const create = async (name: string, spec: Record<string, unknown>) =>
      createWorkload(client, wns.name, workloadManifest(name, spec));
    for (let i = 0; i < 4; i++) {
      // Labels org-b's and the foreign Runner match too: only org-a's may take it.
      await create(`a-eu-${i}`, { runnerSelector: { labels: { region: 'eu' } } });
      placed.push({ name: `a-eu-${i}`, allowed: ['org-a'] });
      // The spec repeating the namespace's organization; no selector: org-a's or the cluster's.
      await create(`a-any-${i}`, { organizationId: 'org-a' });
      placed.push({ name: `a-any-${i}`, allowed: ['org-a', 'cluster'] });
    }
    const claim =
      /organization "org-b" is not the workload's: namespace "[^"]+" belongs to organization "org-a".*\(spec\.organizationId\)$/;
    await create('claims-b', {
      organizationId: 'org-b',
      runnerSelector: { labels: { region: 'eu' } },
    });
    refused.push({ name: 'claims-b', phase: 'Failed', message: claim });
    await create('claims-b-ref', { organizationId: 'org-b', runnerRef: { name: 'org-b' } });
    refused.push({ name: 'claims-b-ref', phase: 'Failed', message: claim });
    await create('ref-b', { runnerRef: { name: 'org-b' } });
    refused.push({
      name: 'ref-b',
      phase: 'Pending',
      message: /Runner "org-b" serves organization "org-b", not "org-a"/,
    });
    await create('ref-foreign', { runnerRef: { name: 'foreign' } });
    refused.push({
      name: 'ref-foreign',
      phase: 'Pending',
      message: /Runner "foreign" does not accept namespace/,
    });

    for (const { name, allowed } of placed) {
      const aw = await eventually(
        async () => {
          const w = await getWorkload(client, wns.name, name);
          return w.status?.phase === 'Running' ? w : undefined;
        },
        { what: `${name} Running` },
      );
      expect({
        name,
        runner: aw.status?.runner,
        allowed: allowed.includes(aw.status?.runner ?? ''),
      }).toEqual({
        name,
        runner: aw.status?.runner,
        allowed: true,
      });
      const pod = await client.resource<Pod>(PODS).get(wns.name, name);
      expect(pod.metadata?.labels?.['agyn.io/runner']).toBe(aw.status?.runner);
    }
    for (const { name, phase, message } of refused) {
      const aw = await eventually(
        async () => {
          const w = await getWorkload(client, wns.name, name);
          return w.status?.message ? w : undefined;
        },
        { what: `${name} refused` },
      );
      expect({
        name,
        phase: aw.status?.phase,
        reason: aw.status?.reason,
        runner: aw.status?.runner,
      }).toEqual({
        name,
        phase,
        reason: phase === 'Failed' ? 'config_invalid' : undefined,
        runner: undefined,
      });
      expect(aw.status?.message).toMatch(message);
      expect(
        await client
          .resource<Pod>(PODS)
          .get(wns.name, name)
          .then(
            () => 'a Pod',
            () => 'no Pod',
          ),
      ).toBe('no Pod');
    }

    // What the platform heard, per runner identity: org-b's only ever about org-b's workload.
    const uidOf = new Map<string, string>();
    for (const w of (await client.resource<Workload>(AGENT_WORKLOADS).list(wns.name)).items) {
      uidOf.set(w.metadata?.uid ?? '', w.metadata?.name ?? '');
    }
    await eventually(
      () =>
        [...placed].every(({ name }) =>
          gateway.requests.reportWorkloadState.some(
            (r) =>
              uidOf.get(r.workloadId) === name &&
              r.status === WorkloadStatus.WORKLOAD_STATUS_RUNNING,
          ),
        ),
      { what: 'RUNNING reports of the placed workloads' },
    );
    for (const report of gateway.requests.reportWorkloadState) {
      const name = uidOf.get(report.workloadId);
      if (name === undefined) continue;
      const entry = placed.find((p) => p.name === name);
      expect({
        name,
        reportedAs: report.runnerId,
        allowed: entry?.allowed.map((r) => RUNNER_IDS[r]).includes(report.runnerId),
      }).toEqual({
        name,
        reportedAs: report.runnerId,
        allowed: true,
      });
      // Each runner reports with its own token only.
      const tokenOf: Record<string, string> = {
        'rid-org-a': PLANTED.tokenA,
        'rid-org-b': PLANTED.tokenB,
        'rid-cluster': PLANTED.tokenCluster,
        'rid-foreign': PLANTED.tokenForeign,
      };
      expect(report.serviceToken).toBe(tokenOf[report.runnerId]);
    }
  });
});

describe('secrets and the API', () => {
  let workloadId: string;

  test('a full lifecycle through the shim (with failures along the way)', async () => {
    // Refused callers, one with a planted wrong token.
    expect((await codeOf(call(grpc, 'listWorkloads', {}, auth(PLANTED.wrongToken)))).code).toBe(
      status.UNAUTHENTICATED,
    );
    expect((await codeOf(call(grpc, 'listWorkloads', {}))).code).toBe(status.UNAUTHENTICATED);

    workloadId = randomUUID();
    const request = StartWorkloadRequest.fromPartial({
      workloadId,
      main: {
        name: 'agent',
        image: 'registry.example.invalid/agent:1',
        env: [{ name: 'MODE', value: 'test' }],
        inlineFileMounts: [{ path: '/etc/agent/token' }],
        mounts: [{ volume: 'work', mountPath: '/work' }],
      },
      sidecars: [
        {
          name: 'mcp-tools',
          image: 'registry.example.invalid/mcp:1',
          inlineFileMounts: [{ path: '/etc/agent/token' }],
        },
      ],
      initContainers: [{ name: 'setup', image: 'registry.example.invalid/setup:1' }],
      volumes: [{ name: 'work', kind: VolumeKind.VOLUME_KIND_EPHEMERAL }],
      imagePullCredentials: [
        { registry: 'registry.example.invalid', username: 'robot', password: PLANTED.pullPassword },
      ],
      inlineFiles: { '/etc/agent/token': Buffer.from(PLANTED.inlineFile) },
      capabilities: ['docker'],
    });
    // The platform away for a while: state reports fail and are retried (debug logs).
    gateway.behaviour.stateFailure = 'UNAVAILABLE';
    await call(grpc, 'startWorkload', request, auth());
    // The same id again: ALREADY_EXISTS, after the planted values were handled once more.
    expect((await codeOf(call(grpc, 'startWorkload', request, auth()))).code).toBe(
      status.ALREADY_EXISTS,
    );
    const pod = `workload-${workloadId}`;
    await eventually(
      async () => (await getWorkload(client, wns.name, pod)).status?.phase === 'Running',
      {
        what: 'the shim workload Running',
      },
    );
    await eventually(
      () => operator.logs().some((l) => l.msg === 'workload state report failed; will retry'),
      { what: 'a failed state report retried' },
    );
    gateway.behaviour.stateFailure = undefined;
    await call(grpc, 'inspectWorkload', { workloadId }, auth());
    await call(grpc, 'getWorkloadLabels', { workloadId }, auth());
    await call(grpc, 'touchWorkload', { workloadId }, auth());

    // Exec with a secret in its environment, once completing and once refused.
    const exec = grpc.exec(auth());
    const done = collect<ExecResponse>(exec);
    exec.write(
      ExecRequest.fromPartial({
        msg: {
          $case: 'start',
          start: {
            targetId: workloadId,
            commandArgv: ['true'],
            options: { env: [{ name: 'API_KEY', value: PLANTED.execEnv }] },
          },
        },
      }),
    );
    exec.end();
    expect((await done).code).toBe(status.OK);
    const refusedExec = grpc.exec(auth());
    const refusedDone = collect<ExecResponse>(refusedExec);
    refusedExec.write(
      ExecRequest.fromPartial({
        msg: {
          $case: 'start',
          start: {
            targetId: workloadId,
            commandArgv: ['true'],
            options: { env: [{ name: `BAD=${PLANTED.execEnv}`, value: PLANTED.execEnv }] },
          },
        },
      }),
    );
    refusedExec.end();
    expect((await refusedDone).code).toBe(status.INVALID_ARGUMENT);

    // An archive with secret content, extracted into the simulated container.
    const target = `put-${mark}`;
    await mkdir(path.join(simulatedExecRoot(), target), { recursive: true });
    await call(
      grpc,
      'putArchive',
      PutArchiveRequest.fromPartial({
        workloadId,
        path: target,
        tarPayload: tarArchive([{ path: 'secret.txt', content: PLANTED.archive }]),
      }),
      auth(),
    );
    expect(await readFile(path.join(simulatedExecRoot(), target, 'secret.txt'), 'utf8')).toBe(
      PLANTED.archive,
    );
    await rm(path.join(simulatedExecRoot(), target), { recursive: true, force: true });
    const logs = grpc.streamWorkloadLogs(
      StreamWorkloadLogsRequest.fromPartial({ workloadId, follow: false }),
      auth(),
    );
    await collect(logs);

    // Stop deletes the workload (and its Secrets with it).
    await call(grpc, 'stopWorkload', { workloadId, timeoutSec: 1 }, auth());
    await eventually(
      () =>
        getWorkload(client, wns.name, pod).then(
          () => false,
          () => true,
        ),
      { what: 'the workload removed' },
    );
    await eventually(
      () =>
        operator.logs().some((l) => /enroll|token/i.test(String(l.msg)) && l.runner === 'unknown'),
      {
        what: 'the unknown Runner’s failed enrollment logged',
      },
    );
  });

  test('no planted secret appears in the debug log, in Events or in status', async () => {
    const log = await readFile(operator.logFile, 'utf8');
    expect(operator.logs().filter((l) => l.level === 20).length).toBeGreaterThan(0); // debug lines were written
    const forms = (value: string): string[] => [
      value,
      Buffer.from(value).toString('base64'),
      Buffer.from(value).toString('base64url'),
    ];
    const secretForms = [
      ...Object.values(PLANTED).flatMap(forms),
      Buffer.from(`robot:${PLANTED.pullPassword}`).toString('base64'),
    ];
    const events = JSON.stringify(
      [
        ...(await client.resource<KubeObject>(EVENTS).list(ns.name)).items,
        ...(await client.resource<KubeObject>(EVENTS).list(wns.name)).items,
      ].map((e) => (e as { message?: string }).message),
    );
    const statuses = JSON.stringify([
      ...(await client.resource<Runner>(RUNNERS).list(ns.name)).items.map((r) => r.status),
      ...(await client.resource<Workload>(AGENT_WORKLOADS).list(wns.name)).items.map(
        (w) => w.status,
      ),
    ]);
    const found = secretForms.flatMap((form) =>
      [
        ['log', log],
        ['Events', events],
        ['status', statuses],
      ]
        .filter(([, text]) => text!.includes(form))
        .map(([where]) => `${form} in ${where}`),
    );
    console.log(
      `secrets in logs: ${log.split('\n').length} log lines (${operator.logs().filter((l) => l.level === 20).length} at debug) searched for ${secretForms.length} planted values and encodings`,
    );
    expect(found).toEqual([]);
  });

  test('workload Pods cannot read the API: no service-account token is mounted', async () => {
    // A workload with sidecars, an init container, inline files and the docker daemon.
    const id = randomUUID();
    await call(
      grpc,
      'startWorkload',
      StartWorkloadRequest.fromPartial({
        workloadId: id,
        main: {
          image: 'registry.example.invalid/agent:1',
          inlineFileMounts: [{ path: '/etc/agent/config' }],
        },
        sidecars: [{ name: 'mcp-x', image: 'registry.example.invalid/mcp:1' }],
        initContainers: [{ name: 'setup', image: 'registry.example.invalid/setup:1' }],
        inlineFiles: { '/etc/agent/config': Buffer.from('{}') },
        capabilities: ['docker'],
      }),
      auth(),
    );
    await eventually(() => client.resource<Pod>(PODS).get(wns.name, `workload-${id}`), {
      what: 'the shim Pod',
    });
    const pods = (await client.resource<Pod>(PODS).list(wns.name)).items.filter(
      (p) => p.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'k8s-runner',
    );
    expect(pods.length).toBeGreaterThan(5);
    const tokenSecrets = new Set(
      (await client.resource<Secret>(SECRETS).list(wns.name)).items
        .filter((s) => s.type === 'kubernetes.io/service-account-token')
        .map((s) => s.metadata?.name),
    );
    const problems: string[] = [];
    for (const pod of pods) {
      const name = pod.metadata?.name;
      const spec = pod.spec!;
      if (spec.automountServiceAccountToken !== false)
        problems.push(
          `${name}: automountServiceAccountToken is ${spec.automountServiceAccountToken}`,
        );
      if (spec.enableServiceLinks !== false)
        problems.push(`${name}: enableServiceLinks is ${spec.enableServiceLinks}`);
      for (const v of spec.volumes ?? []) {
        if (v.projected?.sources?.some((s) => s.serviceAccountToken))
          problems.push(`${name}: projected token volume ${v.name}`);
        if (v.name.startsWith('kube-api-access-')) problems.push(`${name}: volume ${v.name}`);
        if (v.secret?.secretName && tokenSecrets.has(v.secret.secretName))
          problems.push(`${name}: token Secret volume ${v.name}`);
      }
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        for (const m of c.volumeMounts ?? []) {
          if (m.mountPath.startsWith('/var/run/secrets/kubernetes.io'))
            problems.push(`${name}/${c.name}: mount at ${m.mountPath}`);
        }
      }
    }
    console.log(
      `API access: ${pods.length} workload Pods checked (containers: ${pods.reduce((n, p) => n + p.spec!.containers.length + (p.spec!.initContainers?.length ?? 0), 0)})`,
    );
    expect(problems).toEqual([]);
  });
});
