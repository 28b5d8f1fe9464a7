/**
 * What a test reads of an installed k8s-runner release through kubectl: its operator Pods
 * (`app=k8s-runner`), the leader Lease, workload Pods, and diagnostics for failures.
 */
import { call } from '../fixtures/grpc-harness.ts';
import type { RunnerServiceClient } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Tool } from './installed-chart.ts';
import { eventually } from './kube.ts';
import { ServiceConnection } from './rpc-retry.ts';

interface ContainerStatus {
  name: string;
  restartCount: number;
  state?: { waiting?: { reason?: string; message?: string } };
  lastState?: { terminated?: { exitCode: number; reason?: string } };
}

export interface PodJson {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName: string; containers: { image: string }[] };
  status: {
    phase: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: ContainerStatus[];
  };
}

const BROKEN_WAITING = new Set([
  'CrashLoopBackOff',
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** What is wrong with a Pod's containers: a failed exit, or a pull or create failure. */
function brokenContainers(pod: PodJson): string[] {
  return (pod.status.containerStatuses ?? []).flatMap((c) => {
    const waiting = c.state?.waiting;
    const exited = c.lastState?.terminated;
    if (waiting?.reason && BROKEN_WAITING.has(waiting.reason)) {
      return [`${pod.metadata.name}/${c.name}: ${waiting.reason} ${waiting.message ?? ''}`];
    }
    if (exited && exited.exitCode !== 0) {
      return [`${pod.metadata.name}/${c.name} exited ${exited.exitCode} (${exited.reason ?? ''})`];
    }
    return [];
  });
}

export class InstalledRelease {
  constructor(
    private readonly tool: Tool,
    readonly namespace: string,
    readonly workloadNamespace: string,
    readonly leaseName = 'k8s-runner',
  ) {}

  async pods(namespace = this.namespace, selector = 'app=k8s-runner'): Promise<PodJson[]> {
    const out = await this.tool(
      'kubectl',
      '-n',
      namespace,
      'get',
      'pods',
      '-l',
      selector,
      '-o',
      'json',
    );
    return (JSON.parse(out) as { items: PodJson[] }).items;
  }

  /** The operator Pods described and each one's last log lines (of its last exit, if any). */
  async diagnostics(): Promise<string> {
    const described = await this.tool('kubectl', '-n', this.namespace, 'describe', 'pods').catch(
      String,
    );
    const pods = await this.pods().catch(() => []);
    const logs = await Promise.all(
      pods.map(async (p) => {
        const restarted = (p.status.containerStatuses ?? []).some((c) => c.restartCount > 0);
        const args = ['-n', this.namespace, 'logs', p.metadata.name, '--tail=30'];
        const text = await this.tool(
          'kubectl',
          ...args,
          ...(restarted ? ['--previous'] : []),
        ).catch(String);
        return `--- ${p.metadata.name}${restarted ? ' (previous)' : ''}\n${text}`;
      }),
    );
    return `${described}\n${logs.join('\n')}`;
  }

  /**
   * Waits for `count` operator Pods (none terminating), all Ready and running `image`. Fails
   * at once, with the Pods described and their logs, when an operator container exited with
   * an error or cannot be pulled or created: a broken image or chart never waits it out.
   */
  async readyOperatorPods(image: string, count = 2): Promise<PodJson[]> {
    const deadline = Date.now() + 300_000;
    for (;;) {
      const list = (await this.pods()).filter((p) => !p.metadata.deletionTimestamp);
      const broken = list.flatMap((p) => brokenContainers(p));
      if (broken.length > 0) {
        throw new Error(`operator Pods broken: ${broken.join('; ')}\n${await this.diagnostics()}`);
      }
      const ready = list.filter(
        (p) =>
          p.spec.containers[0]!.image === image &&
          p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      if (list.length === count && ready.length === count) return list;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${count} Ready operator Pods of ${image}\n${await this.diagnostics()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async leaseHolder(): Promise<string> {
    return this.tool(
      'kubectl',
      '-n',
      this.namespace,
      'get',
      'lease',
      this.leaseName,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    );
  }

  /** The Pod of the workload `id` (named workload-<id>). */
  async workloadPod(id: string): Promise<PodJson> {
    const out = await this.tool(
      'kubectl',
      '-n',
      this.workloadNamespace,
      'get',
      'pod',
      `workload-${id}`,
      '-o',
      'json',
    );
    return JSON.parse(out) as PodJson;
  }

  /** Whether the workload Pod named `id` is gone from the API. */
  async workloadPodGone(id: string): Promise<boolean> {
    const out = await this.tool(
      'kubectl',
      '-n',
      this.workloadNamespace,
      'get',
      'pod',
      `workload-${id}`,
      '--ignore-not-found',
      '-o',
      'name',
    );
    return out.trim() === '';
  }

  /** `name/uid` of every PVC in the workload namespace. */
  async claims(): Promise<string[]> {
    const out = await this.tool(
      'kubectl',
      '-n',
      this.workloadNamespace,
      'get',
      'pvc',
      '-o',
      'json',
    );
    const items = (JSON.parse(out) as { items: { metadata: { name: string; uid: string } }[] })
      .items;
    return items.map((i) => `${i.metadata.name}/${i.metadata.uid}`).sort();
  }
}

/** Waits until InspectWorkload of `id` says running (through `c`, retrying on UNAVAILABLE). */
export async function waitRunning(
  c: RunnerServiceClient | ServiceConnection,
  id: string,
): Promise<void> {
  await eventually(
    async () => {
      const inspect =
        c instanceof ServiceConnection
          ? await c.retrying('inspectWorkload', (x) =>
              call(x, 'inspectWorkload', { workloadId: id }),
            )
          : await call(c, 'inspectWorkload', { workloadId: id });
      return inspect.stateRunning ? inspect : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 1000, what: `workload ${id} Running` },
  );
}
