/**
 * The claim a reconcile creates is in the controller's cache at once: while the PVC watch
 * brings nothing (every PVC watch ended by the API fault proxy), the reconciles that follow
 * while the Pod waits to be scheduled do not POST the claim again.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { startProxiedController, type ProxiedController } from '../support/proxied-controller.ts';
import { testKubeClient } from '../support/kube.ts';
import { createWorkload, waitForPhase, workloadManifest } from '../support/workloads.ts';

const admin = testKubeClient();
let run: ProxiedController;

beforeAll(async () => {
  run = await startProxiedController(admin, 'claim-cache', [
    { kind: 'endWatch', match: (r) => r.path.includes('/persistentvolumeclaims') },
  ]);
});

afterAll(async () => {
  await run?.stop();
  admin.close();
});

test('a workload whose claim the watch never shows is started with one POST of the claim', async () => {
  const claim = 'ws-claim-cache';
  await createWorkload(
    admin,
    run.ns.name,
    workloadManifest('claim-cache', {
      volumes: [{ name: 'ws', kind: 'Persistent', persistentName: claim, size: '1Gi' }],
    }),
  );
  await waitForPhase(admin, run.ns.name, 'claim-cache', 'Running');
  const claimRequests = run.api.records
    .filter((r) => !r.watch && r.path.includes('/persistentvolumeclaims'))
    .map((r) => `${r.method} ${r.path.split('?')[0]}`);
  const claims = `/api/v1/namespaces/${run.ns.name}/persistentvolumeclaims`;
  // The informer's lists aside: one POST, and no read-back of a claim that "already exists".
  expect(claimRequests.filter((r) => r !== `GET ${claims}`)).toEqual([`POST ${claims}`]);
});
