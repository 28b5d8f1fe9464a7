/**
 * A persistent volume on the real node: workload 1 writes a file into its named volume
 * and is removed; workload 2 with the same persistent name reads it back. The claim is
 * served by a hostPath PersistentVolume under the test cluster's state dir.
 */
import { randomUUID } from 'node:crypto';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { StartWorkloadRequest, VolumeKind } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PVCS } from '../../src/kube/resources.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { eventually } from '../support/kube.ts';
import {
  BUSYBOX,
  REAL_NODE_STORAGE_CLASS,
  exec,
  realNodeRunner,
  waitForWorkloadPhase,
} from '../support/real-node.ts';
import { getWorkload } from '../support/workloads.ts';

type Claim = IPersistentVolumeClaim & KubeObject;

let h: GrpcHarness;

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-vol', runner: realNodeRunner() });
});

afterAll(async () => {
  await h?.close();
});

const IDLE = 'trap "exit 0" TERM; sleep 3600 & wait';

async function startWithVolume(persistentName: string, script: string): Promise<string> {
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      volumes: [{ name: 'data', kind: VolumeKind.VOLUME_KIND_NAMED, persistentName }],
      main: {
        name: 'agent',
        image: BUSYBOX,
        cmd: ['sh', '-c', `${script}; ${IDLE}`],
        mounts: [{ volume: 'data', mountPath: '/data' }],
      },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
  return id;
}

test('data written by one workload is read by the next one on the same persistent name', async () => {
  const persistentName = `pv-${randomUUID().slice(0, 8)}`;
  const first = await startWithVolume(persistentName, 'echo "from $HOSTNAME" > /data/note');
  const wrote = await exec(h.client, {
    targetId: `workload-${first}`,
    commandShell: 'cat /data/note',
  });
  expect(wrote.stdout).toBe(`from workload-${first}\n`);

  await call(h.client, 'removeWorkload', { workloadId: first, force: false, removeVolumes: false });
  await eventually(
    async () => {
      try {
        await getWorkload(h.kube, h.ns.name, `workload-${first}`);
        return false;
      } catch {
        return true;
      }
    },
    { timeoutMs: 60_000, what: 'workload 1 gone' },
  );
  const claim = await h.kube.resource<Claim>(PVCS).get(h.ns.name, persistentName);
  expect(claim.spec?.storageClassName).toBe(REAL_NODE_STORAGE_CLASS);
  expect(claim.status?.phase).toBe('Bound');

  const second = await startWithVolume(persistentName, 'true');
  const read = await exec(h.client, {
    targetId: `workload-${second}`,
    commandShell: 'cat /data/note; echo "and $HOSTNAME" >> /data/note',
  });
  expect(read.stdout).toBe(`from workload-${first}\n`);
  expect(read.exit?.exitCode).toBe(0);
});
