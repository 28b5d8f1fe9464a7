/**
 * The workload controller while its AgentWorkload watch is broken (every watch ended at once
 * by the API fault proxy, so its cache never sees a new workload): a Secret of a workload that
 * exists but is missing from the cache is not collected as an orphan.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { LABELS, MANAGED_BY_VALUE } from '../../src/api/common.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { startProxiedController, type ProxiedController } from '../support/proxied-controller.ts';
import { eventually, testKubeClient } from '../support/kube.ts';
import { createWorkload, workloadManifest } from '../support/workloads.ts';

const admin = testKubeClient();
let run: ProxiedController;

beforeAll(async () => {
  run = await startProxiedController(
    admin,
    'stale-cache',
    [{ kind: 'endWatch', match: (r) => r.path.includes('/agentworkloads') }],
    { orphanSecretGraceMs: 500 },
  );
});

afterAll(async () => {
  await run?.stop();
  admin.close();
});

test('a Secret whose workload the cache does not show yet is kept once the API server says the workload exists', async () => {
  const id = randomUUID();
  const name = `workload-${id}`;
  await createWorkload(admin, run.ns.name, workloadManifest(name, { workloadId: id }));
  await admin.resource<KubeObject>(SECRETS).create(run.ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `${name}-pull`,
      labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.workloadId]: id },
    },
  } as KubeObject);
  // The grace has passed and the controller decided: it asked the API server (and keeps
  // checking), or it deleted the Secret.
  const secrets = admin.resource<KubeObject>(SECRETS);
  const gone = async (): Promise<boolean> =>
    secrets.get(run.ns.name, `${name}-pull`).then(
      (s) => s.metadata?.deletionTimestamp !== undefined,
      () => true,
    );
  await eventually(
    async () =>
      (await gone()) ||
      run.api.records.filter(
        (r) => r.method === 'GET' && !r.watch && r.path.endsWith(`/agentworkloads/${name}`),
      ).length >= 2,
    { what: 'the controller deciding about the Secret', timeoutMs: 20_000 },
  );
  expect(run.controller.hasSynced()).toBe(true);
  expect(await gone()).toBe(false);
});
