/**
 * Tenant isolation (issue 13, attacks 1-5 and 9): what an author allowed only to create,
 * get and delete AgentWorkloads can reach. Each test replays one attack of the review
 * against the real API server (with Pod Security admission) and the workload controller,
 * and checks it is refused or contained.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { KubeObject } from '../../src/kube/client.ts';
import { isInvalid, isNotFound } from '../../src/kube/errors.ts';
import { AGENT_WORKLOADS, NAMESPACES, PODS } from '../../src/kube/resources.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
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
} from '../support/workloads.ts';

type Pod = IPod & KubeObject;

/** A Runner that grants nothing: no added capability for any role, no root. */
const NO_GRANTS = {
  allowRoot: false,
  capabilities: { main: [], init: [], mcp: [], hook: [], ziti: [], other: [] },
};

const client = testKubeClient();
const pods = client.resource<Pod>(PODS);
/** A workload namespace that enforces Pod Security "restricted", as the chart labels it without grants. */
let ns: TestNamespace;
let controller: WorkloadController;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'sec');
  await client.resource(NAMESPACES).mergePatch(undefined, ns.name, {
    metadata: {
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  });
  controller = new WorkloadController({
    client,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner({ security: NO_GRANTS })),
    namespace: ns.name,
  });
  await controller.startInformers();
  controller.start();
});

afterAll(async () => {
  await ns.cleanup();
  await eventually(
    async () => (await client.resource(AGENT_WORKLOADS).list(ns.name)).items.length === 0,
    { timeoutMs: 60_000, what: 'the workloads to be finalized' },
  );
  await controller?.stop();
  await controller?.stopInformers();
  client.close();
});

async function podOf(name: string): Promise<Pod | undefined> {
  try {
    return await pods.get(ns.name, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function refusal(manifest: Record<string, unknown>): Promise<string> {
  try {
    await createWorkload(client, ns.name, manifest);
  } catch (err) {
    if (isInvalid(err)) return (err as Error).message;
    throw err;
  }
  throw new Error('the API server accepted the workload');
}

describe('attack 1: Linux capabilities and Pod security', () => {
  test('a Pod with no grants is admitted under Pod Security restricted and hardened', async () => {
    await createWorkload(client, ns.name, workloadManifest('plain'));
    await waitForPhase(client, ns.name, 'plain', 'Running');
    const pod = await podOf('plain');
    expect(pod?.spec?.containers[0]?.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
      runAsNonRoot: true,
    });
  });

  test('a capability the Runner does not grant fails the workload and creates no Pod', async () => {
    const caps = ['SYS_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'NET_ADMIN', 'DAC_READ_SEARCH'];
    await createWorkload(
      client,
      ns.name,
      workloadManifest('root-on-node', {
        main: { name: 'main', image: 'example.invalid/agent:1', linuxCapabilities: caps },
      } as object),
    );
    const aw = await waitForPhase(client, ns.name, 'root-on-node', 'Failed');
    expect(aw.status?.reason).toBe('config_invalid');
    expect(aw.status?.message).toContain('spec.main.linuxCapabilities[0]');
    expect(await podOf('root-on-node')).toBeUndefined();
  });

  test('an unknown capability (or ALL) is refused at admission, naming the field', async () => {
    const message = await refusal(
      workloadManifest('all-caps', {
        sidecars: [{ name: 's', image: 'example.invalid/s:1', linuxCapabilities: ['ALL'] }],
      } as object),
    );
    expect(message).toContain('spec.sidecars[0].linuxCapabilities[0]');
  });
});
