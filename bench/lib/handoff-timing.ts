/**
 * BENCH_HANDOFF_TIMING=1 (bench/lib/operator.ts): for each AgentWorkload the shim creates,
 * the time from its CR POST's answer to the controller hearing of it (the watch event, or
 * the in-process hand-off), to its first reconcile start (taken from the queue) and to its
 * Pod POST; printed as percentiles when the operator stops. BENCH_HANDOFF=0 turns the
 * hand-off off, to compare.
 */
import type { ShimCaches } from '../../src/grpc/caches.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { WorkQueue } from '../../src/kube/workqueue.ts';
import { percentile } from './stats.ts';

type Step = 'created' | 'heard' | 'dequeued' | 'podPost';

export interface HandOffTiming {
  report(): string;
  restore(): void;
}

const nameOf = (obj: unknown): string | undefined =>
  (obj as KubeObject | undefined)?.metadata?.name;

export function timeHandOff(client: KubeClient, caches: ShimCaches): HandOffTiming {
  const marks = new Map<string, Partial<Record<Step, number>>>();
  const mark = (name: string | undefined, step: Step): void => {
    if (!name) return;
    let m = marks.get(name);
    if (!m) marks.set(name, (m = {}));
    m[step] ??= performance.now();
  };
  const request = client.request.bind(client);
  client.request = async <T>(...args: Parameters<KubeClient['request']>): Promise<T> => {
    const [method, path, opts] = args;
    if (method === 'POST' && path.endsWith('/pods')) mark(nameOf(opts?.body), 'podPost');
    const result = await request<T>(method, path, opts);
    if (method === 'POST' && path.endsWith('/agentworkloads')) mark(nameOf(result), 'created');
    return result;
  };
  caches.workloads.addHandler({
    onAdd: (w, initial) => !initial && mark(w.metadata.name, 'heard'),
  });
  // Before the controller starts, so that every worker's first get is seen too.
  const get = WorkQueue.prototype.get;
  WorkQueue.prototype.get = async function (this: WorkQueue<string>) {
    const key = await get.call(this);
    if (key && this.name === 'agentworkload') mark(key.split('/')[1], 'dequeued');
    return key;
  };
  return {
    restore: () => void (WorkQueue.prototype.get = get),
    report() {
      const line = (to: Step): string => {
        const ms: number[] = [];
        for (const m of marks.values())
          if (m.created !== undefined && m[to] !== undefined) ms.push(m[to] - m.created);
        const f = (p: number): string => percentile(ms, p).toFixed(1);
        return `  CR POST answer → ${to}: n=${ms.length} p50 ${f(50)} ms, p95 ${f(95)} ms, max ${f(100)} ms`;
      };
      const handOff = process.env.BENCH_HANDOFF === '0' ? 'off' : 'on';
      return [`hand-off ${handOff}:`, line('heard'), line('dequeued'), line('podPost')].join('\n');
    },
  };
}
