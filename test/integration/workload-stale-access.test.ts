/**
 * A claim, a Secret or a Pod refused from the cache is read live before the refusal is final:
 * the controller's PVC, Secret and Pod watches lag (every event held by the API fault proxy),
 * so its cache still shows them as they were a moment before: without the label that gives
 * them to the workload created a moment later, or owned by the deleted workload of that name.
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
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import {
  createWorkload,
  getWorkload,
  workloadManifest,
  type Workload,
} from '../support/workloads.ts';

type Pvc = IPersistentVolumeClaim & KubeObject;
type Secret = ISecret & KubeObject;

/** Longer than a workload takes to run behind the Pod watch's lag. */
const ACCESS_WATCH_LAG_MS = 8_000;
const POD_WATCH_LAG_MS = 3_000;
const admin = testKubeClient();
let run: ProxiedController;

beforeAll(async () => {
  run = await startProxiedController(admin, 'stale-claim', [
    {
      kind: 'lagWatch',
      ms: ACCESS_WATCH_LAG_MS,
      match: (r) => r.path.includes('/persistentvolumeclaims') || r.path.includes('/secrets'),
    },
    { kind: 'lagWatch', ms: POD_WATCH_LAG_MS, match: (r) => r.path.includes('/pods') },
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

test("a workload created again under its name runs while its controller's cache still shows the deleted one's Pod", async () => {
  const name = 'stale-pod';
  const workloads = admin.resource<Workload>(AGENT_WORKLOADS);
  await createWorkload(admin, run.ns.name, workloadManifest(name));
  await phasesUntilRunning(name);
  const firstUid = (await getWorkload(admin, run.ns.name, name)).metadata.uid;
  await workloads.delete(run.ns.name, name);
  await eventually(async () => (await workloads.find(run.ns.name, name)) === undefined, {
    intervalMs: 50,
    what: 'the first workload to be finalized',
  });
  await createWorkload(admin, run.ns.name, workloadManifest(name));
  // The cache still shows the first workload's Pod under the same name.
  const cached = run.controller.informers.pods.get(run.ns.name, name);
  expect(cached?.metadata?.ownerReferences?.[0]?.uid).toBe(firstUid);
  expect(await phasesUntilRunning(name)).not.toContain('Failed');
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
