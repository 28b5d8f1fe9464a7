import { appendFileSync } from 'node:fs';
import { CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client.ts';
import { execCollect } from '../../src/kube/exec.ts';
import {
  createTestNamespace,
  eventually,
  simulatedLogFile,
  type TestNamespace,
} from '../support/kube.ts';

const kc = new KubeConfig();
kc.loadFromFile(process.env.KUBECONFIG ?? '');
const core = kc.makeApiClient(CoreV1Api);
const client = new KubeClient(kc);
let ns: TestNamespace;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'smoke');
});
afterAll(async () => {
  await ns.cleanup();
  client.close();
});

function pod(
  name: string,
  annotations: Record<string, string> = {},
  extra: Partial<V1Pod['spec']> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      automountServiceAccountToken: false,
      containers: [
        { name: 'main', image: 'example.invalid/main:1' },
        { name: 'helper', image: 'example.invalid/helper:1' },
      ],
      ...extra,
    },
  };
}

async function podStatus(name: string): Promise<V1Pod> {
  return core.readNamespacedPod({ name, namespace: ns.name });
}

test('a Pod with two containers is scheduled and becomes Running (observed by a watch)', async () => {
  const seen: string[] = [];
  const watch = new Watch(kc);
  const running = new Promise<V1Pod>((resolve, reject) => {
    void watch
      .watch(
        `/api/v1/namespaces/${ns.name}/pods`,
        { fieldSelector: 'metadata.name=two' },
        (_type, obj: V1Pod) => {
          seen.push(obj.status?.phase ?? 'none');
          if (obj.status?.phase === 'Running') resolve(obj);
        },
        (err) => (err ? reject(err) : undefined),
      )
      .then((req) => setTimeout(() => req.abort(), 30_000).unref());
  });
  await core.createNamespacedPod({ namespace: ns.name, body: pod('two') });
  const p = await running;
  expect(p.spec?.nodeName).toMatch(/^kwok-node-/);
  expect(p.status?.containerStatuses?.map((c) => [c.name, Boolean(c.state?.running)])).toEqual([
    ['main', true],
    ['helper', true],
  ]);
  expect(p.status?.podIP).toMatch(/^10\./);
  expect(p.status?.hostIP).toBe('127.0.0.1');
});

test('container logs are served through the API server', async () => {
  await eventually(async () => (await podStatus('two')).status?.phase === 'Running');
  const marker = `smoke-${Date.now()}`;
  appendFileSync(simulatedLogFile(), `2026-11-25T09:00:00.000000000Z stdout F ${marker}\n`);
  const text = await core.readNamespacedPodLog({
    name: 'two',
    namespace: ns.name,
    container: 'helper',
  });
  expect(text).toContain(marker);
});

test('exec runs a command, returns its exit code, and stdin EOF reaches it', async () => {
  const result = await execCollect(client, {
    namespace: ns.name,
    pod: 'two',
    container: 'main',
    command: ['sh', '-c', 'echo out; echo err >&2; exit 7'],
  });
  expect(result.exitCode).toBe(7);
  expect(result.stdout.toString()).toBe('out\n');
  expect(result.stderr.toString()).toBe('err\n');
  const cat = await execCollect(client, {
    namespace: ns.name,
    pod: 'two',
    container: 'main',
    command: ['cat'],
    input: Buffer.from('through stdin\n'),
  });
  expect(cat).toMatchObject({ exitCode: 0 });
  expect(cat.stdout.toString()).toBe('through stdin\n');
});

test('deleting a Pod garbage-collects an object it owns', async () => {
  const p = await podStatus('two');
  await core.createNamespacedConfigMap({
    namespace: ns.name,
    body: {
      metadata: {
        name: 'owned-by-two',
        ownerReferences: [
          { apiVersion: 'v1', kind: 'Pod', name: 'two', uid: p.metadata?.uid ?? '' },
        ],
      },
      data: { a: 'b' },
    },
  });
  await core.deleteNamespacedPod({ name: 'two', namespace: ns.name });
  await eventually(
    async () => {
      try {
        await podStatus('two');
        return false;
      } catch {
        return true;
      }
    },
    { what: 'the Pod to go' },
  );
  await eventually(
    async () => {
      try {
        await core.readNamespacedConfigMap({ name: 'owned-by-two', namespace: ns.name });
        return false;
      } catch {
        return true;
      }
    },
    { what: 'garbage collection of the owned ConfigMap', timeoutMs: 60_000 },
  );
});

describe('simulated failures', () => {
  test('image pull failure: ErrImagePull then ImagePullBackOff', async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: pod('pull', { 'sim.agyn.io/scenario': 'image-pull-failed' }),
    });
    await eventually(
      async () =>
        (await podStatus('pull')).status?.containerStatuses?.[0]?.state?.waiting?.reason ===
          'ErrImagePull' || undefined,
      { what: 'ErrImagePull' },
    ).catch(() => undefined);
    const reason = await eventually(async () => {
      const r = (await podStatus('pull')).status?.containerStatuses?.[0]?.state?.waiting?.reason;
      return r === 'ImagePullBackOff' ? r : undefined;
    });
    expect(reason).toBe('ImagePullBackOff');
  });

  test('init container that keeps failing: restart count rises', async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: pod(
        'init',
        { 'sim.agyn.io/scenario': 'init-crash' },
        {
          restartPolicy: 'OnFailure',
          initContainers: [{ name: 'setup', image: 'example.invalid/init:1' }],
        },
      ),
    });
    const counts: number[] = [];
    await eventually(async () => {
      const s = (await podStatus('init')).status?.initContainerStatuses?.[0];
      if (s?.state?.terminated) counts.push(s.restartCount);
      return (s?.restartCount ?? 0) >= 3 ? s : undefined;
    });
    const s = (await podStatus('init')).status?.initContainerStatuses?.[0];
    expect(s?.state?.terminated?.exitCode).toBe(1);
    expect(new Set(counts).size).toBeGreaterThan(1);
  });

  test('main container that crashes: CrashLoopBackOff with rising restarts', async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: pod('crash', { 'sim.agyn.io/scenario': 'crashloop' }, { restartPolicy: 'Always' }),
    });
    const first = await eventually(async () => {
      const s = (await podStatus('crash')).status?.containerStatuses?.[0];
      return s?.state?.waiting?.reason === 'CrashLoopBackOff' ? s.restartCount : undefined;
    });
    const later = await eventually(async () => {
      const s = (await podStatus('crash')).status?.containerStatuses?.[0];
      return s && s.restartCount > first ? s.restartCount : undefined;
    });
    expect(later).toBeGreaterThan(first);
  });

  test('container that cannot be configured: CreateContainerConfigError', async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: pod('config', { 'sim.agyn.io/scenario': 'config-error' }),
    });
    const reason = await eventually(
      async () =>
        (await podStatus('config')).status?.containerStatuses?.[0]?.state?.waiting?.reason,
    );
    expect(reason).toBe('CreateContainerConfigError');
  });

  test('node lost: the running Pod vanishes', async () => {
    await core.createNamespacedPod({
      namespace: ns.name,
      body: pod('lost', { 'sim.agyn.io/scenario': 'node-lost' }),
    });
    await eventually(async () => (await podStatus('lost')).status?.phase === 'Running');
    await eventually(
      async () => {
        try {
          await podStatus('lost');
          return false;
        } catch {
          return true;
        }
      },
      { what: 'the Pod to vanish' },
    );
  });

  test('the GPU node is tainted and labelled for placement tests', async () => {
    const node = await core.readNode({ name: 'kwok-gpu-node-0' });
    expect(node.metadata?.labels?.['agyn.io/gpu']).toBe('true');
    expect(node.spec?.taints?.[0]).toMatchObject({ key: 'nvidia.com/gpu', effect: 'NoSchedule' });
    expect(node.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
  });
});
