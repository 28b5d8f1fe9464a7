/**
 * A claim or a Secret refused from the cache is read live before the refusal is final: the
 * controller's PVC and Secret watches lag (every event held by the API fault proxy), so its
 * cache still shows them without the label that gives them to the workload created a moment
 * later.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { LABELS } from '../../src/api/common.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PVCS, SECRETS } from '../../src/kube/resources.ts';
import { VOLUME_SHARED_LABEL } from '../../src/workload/volume-access.ts';
import { startProxiedController, type ProxiedController } from '../support/proxied-controller.ts';
import { eventually, testKubeClient } from '../support/kube.ts';
import { createWorkload, getWorkload, workloadManifest } from '../support/workloads.ts';

type Pvc = IPersistentVolumeClaim & KubeObject;
type Secret = ISecret & KubeObject;

const WATCH_LAG_MS = 3_000;
const admin = testKubeClient();
let run: ProxiedController;

beforeAll(async () => {
  run = await startProxiedController(admin, 'stale-claim', [
    {
      kind: 'lagWatch',
      ms: WATCH_LAG_MS,
      match: (r) => r.path.includes('/persistentvolumeclaims') || r.path.includes('/secrets'),
    },
  ]);
});

afterAll(async () => {
  await run?.stop();
  admin.close();
});

test("a workload granted a claim its controller's cache shows ungranted still runs", async () => {
  const claim = 'ws-stale-grant';
  const pvcs = admin.resource<Pvc>(PVCS);
  await pvcs.create(run.ns.name, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: claim, labels: { [LABELS.workloadId]: 'someone-else' } },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  } as Pvc);
  await eventually(() => run.controller.informers.pvcs.get(run.ns.name, claim), {
    what: 'the ungranted claim in the cache',
  });
  await pvcs.mergePatch(run.ns.name, claim, {
    metadata: { labels: { [VOLUME_SHARED_LABEL]: 'true' } },
  });
  await createWorkload(
    admin,
    run.ns.name,
    workloadManifest('stale-claim', {
      volumes: [{ name: 'ws', kind: 'Persistent', persistentName: claim, size: '1Gi' }],
    }),
  );
  expect(await phasesUntilRunning('stale-claim')).not.toContain('Failed');
  // The refusal was checked live while the cache still showed the claim ungranted.
  expect(
    run.controller.informers.pvcs.get(run.ns.name, claim)?.metadata?.labels,
  ).not.toHaveProperty(VOLUME_SHARED_LABEL);
});

test("a workload whose pull Secret its controller's cache shows labelled for another still runs", async () => {
  const secret = 'stale-pull';
  const workloadId = randomUUID();
  const secrets = admin.resource<Secret>(SECRETS);
  await secrets.create(run.ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secret, labels: { [LABELS.workloadId]: randomUUID() } },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
  } as Secret);
  await eventually(() => run.controller.informers.secrets.get(run.ns.name, secret), {
    what: 'the Secret labelled for another workload in the cache',
  });
  await secrets.mergePatch(run.ns.name, secret, {
    metadata: { labels: { [LABELS.workloadId]: workloadId } },
  });
  await createWorkload(
    admin,
    run.ns.name,
    workloadManifest('stale-secret', { workloadId, imagePullSecretRef: { name: secret } }),
  );
  expect(await phasesUntilRunning('stale-secret')).not.toContain('Failed');
  expect(
    run.controller.informers.secrets.get(run.ns.name, secret)?.metadata?.labels?.[
      LABELS.workloadId
    ],
  ).not.toBe(workloadId);
});

/** The phases the workload's status showed (polled) until it was Running. */
async function phasesUntilRunning(name: string): Promise<string[]> {
  const phases = new Set<string>();
  await eventually(
    async () => {
      const status = (await getWorkload(admin, run.ns.name, name)).status;
      if (status?.phase) phases.add(status.phase);
      return status?.phase === 'Running';
    },
    { timeoutMs: 30_000, intervalMs: 50, what: `${name} to run` },
  );
  return [...phases];
}
