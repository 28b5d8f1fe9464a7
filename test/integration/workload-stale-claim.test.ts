/**
 * A claim refused from the cache is read live before the refusal is final: the controller's
 * PVC watch lags (every event held by the API fault proxy), so its cache still shows a claim
 * without the label that grants it to the workload created a moment later.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { LABELS } from '../../src/api/common.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PVCS } from '../../src/kube/resources.ts';
import { VOLUME_SHARED_LABEL } from '../../src/workload/volume-access.ts';
import { startProxiedController, type ProxiedController } from '../support/proxied-controller.ts';
import { eventually, testKubeClient } from '../support/kube.ts';
import { createWorkload, getWorkload, workloadManifest } from '../support/workloads.ts';

type Pvc = IPersistentVolumeClaim & KubeObject;

const PVC_WATCH_LAG_MS = 3_000;
const admin = testKubeClient();
let run: ProxiedController;

beforeAll(async () => {
  run = await startProxiedController(admin, 'stale-claim', [
    {
      kind: 'lagWatch',
      ms: PVC_WATCH_LAG_MS,
      match: (r) => r.path.includes('/persistentvolumeclaims'),
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
  const phases = new Set<string>();
  await eventually(
    async () => {
      const status = (await getWorkload(admin, run.ns.name, 'stale-claim')).status;
      if (status?.phase) phases.add(`${status.phase} ${status.reason ?? ''}`.trim());
      return status?.phase === 'Running';
    },
    { timeoutMs: 30_000, intervalMs: 50, what: 'the workload to run' },
  );
  expect([...phases].filter((p) => p.startsWith('Failed'))).toEqual([]);
  // The refusal was checked live while the cache still showed the claim ungranted.
  expect(
    run.controller.informers.pvcs.get(run.ns.name, claim)?.metadata?.labels,
  ).not.toHaveProperty(VOLUME_SHARED_LABEL);
});
